"""A training worker killed with SIGKILL on a two-node local Ray cluster (ray.cluster_utils.Cluster, in a
subprocess with its own RAY_TMPDIR): the run completes from the last checkpoint with the same number of optimizer
steps as an uninterrupted run, each step counted once."""

from __future__ import annotations

import re

import pytest

from tests.train.conftest import run_private_cluster_script

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_sigkilled_worker_on_the_second_node_resumes_from_the_last_checkpoint(shard_sets, tmp_path):
    out, stdout = run_private_cluster_script("tests.train.node_kill_script", shard_sets["train"], shard_sets["val"],
                                             str(tmp_path), prefix="rmdnk-", timeout=300)
    # two nodes of 1 CPU each and two 1-CPU workers: one worker per node. The fault fired once, in rank 1's worker
    # process, a child of one node's raylet (which node gets rank 1 is Ray Train's choice)
    assert out["nodes"] == 2 and out["cpus"] == 2, out
    fired = re.fullmatch(r"train_step fired at 7 on rank 1 in pid (\d+) \(parent (\d+)\)\n", out["marker"])
    assert fired, out["marker"]
    assert int(fired.group(2)) in out["raylets"].values(), out
    print("SIGKILLed rank 1 on the", {v: k for k, v in out["raylets"].items()}[int(fired.group(2))], "node")
    # the restarted group resumed from a checkpoint, not from scratch: the latest one Ray Train had registered when
    # the worker died after step 7 (checkpoints at steps 3, 4 (epoch end) and 6; registering one lags its writing)
    resumed = [int(s) for s in re.findall(r"\[rmdepth train nodekill\] resumed from step (\d+) ", stdout)]
    assert len(resumed) == 1 and resumed[0] in (3, 4, 6), stdout[-3000:]
    # completed: 2 epochs x 4 steps, the same number of optimizer steps as an uninterrupted run, each step once
    assert out["final_step"] == 8
    assert out["history_steps"] == list(range(1, 9)), out["history_steps"]
    assert out["checkpoints"][-1] == "checkpoint_e002_s000000008", out["checkpoints"]
