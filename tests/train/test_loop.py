"""The training loop without Ray (engine.runtime.LocalRuntime): resume equivalence, complete strict checkpoints,
logging, retention and the scaling policy."""

from __future__ import annotations

import json
import os
import pickle
import time

import pytest
import torch

from engine import checkpoint as ck
from engine.checkpoint import checkpoints_to_delete
from engine.config import OptimConfig
from engine.data import build_loaders
from engine.optim import lr_at
from engine.runtime import LocalRuntime
from engine.trainer import fit
from tests.train.conftest import small_config

# 2 epochs x 3 steps; checkpoints at steps 2, 3 (epoch end), 4, 6; validation off (it does not touch the weights);
# channels-last weights, so that resuming and strict loading are checked with that layout too.
LOOP = ["train.epochs=2", "train.max_steps_per_epoch=3", "checkpoint.every_steps=2", "checkpoint.keep_top_k=10",
        "train.validate=false", "train.channels_last=true"]


def _state(run_url: str):
    with LocalRuntime(run_url).latest_checkpoint() as d:
        model = torch.load(os.path.join(d, ck.MODEL_FILE), weights_only=True)
        state = torch.load(os.path.join(d, ck.STATE_FILE), weights_only=True)
        return model, state, json.loads(open(os.path.join(d, ck.HISTORY_FILE)).read())


@pytest.fixture(scope="module")
def runs(shard_sets, tmp_path_factory):
    """One uninterrupted run, and one that fails after step 5 and is resumed (from the step-4 checkpoint)."""
    root = tmp_path_factory.mktemp("loop")
    cfg = small_config(shard_sets, *LOOP)
    full = str(root / "full")
    res_full = fit(cfg, LocalRuntime(full, keep_top_k=10), loaders=build_loaders, run_name="full",
                   tensorboard_dir=str(root / "tb_full"))
    broken = str(root / "broken")
    os.environ["RMDEPTH_FAULT"] = f"point=train_step,at=5,rank=0,action=raise,marker={root / 'fault-marker'}"
    try:
        with pytest.raises(RuntimeError, match="injected failure at train_step 5"):
            fit(cfg, LocalRuntime(broken, keep_top_k=10), loaders=build_loaders, run_name="broken",
                tensorboard_dir=str(root / "tb_broken"))
        res_resumed = fit(cfg, LocalRuntime(broken, keep_top_k=10), loaders=build_loaders, run_name="broken",
                          tensorboard_dir=str(root / "tb_broken"))
    finally:
        os.environ.pop("RMDEPTH_FAULT")
    return {"cfg": cfg, "root": root, "full": full, "broken": broken, "res_full": res_full, "res_resumed": res_resumed}


def test_resume_equals_uninterrupted(runs):
    assert runs["res_resumed"].resumed_from_step == 4
    assert runs["res_full"].position.step == runs["res_resumed"].position.step == 6
    m_full, s_full, h_full = _state(runs["full"])
    m_res, s_res, h_res = _state(runs["broken"])
    convs = [v for v in m_full["depth_net"].values() if v.ndim == 4]
    assert convs and all(v.is_contiguous(memory_format=torch.channels_last) for v in convs)  # the option took effect
    for net in ck.NET_NAMES:
        assert m_full[net].keys() == m_res[net].keys()
        for k, v in m_full[net].items():
            torch.testing.assert_close(m_res[net][k], v, rtol=1e-5, atol=1e-6, msg=f"{net}.{k} differs after resume")
    # Adam moments hold raw gradients, where CPU kernels' run-to-run float noise shows (also without a restart);
    # the pose decoder's metric-scale translation output has gradients ~100x Monodepth2's 0.01-scaled one
    for pid, st in s_full["optimizer"]["state"].items():
        torch.testing.assert_close(s_res["optimizer"]["state"][pid]["exp_avg"], st["exp_avg"], rtol=1e-3, atol=5e-5)
        assert s_res["optimizer"]["state"][pid]["step"] == st["step"]
    assert s_full["position"] == s_res["position"]
    assert s_full["scheduler"] == s_res["scheduler"]
    # same data order and augmentation: the per-step losses match, and the history spans the restart
    loss_full = {r["step"]: r["loss"] for r in h_full["train"]}
    loss_res = {r["step"]: r["loss"] for r in h_res["train"]}
    assert sorted(loss_full) == sorted(loss_res) == [1, 2, 3, 4, 5, 6]
    for step in loss_full:
        assert loss_res[step] == pytest.approx(loss_full[step], rel=1e-4), step


