"""infra/: every manifest parses, and every entrypoint it runs is a real module whose parser accepts the arguments
(presets exist, --set overrides apply to the preset). The Dockerfile pins CUDA, torch, DALI and Ray."""

from __future__ import annotations

import argparse
import importlib
import pathlib
import re
import shlex

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
YAMLS = sorted(INFRA.rglob("*.yaml"))


def _entrypoints(doc: dict) -> list[list[str]]:
    kind = doc.get("kind")
    spec = doc.get("spec", {})
    if kind == "RayJob":
        return [shlex.split(spec["entrypoint"])]
    if kind == "RayCronJob":
        return [shlex.split(spec["jobTemplate"]["entrypoint"])]
    if kind == "CronJob":
        out = []
        for c in spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]:
            argv = list(c.get("command", [])) + list(c.get("args", []))
            assert argv[:3] == ["ray", "job", "submit"] and "--" in argv, f"CronJob container must run ray job submit: {argv}"
            out.append(argv[argv.index("--") + 1 :])
        return out
    return []


def _all_entrypoints():
    eps = []
    for path in YAMLS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                eps += [(path.name, ep) for ep in _entrypoints(doc)]
    return eps


def test_manifests_parse_and_have_expected_kinds():
    assert YAMLS, "no manifests in infra/"
    kinds = set()
    for path in YAMLS:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs, f"{path} is empty"
        for d in docs:
            kinds.add(d.get("kind", "launcher" if "available_node_types" in d else None))
    assert {"RayCluster", "RayJob", "RayCronJob", "CronJob", "launcher"} <= kinds, kinds


def test_cluster_launcher_has_gpu_workers():
    doc = yaml.safe_load((INFRA / "cluster" / "aws-gpu.yaml").read_text())
    assert doc["provider"]["type"] == "aws"
    assert any(t.get("resources", {}).get("GPU", 0) >= 1 for t in doc["available_node_types"].values())
    assert doc["head_node_type"] in doc["available_node_types"]


def test_entrypoint_stages_are_covered():
    modules = {ep[2] for _, ep in _all_entrypoints()}
    assert {"jobs.preprocess", "jobs.train", "jobs.evaluate", "jobs.reeval"} <= modules, modules


@pytest.mark.parametrize("where,argv", _all_entrypoints(), ids=lambda x: x if isinstance(x, str) else x[2])
def test_entrypoint_is_a_real_module_and_its_arguments_parse(where, argv):
    assert argv[:2] == ["python", "-m"], f"{where}: entrypoint must be `python -m jobs.<x> ...`, got {argv[:3]}"
    module = importlib.import_module(argv[2])
    assert hasattr(module, "add_arguments") and hasattr(module, "run"), f"{where}: {argv[2]} is not a job module"
    parser = argparse.ArgumentParser(exit_on_error=False)
    module.add_arguments(parser)
    try:
        args = parser.parse_args(argv[3:])
    except (argparse.ArgumentError, SystemExit) as e:
        pytest.fail(f"{where}: {argv[2]} rejects its arguments: {e}")
    if getattr(args, "preset", ""):
        from configs.presets import PRESETS
        from engine.config_io import apply_overrides

        assert args.preset in PRESETS, f"{where}: unknown preset {args.preset}"
        apply_overrides(PRESETS[args.preset](), args.overrides)  # raises on an unknown key


def test_dockerfile_pins_the_stack():
    text = (INFRA / "image" / "Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:12\.\d+\.\d+-", text, re.M)
    assert "torch==2.13.0" in text and "download.pytorch.org/whl/cu12" in text
    assert "nvidia-dali-cuda120==2.4.0" in text
    assert "ray[default,train]==2.60.0" in text
    for pkg in re.findall(r"^COPY (\w+) ", text, re.M):
        assert (ROOT / pkg).is_dir(), f"Dockerfile copies {pkg}/ which does not exist"


def test_presets_named_in_the_brief_exist():
    from configs.presets import PRESETS

    assert {"tiny_cpu", "kitti_640x192", "cityscapes_640x192", "cs_then_kitti"} <= set(PRESETS)
