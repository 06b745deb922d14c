"""One configuration idiom for every job (jobs/config_args.py): preset or stored config, then `--set` overrides
in command-line order; convenience flags are aliases of overrides; what a job resolved is stored with its output
and can be passed back with --config."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from engine.evaluate import make_protocol
from jobs import evaluate, preprocess
from jobs.cli import main
from jobs.errors import UsageError
from pipeline.shards.config import ShardConfig


def _parse(module, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_are_aliases_applied_in_command_line_order():
    args = _parse(preprocess, "--dataset", "kitti", "--input", "/d", "--output", "/o", "--size", "320x96",
                  "--set", "width=160", "--eval", "--camera-depth")
    assert args.overrides == ["dataset=kitti", "input=/d", "width=320", "height=96", "width=160", "kind=eval",
                              "vel_depth=false"]
    cfg = preprocess.config_from_args(args)
    # later wins; defaults resolved by ShardConfig from what was given (kind=eval -> split test)
    assert (cfg.width, cfg.height, cfg.kind, cfg.split, cfg.vel_depth) == (160, 96, "eval", "test", False)
    assert cfg == ShardConfig(dataset="kitti", input="/d", width=160, height=96, kind="eval", vel_depth=False)


def test_defaults_live_in_the_dataclass_only():
    cfg = preprocess.config_from_args(_parse(preprocess, "--set", "dataset=cityscapes", "--set", "input=/cs",
                                             "--output", "/o"))
    assert cfg == ShardConfig(dataset="cityscapes", input="/cs")
    assert evaluate.protocol_from_args(_parse(evaluate)) == make_protocol("kitti-eigen")


@pytest.mark.parametrize("argv, message", [
    (("--output", "/o", "--dataset", "kitti"), "missing required setting(s) input"),
    (("--output", "/o", "--dataset", "kitti", "--input", "/d", "--set", "nope=1"), "unknown key"),
    (("--output", "/o", "--dataset", "kitti", "--input", "/d", "--set", "width"), "expected KEY=VALUE"),
    (("--output", "/o", "--dataset", "mnist", "--input", "/d"), "dataset must be one of"),
])
def test_shard_config_errors_name_the_setting(argv, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        preprocess.config_from_args(_parse(preprocess, *argv))


def test_eval_protocol_from_a_stored_metrics_json(tmp_path):
    stored = tmp_path / "metrics.json"
    stored.write_text(json.dumps({"metrics": {}, "protocol": make_protocol("cityscapes", max_depth=50.0).settings()}))
    got = evaluate.protocol_from_args(_parse(evaluate, "--config", str(stored), "--min-depth", "0.5"))
    assert got == make_protocol("cityscapes", max_depth=50.0, min_depth=0.5)
    with pytest.raises(UsageError, match="at most one"):
        evaluate.protocol_from_args(_parse(evaluate, "--config", str(stored), "--protocol", "kitti-eigen"))
    assert evaluate.protocol_from_args(_parse(evaluate, "--no-median-scaling", "--scale-factor", "5.4")) == \
        make_protocol("kitti-eigen", use_median_scaling=False, scale_factor=5.4)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"name": "x", "crop": "diagonal"}', "'diagonal' is not one of"),
])
def test_bad_config_files_are_one_line_naming_the_file(tmp_path, capsys, content, message):
    bad = tmp_path / "cfg.json"
    bad.write_text(content)
    pred, gt = tmp_path / "p.npy", tmp_path / "gt.npz"
    np.save(pred, np.ones((1, 4, 5), np.float32))
    np.savez(gt, data=np.ones((1, 8, 10), np.float32))
    rc = main(["eval", "--predictions", str(pred), "--gt", str(gt), "--config", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err and message in err and "Traceback" not in err
    rc = main(["train", "--config", str(bad), "--print-config"])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err
