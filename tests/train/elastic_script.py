"""Run by test_elastic.py in a fresh process: a two-node ray.cluster_utils.Cluster, an elastic (1, 2) run, one node
removed mid-run (continue at world size 1 from the latest checkpoint) and added back (scale up to 2 again).

Usage: python -m tests.train.elastic_script TRAIN_URL VAL_URL WORKDIR -> prints one JSON line with the world sizes
of the checkpoints in reporting order.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time


def main(train_url: str, val_url: str, workdir: str) -> int:
    import ray
    from ray.cluster_utils import Cluster

    from engine.checkpoint import read_identity
    from jobs.train import train
    from pipeline import storage
    from tests.train.conftest import small_config

    # RAY_TMPDIR (set by the test to a short private dir) keeps this cluster's address file and sockets away from
    # the default /tmp/ray that other Ray users on the machine share.
    tmp = os.environ["RAY_TMPDIR"]
    os.makedirs(os.path.join(tmp, "ray"), exist_ok=True)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "temp_dir": os.path.join(tmp, "ray")},
    )
    node2 = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    storage_path = os.path.join(workdir, "runs")
    run_url = os.path.join(storage_path, "elastic")
    cfg = small_config(
        {"train": train_url, "val": val_url},
        "train.epochs=200", "train.max_steps_per_epoch=1", "train.validate=false", "checkpoint.keep_top_k=1000",
        "scaling.min_workers=1", "scaling.max_workers=2", "scaling.max_failures=5", "scaling.cpus_per_worker=1",
        "scaling.resize_check_interval_s=2",
    )
    out: dict = {}

    def run() -> None:
        try:
            out["result"] = train(cfg, storage_path=storage_path, run_name="elastic")
        except BaseException as e:  # reported below
            out["error"] = repr(e)

    seen: dict[str, tuple[int, int]] = {}  # checkpoint name -> (world size, step) when first seen / rewritten
    events: list[tuple[str, int, int]] = []

    def world_sizes() -> list[int]:
        """World sizes of the checkpoints seen so far, in the order they appeared (rewrites count again)."""
        for n in sorted(n for n in storage.listdir(run_url) if n.startswith("checkpoint_e")):
            try:
                ident = read_identity(os.path.join(run_url, n))
            except FileNotFoundError:
                continue  # being written
            rec = (ident["world_size"], ident["step"])
            if seen.get(n) != rec:
                seen[n] = rec
                events.append((n, *rec))
        return [e[1] for e in events]

    timeline: list[tuple[str, float]] = []
    t_start = time.time()

    def wait(pred, what: str, timeout: float = 240) -> None:
        t0 = time.time()
        while not pred():
            if "error" in out or "result" in out:
                raise RuntimeError(f"run ended while waiting for {what}: {out}")
            if time.time() - t0 > timeout:
                raise TimeoutError(f"timed out waiting for {what}; checkpoints so far: {world_sizes()}")
            time.sleep(0.5)
        timeline.append((what, round(time.time() - t_start, 1)))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        # a checkpoint dir is visible a moment before Ray registers it: wait for 3 so that some are committed
        wait(lambda: world_sizes().count(2) >= 3, "three checkpoints at world size 2")
        cluster.remove_node(node2)  # main thread (Cluster needs it)
        wait(lambda: 1 in world_sizes(), "a checkpoint at world size 1 after the node loss")
        cluster.add_node(num_cpus=1)
        wait(lambda: 2 in world_sizes()[world_sizes().index(1):], "a checkpoint at world size 2 after the node came back")
        # Done: the run need not finish (its remaining epochs would only repeat what was shown); the cluster goes down.
    finally:
        world_sizes()
        print(json.dumps({"events": events, "error": out.get("error"), "timeline": timeline}), flush=True)
        ray.shutdown()
        cluster.shutdown()
        os._exit(0)  # the training thread is still inside fit(); its cluster is gone
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
