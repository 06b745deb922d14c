"""The code version recorded with every shard set, checkpoint and report (one format everywhere)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_version() -> str:
    """`RMDEPTH_CODE_VERSION` if set (e.g. `ray job submit` working dirs without .git), else `git:<describe>` of the
    checkout (commit, `-dirty` with uncommitted changes), else `rmdepth==<installed version>`, else `unknown`."""
    env = os.environ.get("RMDEPTH_CODE_VERSION")
    if env:
        return env
    try:
        out = subprocess.run(["git", "-C", _REPO, "describe", "--always", "--dirty", "--tags"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"git:{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"rmdepth=={importlib.metadata.version('rmdepth')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