def test_checkpoint_is_complete_and_loads_strictly(runs, tmp_path):
    url = LocalRuntime(runs["full"]).checkpoint_urls()[-1]
    names = set(os.listdir(url))
    assert {ck.MODEL_FILE, ck.STATE_FILE, ck.CONFIG_FILE, ck.IDENTITY_FILE, ck.HISTORY_FILE} <= names
    ident = ck.read_identity(url)
    assert ident["step"] == 6 and ident["epoch"] == 2 and ident["run_name"] == "full"
    assert ident["seed"] == runs["cfg"].train.seed and ident["code_version"]
    state = torch.load(os.path.join(url, ck.STATE_FILE), weights_only=True)
    assert set(state["rng"][0]) >= {"torch", "numpy_keys", "python_state"}
    net, cfg, ident2 = ck.load_inference_model(url)
    assert not net.training and cfg == runs["cfg"] and ident2["step"] == 6
    with pytest.raises(ValueError, match="does not match the network|shape mismatch"):
        from model.config import DepthNetConfig, MotionNetConfig
        from model.nets import build_nets

        ck.load_weights(url, build_nets(DepthNetConfig(), MotionNetConfig()))  # default widths != checkpoint
    # a pickled object (not tensors/containers) is refused by weights_only loading
    bad = tmp_path / "bad"
    bad.mkdir()
    with open(bad / ck.MODEL_FILE, "wb") as f:
        pickle.dump({"format": ck.FORMAT, "depth_net": torch.nn.Linear(2, 2)}, f)
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        ck.load_weights(str(bad), net)
    with pytest.raises(FileNotFoundError, match="missing"):
        ck.load_inference_model(str(tmp_path / "nowhere"))


