"""`rmdepth info`: parameter counts, ablation overrides, clear errors."""

from __future__ import annotations

import jobs.info
from jobs.cli import run_module


def test_info_prints_parameter_counts(capsys):
    assert run_module(jobs.info, ["--breakdown"]) == 0
    out = capsys.readouterr().out
    assert "| depth net | 2,969,204 |" in out and "motion net" in out and "depth.fusions" in out


def test_info_applies_ablation_switches(capsys):
    assert (
        run_module(
            jobs.info, ["--set", "depth.use_modulation=false", "--set", "motion.use_object_motion=false"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| depth net | 2,969,204 |" not in out and '"use_modulation": false' in out


def test_info_rejects_unknown_keys_and_invalid_values(capsys):
    assert run_module(jobs.info, ["--set", "depth.nope=1"]) == 2
    assert "depth.nope" in capsys.readouterr().err
    assert run_module(jobs.info, ["--set", "depth.rmu_steps=0,1,1"]) == 2
    assert "rmu_steps" in capsys.readouterr().err
