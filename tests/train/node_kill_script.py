"""Run by test_node_kill.py in a fresh process: a two-node ray.cluster_utils.Cluster (1 CPU per node, so the two
1-CPU Ray Train workers run one per node), rank 1's worker process SIGKILLed once mid-run (RMDEPTH_FAULT), and the
run left to finish: Ray Train restarts the worker group from the latest checkpoint (scaling.max_failures=1).

Usage: python -m tests.train.node_kill_script TRAIN_URL VAL_URL WORKDIR -> prints one JSON line: the result, the
fault marker (which process was killed, and its parent) and the raylet pid of each node.
"""

from __future__ import annotations

import json
import os
import sys


def main(train_url: str, val_url: str, workdir: str) -> int:
    import ray
    from ray.cluster_utils import Cluster

    from jobs.train import train
    from pipeline import storage
    from tests.train.conftest import small_config

    tmp = os.environ["RAY_TMPDIR"]  # short and private: never the default /tmp/ray that other Ray users share
    os.makedirs(os.path.join(tmp, "ray"), exist_ok=True)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "temp_dir": os.path.join(tmp, "ray")},
    )
    second = cluster.add_node(num_cpus=1)
    out: dict = {"error": None}
    try:
        ray.init(address=cluster.address, log_to_driver=True)  # the workers' "resumed from step N" line
        out["raylets"] = {name: node.all_processes["raylet"][0].process.pid
                          for name, node in (("head", cluster.head_node), ("second", second))}
        out["nodes"] = sum(1 for n in ray.nodes() if n["Alive"])
        out["cpus"] = ray.cluster_resources().get("CPU", 0)
        marker = os.path.join(workdir, "fault")
        os.environ["RMDEPTH_FAULT"] = f"point=train_step,at=7,rank=1,action=kill,marker={marker}"
        cfg = small_config(
            {"train": train_url, "val": val_url},
            "train.epochs=2", "train.max_steps_per_epoch=4", "checkpoint.every_steps=3", "checkpoint.keep_top_k=10",
            "scaling.num_workers=2", "scaling.max_failures=1", "scaling.cpus_per_worker=1", "train.validate=false",
        )
        res = train(cfg, storage_path=os.path.join(workdir, "runs"), run_name="nodekill")
        out.update(final_step=res.final_step, history_steps=[r["step"] for r in res.history],
                   checkpoints=sorted(n for n in storage.listdir(res.run_url) if n.startswith("checkpoint_e")),
                   marker=open(marker).read() if os.path.exists(marker) else "")
    except BaseException as e:  # reported in the JSON line
        out["error"] = repr(e)
    finally:
        print(json.dumps(out), flush=True)
        ray.shutdown()
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
