"""Import rules of the one-way data flow (style.md): model/ and pipeline/ are self-contained; Ray only in jobs/."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = {"pipeline", "model", "engine", "jobs", "configs"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _files(package: str):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", ["pipeline", "model", "engine", "configs"])
def test_ray_only_in_jobs(package):
    for f in _files(package):
        bad = {m for m in _imports(f) if m == "ray" or m.startswith("ray.")}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}: Ray belongs in jobs/ only"


def test_model_is_pure_pytorch():
    forbidden = ("torch.distributed", "nvidia", "boto3", "s3fs", "fsspec", "webdataset", "pipeline", "engine", "jobs")
    for f in _files("model"):
        for m in _imports(f):
            assert not any(m == p or m.startswith(p + ".") for p in forbidden), f"{f.relative_to(ROOT)} imports {m}"


def test_pipeline_imports_no_other_project_package():
    for f in _files("pipeline"):
        for m in _imports(f):
            top = m.split(".")[0]
            assert top not in PROJECT_PACKAGES - {"pipeline"}, f"{f.relative_to(ROOT)} imports {m}"


def test_engine_imports_neither_jobs_nor_configs():
    """engine/ sits below configs/ (the presets compose engine's RunConfig) and jobs/: no import loop."""
    for f in _files("engine"):
        for m in _imports(f):
            assert m.split(".")[0] not in ("jobs", "configs"), f"{f.relative_to(ROOT)} imports {m}"
