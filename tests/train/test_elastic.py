"""Multi-node elastic training on one machine (ray.cluster_utils.Cluster in a subprocess with its own
RAY_TMPDIR, so that it never meets the session's or other users' Ray instances): elastic (1, 2) workers on two nodes; a node is removed mid-run -> training continues at
world size 1 from the latest checkpoint; the node is added back -> the group grows to 2 again."""

from __future__ import annotations

import pytest

from tests.train.conftest import run_private_cluster_script

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_elastic_scale_down_and_up(shard_sets, tmp_path):
    out, _ = run_private_cluster_script("tests.train.elastic_script", shard_sets["train"], shard_sets["val"],
                                        str(tmp_path), prefix="rmdel-", timeout=600)
    events = out["events"]  # (checkpoint name, world size, step) in the order they appeared
    print("checkpoints (name, world size, step):", events, "timeline (s):", out["timeline"])
    sizes = [e[1] for e in events]
    first_one = sizes.index(1)
    assert 2 in sizes[:first_one] and 2 in sizes[first_one:], sizes  # 2 -> 1 -> 2
    # the smaller group resumed from a checkpoint written by the larger one (not from scratch)
    resumed_from = events[first_one][2] - 1  # one optimizer step per epoch, a checkpoint per epoch
    assert resumed_from >= 1 and any(e[1] == 2 and e[2] == resumed_from for e in events[:first_one]), events
    # ...and the regrown group resumed from one written at world size 1
    back = next(i for i in range(first_one, len(events)) if events[i][1] == 2)
    assert any(e[1] == 1 and e[2] == events[back][2] - 1 for e in events[first_one:back]), events