def test_retention_keeps_latest_and_tensorboard_logged(runs):
    # keep_top_k=10: all of 2, 3, 4, 6 kept; the latest is last
    names = [os.path.basename(u) for u in LocalRuntime(runs["full"]).checkpoint_urls()]
    assert names == ["checkpoint_e000_s000000002", "checkpoint_e001_s000000003", "checkpoint_e001_s000000004",
                     "checkpoint_e002_s000000006"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(runs["root"] / "tb_full"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/lr", "perf/samples_per_s", "perf/data_wait_fraction"} <= set(tags["scalars"])
    assert {"images/input", "images/depth", "images/motion_field", "images/flow"} <= set(tags["images"])
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]


def test_init_checkpoint_is_recorded_as_parent(runs, shard_sets, tmp_path):
    parent = LocalRuntime(runs["full"]).checkpoint_urls()[-1]
    cfg = small_config(shard_sets, "train.epochs=1", "train.max_steps_per_epoch=1", f"init_checkpoint={parent}")
    rt = LocalRuntime(str(tmp_path / "child"))
    fit(cfg, rt, loaders=build_loaders, run_name="child", tensorboard_dir=str(tmp_path / "tb"))
    child = rt.checkpoint_urls()[-1]
    assert ck.read_identity(child)["parent_checkpoint"] == parent
    assert ck.read_identity(child)["step"] == 1  # weights from the parent, a fresh optimizer and step counter
    metrics = ck.read_identity(child)["metrics"]
    assert metrics["val_abs_rel"] > 0 and metrics["val_baseline_abs_rel"] > 0


def test_retention_policy():
    e = [{"name": f"c{i}", "metrics": {"val_abs_rel": v}} for i, v in enumerate([0.5, 0.3, float("inf"), 0.4, 0.9])]
    assert checkpoints_to_delete(e, keep_top_k=2, score_metric="val_abs_rel") == ["c0", "c2"]  # keeps c1, c3 + latest
    assert checkpoints_to_delete(e[:1], keep_top_k=1, score_metric="val_abs_rel") == []
    no_score = [{"name": f"c{i}", "metrics": {}} for i in range(3)]
    assert checkpoints_to_delete(no_score, keep_top_k=1, score_metric="val_abs_rel") == ["c0", "c1"]


def test_lr_policy_follows_world_size():
    cfg = OptimConfig(lr=1e-4, warmup_samples=100, decay_epochs=(2,), decay_factor=0.1, lr_scaling="linear")
    assert lr_at(cfg, samples_seen=49, epoch=0, world_size=1) == pytest.approx(0.5e-4)
    assert lr_at(cfg, samples_seen=500, epoch=1, world_size=4) == pytest.approx(4e-4)
    assert lr_at(cfg, samples_seen=500, epoch=2, world_size=4) == pytest.approx(4e-5)
    sq = OptimConfig(lr=1e-4, lr_scaling="sqrt", base_world_size=2, decay_epochs=())
    assert lr_at(sq, samples_seen=0, epoch=0, world_size=8) == pytest.approx(2e-4)


def test_position_remap_on_resize():
    pos = ck.TrainPosition(step=10, epoch=3, step_in_epoch=5, samples_seen=999, epoch_samples=40, world_size=2)
    def remapped(**kw):
        state = ck.TrainState(nets=None, optimizer=None, schedule=None, position=pos)
        state.remap_position(**kw)
        return state.position

    assert remapped(world_size=2, global_batch=8, steps_per_epoch=9) == pos
    one = remapped(world_size=1, global_batch=4, steps_per_epoch=18)
    assert (one.epoch, one.step_in_epoch, one.epoch_samples, one.step) == (3, 10, 40, 10)
    four = remapped(world_size=4, global_batch=16, steps_per_epoch=4)
    assert (four.step_in_epoch, four.epoch_samples) == (3, 48)  # ceil(40/16): nothing trained twice
    done = remapped(world_size=4, global_batch=16, steps_per_epoch=2)
    assert (done.epoch, done.step_in_epoch) == (4, 0)


class _SlowTrainLoader:
    """The real training loader, with `delay_s` of waiting before each batch (a loader that cannot keep up)."""

    def __init__(self, inner, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.num_batches_per_epoch = inner.num_batches_per_epoch

    def epoch_iterator(self, epoch: int, start: int = 0):
        for batch in self.inner.epoch_iterator(epoch, start):
            time.sleep(self.delay_s)
            yield batch


def test_data_wait_counts_the_wait_for_the_loader(shard_sets, tmp_path):
    """The logged data-wait fraction includes the time the loop is blocked on the loader, not only the device copy."""
    cfg = small_config(shard_sets, "train.epochs=1", "train.max_steps_per_epoch=4", "train.validate=false",
                       "checkpoint.every_steps=0", "train.log_every_steps=4")

    def loaders(cfg, rank, world_size):
        data = build_loaders(cfg, rank, world_size)
        return data._replace(train=_SlowTrainLoader(data.train, delay_s=1.0))

    res = fit(cfg, LocalRuntime(str(tmp_path / "run")), loaders=loaders, run_name="slow",
              tensorboard_dir=str(tmp_path / "tb"))
    row = [r for r in res.history if r["step"] == 4][0]
    # 1 s of waiting per step against a small net's ~0.1 s step: most of the time is waiting
    assert row["data_wait_fraction"] > 0.6, row
