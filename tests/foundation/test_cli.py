from __future__ import annotations

import subprocess
import sys

import pytest

from jobs.cli import COMMANDS, available_commands, build_parser


def test_every_command_module_exists():
    missing = sorted(set(COMMANDS) - set(available_commands()))
    assert not missing, f"commands listed in jobs/cli.py without a module: {missing}"


def test_help_for_every_command_documents_every_option():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"rmdepth {name} {action.option_strings[0]} has no help text"


@pytest.mark.parametrize("argv", [["--help"], ["info", "--help"]])
def test_help_runs(argv):
    r = subprocess.run([sys.executable, "-m", "jobs", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout


def test_unknown_command_is_usage_error():
    r = subprocess.run([sys.executable, "-m", "jobs", "no-such-command"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "invalid choice" in r.stderr
