"""RunConfig presets, overrides, JSON round trip, and the `rmdepth train` command line (no training)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from configs.presets import get_preset, list_presets
from engine.config_io import apply_overrides, from_json, to_json
from engine.run_config import RunConfig
from jobs.cli import run_module
from tests.train.conftest import REPO


@pytest.mark.parametrize("name", ["tiny_cpu", "kitti_640x192", "cityscapes_640x192", "cs_then_kitti"])
def test_presets_build_and_round_trip(name):
    cfg = get_preset(name)
    assert name in list_presets() and cfg.name == name
    assert from_json(RunConfig, to_json(cfg)) == cfg


def test_preset_choices():
    tiny = get_preset("tiny_cpu")
    assert (tiny.loader.width, tiny.loader.height, tiny.loader.batch_size) == (208, 64, 4)
    assert tiny.optim.lr == 2e-4 and tiny.optim.warmup_samples > 0 and tiny.depth.norm == "batch"
    assert get_preset("kitti_640x192").scaling.use_gpu
    cs = get_preset("cs_then_kitti")
    assert cs.pretrain.epochs > 0 and cs.pretrain.data.val_protocol == "cityscapes"
    assert cs.data.val_protocol == "kitti-eigen"


def test_overrides_and_errors():
    cfg = apply_overrides(get_preset("tiny_cpu"), ["optim.lr=1e-3", "loader.augment.flip_prob=0", "scaling.min_workers=1",
                                                   "scaling.max_workers=2"])
    assert cfg.optim.lr == 1e-3 and cfg.loader.augment.flip_prob == 0 and cfg.scaling.elastic
    with pytest.raises(ValueError, match="unknown key"):
        apply_overrides(cfg, ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match="train.precision must be"):
        apply_overrides(cfg, ["train.precision=fp16"])
    with pytest.raises(ValueError, match="optim.lr must be positive"):
        apply_overrides(cfg, ["optim.lr=0"])
    with pytest.raises(ValueError, match="min_workers <= max_workers"):
        apply_overrides(cfg, ["scaling.max_workers=0"])
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    import jobs.train

    code = run_module(jobs.train, list(args), prog="rmdepth train")
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_print_config_list_and_errors(tmp_path, capsys):
    code, out, err = _run(capsys, "--preset", "tiny_cpu", "--set", "optim.lr=3e-4", "--num-workers", "2", "--print-config")
    assert code == 0, err
    cfg = from_json(RunConfig, out)
    assert cfg.optim.lr == 3e-4 and cfg.scaling.num_workers == 2
    path = tmp_path / "cfg.json"
    path.write_text(out)
    code, out, err = _run(capsys, "--config", str(path), "--elastic", "1,3", "--print-config")
    assert code == 0, err
    assert (json.loads(out)["scaling"]["min_workers"], json.loads(out)["scaling"]["max_workers"]) == (1, 3)
    code, out, _ = _run(capsys, "--list-presets")
    assert code == 0 and out.split() == list_presets()
    code, _, err = _run(capsys, "--preset", "tiny_cpu", "--set", "optim.nope=1")
    assert code == 2 and "unknown key" in err  # a usage error
    code, _, err = _run(capsys)
    assert code == 2 and "--preset" in err
    code, _, err = _run(capsys, "--preset", "tiny_cpu", "--set", f"data.train_url={tmp_path / 'none'}")
    assert code == 1 and "summary.json" in err and "none" in err


def test_python_m_entrypoint_reports_user_errors_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "jobs.train", "--preset", "tiny_cpu", "--storage-path", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "data.train_url is empty" in r.stderr and "Traceback" not in r.stderr


def test_cs_then_kitti_has_a_pretraining_stage():
    from jobs.train import pretrain_stage

    cfg = apply_overrides(get_preset("cs_then_kitti"), ["pretrain.data.train_url=s3://b/cs-train",
                                                         "data.train_url=s3://b/kitti-train"])
    stage1 = pretrain_stage(cfg, "cs_then_kitti")
    assert stage1.name == "cs_then_kitti-pretrain" and stage1.data.train_url == "s3://b/cs-train"
    assert stage1.train.epochs == cfg.pretrain.epochs and stage1.data.val_protocol == "cityscapes"
    assert pretrain_stage(stage1, stage1.name) is None  # no nested stages
    # once the parent checkpoint is known (or given by hand) the fine-tuning stage runs alone
    assert pretrain_stage(apply_overrides(cfg, ["init_checkpoint=s3://b/runs/x/checkpoint_e001_s000000010"]), "x") is None
    assert pretrain_stage(get_preset("kitti_640x192"), "k") is None


def test_precision_resolves_to_an_autocast_dtype():
    import torch

    from engine.runtime import compute_dtype, fast_bf16

    cpu = torch.device("cpu")
    assert compute_dtype("fp32", cpu) is None and compute_dtype("bf16", cpu) is torch.bfloat16
    assert compute_dtype("auto", cpu) is (torch.bfloat16 if fast_bf16(cpu) else None)
    assert get_preset("tiny_cpu").train.precision == "fp32"
