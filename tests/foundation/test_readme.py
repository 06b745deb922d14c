"""Every command shown in README.md (and in the demo report's cluster section) exists with those options.

`make` targets must exist in the Makefile; `rmdepth ...` lines and the `python -m jobs.<x> ...` part of cluster-only
`ray job submit` lines are parsed by the real argument parsers (nothing is run here: the demo and the per-command
tests run them).
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import re
import shlex

import pytest

from jobs.cli import build_parser

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _bash_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for raw in joined.splitlines():
            line = raw.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _readme_lines() -> list[str]:
    return _bash_lines((ROOT / "README.md").read_text())


def _report_lines() -> list[str]:
    from jobs.demo_report import CLUSTER_COMMANDS

    return _bash_lines(f"```bash\n{CLUSTER_COMMANDS}```")


class _Fail(Exception):
    pass


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    def error(message):
        raise _Fail(message)

    for p in [parser, *_subparsers(parser)]:
        p.error = error
    try:
        parser.parse_args(argv)
    except SystemExit as e:  # --help etc.
        if e.code not in (0, None):
            raise _Fail(f"exit {e.code}") from None


def _subparsers(parser):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for p in a.choices.values():
                yield p
                yield from _subparsers(p)


def _check(line: str) -> None:
    argv = shlex.split(line)
    if argv[0] == "make":
        targets = re.findall(r"^([A-Za-z0-9_-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
        for t in argv[1:]:
            assert t in targets, f"make target {t!r} not in Makefile"
    elif argv[0] == "rmdepth":
        _parse(build_parser(), argv[1:])
    elif argv[:3] == ["ray", "job", "submit"]:
        rest = argv[argv.index("--") + 1 :]
        assert rest[:2] == ["python", "-m"], line
        module = importlib.import_module(rest[2])
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        _parse(parser, rest[3:])
    elif argv[0] in ("kubectl", "tensorboard"):
        pass
    else:
        pytest.fail(f"README command not covered by this test: {line}")


@pytest.mark.parametrize("line", _readme_lines() + _report_lines())
def test_command_parses(line):
    try:
        _check(line)
    except _Fail as e:
        pytest.fail(f"{line}\n-> {e}")


def test_readme_has_the_two_commands():
    lines = _readme_lines()
    assert "make demo" in lines and "make test" in lines


def test_infra_and_presets_named_in_readme_exist():
    from configs.presets import list_presets

    text = (ROOT / "README.md").read_text()
    for name in ("tiny_cpu", "kitti_640x192", "cityscapes_640x192", "cs_then_kitti"):
        assert name in text and name in list_presets()
    for path in ("infra/image/Dockerfile", "infra/cluster", "infra/k8s", "BENCHMARKS.md"):
        assert (ROOT / path).exists(), path
