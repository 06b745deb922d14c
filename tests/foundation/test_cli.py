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


def test_a_failing_ray_task_is_one_line(ray_local):
    """A Ray task's own error, not Ray's multi-page RayTaskError (jobs/ray_cluster.task_errors_in_one_line)."""
    from jobs.errors import JobError
    from jobs.eval_runner import run_parts

    def part(*, rank: int) -> int:
        if rank == 1:
            raise ValueError("s3://bucket/shards/kitti-test-000001.tar: sample 'k1' tgt.jpg is not a decodable image")
        return rank

    with pytest.raises(JobError) as info:
        run_parts(part, [{"rank": 0}, {"rank": 1}], num_cpus=0.5, num_gpus=0.0, address=None)
    assert str(info.value) == ("a worker failed: s3://bucket/shards/kitti-test-000001.tar: sample 'k1' tgt.jpg is "
                               "not a decodable image")


def test_an_unexpected_exception_is_one_line_unless_debugging(monkeypatch, capsys):
    import argparse

    from jobs.cli import _guarded

    def boom(args):
        raise RuntimeError("DALI failed reading one of the samples ['a', 'b'] in x.tar: Error in thread 0\nmore")

    monkeypatch.delenv("RMDEPTH_DEBUG", raising=False)
    assert _guarded(boom, None, "rmdepth eval", argparse.ArgumentParser()) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: DALI failed reading" in err and "RMDEPTH_DEBUG=1" in err
    monkeypatch.setenv("RMDEPTH_DEBUG", "1")
    with pytest.raises(RuntimeError):
        _guarded(boom, None, "rmdepth eval", argparse.ArgumentParser())
