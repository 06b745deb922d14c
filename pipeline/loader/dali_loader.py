"""DALI loaders: a RankPlan becomes per-epoch DALI index files, a pipeline, and Batch / EvalBatch objects.

Shape legend: B batch, S=3 frames, C=3, H, W training size.

Each `epoch_iterator(epoch, start_step)` call writes, into a temporary directory, one small .idx file per run of
consecutive plan entries from the same tar (the tar's own index lines, in plan order), and builds a pipeline whose
webdataset reader reads exactly those samples in that order: no reader-side shuffle, no skipping by decoding.
Augmentation parameters for the same entries are fed through external_source, so the output is deterministic per
(seed, epoch) and a resume at (epoch, step) reproduces the remaining batches exactly.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

from pipeline.batch import Batch, EvalBatch, SkippedFrame
from pipeline.loader import augment, partition
from pipeline.loader.config import LoaderConfig
from pipeline.loader.core import EvalOrder, LoaderCore, TrainOrder
from pipeline.loader.dali_pipeline import (
    EVAL_OUTPUTS,
    READER_NAME,
    TRAIN_OUTPUTS,
    eval_pipeline,
    triplet_pipeline,
)
from pipeline.loader.shardset import ShardSet, load_npy

log = logging.getLogger(__name__)


class _DaliBatchError(RuntimeError):
    """DALI failed while producing batch `step` of a plan (or one prefetched after it)."""

    def __init__(self, description: str, step: int):
        super().__init__(description)
        self.step = step


def check_dali_s3_env(urls: tuple[str, ...]) -> None:
    """DALI's S3 client (aws-sdk-cpp) uses virtual-host addressing: a custom endpoint must be an IP literal."""
    if not any(u.startswith("s3://") for u in urls):
        return
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint:
        return
    host = urllib.parse.urlparse(endpoint).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        log.warning(
            "AWS_ENDPOINT_URL host %r is not an IP literal: DALI's S3 client will address <bucket>.%s; "
            "use an IP endpoint or LoaderConfig.cache_dir",
            host,
            host,
        )


def _write_indices(shard_set: ShardSet, ids_M: np.ndarray, dirpath: str) -> tuple[list[str], list[str]]:
    """One .idx per run of same-tar entries; returns (tar paths, index paths) in read order."""
    shard_of_M = np.array([shard_set.samples[i].shard for i in ids_M], dtype=np.int64)
    paths, index_paths = [], []
    for j, (shard, a, b) in enumerate(partition.segments(shard_of_M)):
        p = os.path.join(dirpath, f"seg-{j:07d}.idx")
        lines = [shard_set.samples[i].line for i in ids_M[a:b]]
        with open(p, "w") as f:
            f.write(f"v1.2 {len(lines)}\n" + "\n".join(lines) + "\n")
        paths.append(shard_set.tar_urls[shard])
        index_paths.append(p)
    return paths, index_paths


def _meta_keys(meta_BL: torch.Tensor) -> list[str | None]:
    out = []
    for row in meta_BL.cpu().numpy():
        text = bytes(row).rstrip(b"\0")
        try:
            out.append(json.loads(text).get("key"))
        except (ValueError, AttributeError):
            out.append(None)
    return out


def _check_keys(expected: list[str], meta_BL: torch.Tensor, where: str) -> None:
    for want, got in zip(expected, _meta_keys(meta_BL)):
        if got is not None and got != want:
            raise ValueError(f"{where}: meta.json key {got!r} != tar member key {want!r}")


def _applied_params(out: dict) -> augment.AugmentParams:
    """The geometric parameters the graph applied (its external_source outputs), as float64 (x0, y0, x1, y1)."""
    start = out["roi_start"].cpu().numpy().astype(np.float64)
    end = out["roi_end"].cpu().numpy().astype(np.float64)
    roi = np.stack([start[:, 1], start[:, 0], end[:, 1], end[:, 0]], axis=1)
    flip = out["flip"].cpu().numpy().reshape(-1) != 0
    return augment.AugmentParams(flip_N=flip, roi_N4=roi, color_N4=np.zeros((len(flip), 4)))


class _DaliDecoder(LoaderCore):
    kind = "dali"

    def __init__(
        self, shard_set: ShardSet, cfg: LoaderConfig, *, rank: int, world_size: int, device_id: int | None
    ):
        super().__init__(shard_set, cfg, rank=rank, world_size=world_size)
        self.device_id = device_id
        self.decode_device = "mixed" if device_id is not None else "cpu"
        check_dali_s3_env(shard_set.tar_urls)

    def _describe_failure(self, plan: partition.RankPlan, step: int, err: Exception) -> str:
        """DALI's decode errors do not name the sample: name the batches that may be in flight (prefetch)."""
        B = self.cfg.batch_size
        ids = plan.sample_ids_M[step * B : (step + self.cfg.prefetch + 1) * B]
        tars = sorted({self.shard_set.tar_urls[self.shard_set.samples[i].shard] for i in ids})
        keys = [self.shard_set.samples[i].key for i in ids]
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        where = next((ln.rstrip(",") for ln in lines if ln.startswith("Error in")), "")
        reason = (
            lines[lines.index("encountered:") + 1] if "encountered:" in lines[:-1] else " ".join(lines[:2])
        )
        reason = f"{where}: {reason}" if where else reason
        return f"DALI failed reading one of the samples {keys} in {', '.join(tars)}: {reason}"

    def _run(self, plan: partition.RankPlan, build_pipe, output_map) -> Iterator[tuple[int, dict]]:
        """Yield (batch index within `plan`, outputs) for every batch of `plan`."""
        if plan.num_batches == 0:
            return
        tmp = tempfile.mkdtemp(prefix="rmdepth-dali-idx-")
        it = pipe = None
        try:
            paths, index_paths = _write_indices(self.shard_set, plan.sample_ids_M, tmp)
            pipe = build_pipe(
                paths=paths,
                index_paths=index_paths,
                height=self.cfg.height,
                width=self.cfg.width,
                decode_device=self.decode_device,
                batch_size=self.cfg.batch_size,
                num_threads=self.cfg.num_threads,
                device_id=self.device_id,
                seed=self.cfg.seed,
                prefetch_queue_depth=self.cfg.prefetch,
            )
            step = 0
            try:  # the iterator runs the pipeline (prefetch) already when it is created
                it = DALIGenericIterator(
                    [pipe], list(output_map), reader_name=READER_NAME, last_batch_policy=LastBatchPolicy.DROP
                )
                for step in range(plan.num_batches):
                    out = next(it)[0]
                    yield step, out
            except RuntimeError as e:
                raise _DaliBatchError(self._describe_failure(plan, step, e), step) from e
        finally:
            del it, pipe
            shutil.rmtree(tmp, ignore_errors=True)


    def _damaged(self, plan: partition.RankPlan, step: int) -> dict[int, Any]:
        """{position in the plan: what is wrong} of the damaged samples among the batches in flight at `step`."""
        raise NotImplementedError

    def _past_damaged(self, plan: partition.RankPlan, batches, absorb) -> Iterator[tuple[int, Any]]:
        """(step, batch) of `plan` from `batches(plan, first_step)`; when DALI fails on a batch, the damaged samples
        among those in flight (`_damaged`) are handed to `absorb(plan, found) -> new plan` and the pipeline restarts
        at the failed batch; a failure with no damaged sample found is raised as it is."""
        done = 0
        while done < plan.num_batches:
            try:
                for step, batch in batches(plan, done):
                    yield done + step, batch
                return
            except _DaliBatchError as err:
                failed = done + err.step
                found = self._damaged(plan, failed)
                if not found:
                    raise RuntimeError(str(err)) from err
                plan = absorb(plan, found)
                done = failed

class _Triplets(_DaliDecoder):
    def epoch_iterator(self, epoch: int = 0, start_step: int = 0) -> Iterator[Batch]:
        """The batches of `epoch` from `start_step`. When DALI fails on a damaged sample, the batches in flight are
        checked sample by sample (PIL), each damaged one is replaced in the plan by a good sample of its batch (its
        slot marked invalid, the sample named in Batch.bad_samples), and the pipeline restarts at the failed batch."""
        plan, params = self.epoch_plan(epoch, start_step)
        B = self.cfg.batch_size
        replaced: dict[int, str] = {}  # position in `plan` -> the damaged sample it held
        batches = lambda plan, done: self._plan_batches(plan.from_step(done), params.take(slice(done * B, None)))  # noqa: E731
        substitute = lambda plan, found: _with_substitutes(plan, found, replaced)  # noqa: E731
        for at, batch in self._past_damaged(plan, batches, substitute):
            here = [replaced[p] for p in range(at * B, (at + 1) * B) if p in replaced]
            if here:
                good = torch.tensor([p not in replaced for p in range(at * B, (at + 1) * B)])
                batch = replace(batch, bad_samples=tuple(here),
                                valid_B=good if batch.valid_B is None else batch.valid_B & good)
            yield batch

    def _damaged(self, plan: partition.RankPlan, step: int) -> dict[int, str]:
        """{position in the plan: a line naming the tar, the key and what is wrong} of the damaged samples among the batches DALI may
        have been decoding when it failed at `step` (prefetch)."""
        from pipeline.loader.reference import check_triplet

        B = self.cfg.batch_size
        stop = min(len(plan.sample_ids_M), (step + self.cfg.prefetch + 1) * B)
        found = {}
        for pos in range(step * B, stop):
            problem = check_triplet(self.shard_set, int(plan.sample_ids_M[pos]))
            if problem:
                found[pos] = problem
        return found

    def _plan_batches(self, plan: partition.RankPlan, params: augment.AugmentParams) -> Iterator[tuple[int, Batch]]:
        ids = plan.sample_ids_M
        B = self.cfg.batch_size
        nb = plan.num_batches

        def source(info):
            sl = slice((info.iteration % nb) * B, (info.iteration % nb + 1) * B)
            p = params.take(sl)
            roi = p.roi_N4.astype(np.float32)
            col = p.color_N4.astype(np.float32)
            return (
                p.flip_N.astype(np.int32),
                np.ascontiguousarray(roi[:, [1, 0]]),
                np.ascontiguousarray(roi[:, [3, 2]]),
                np.all(p.roi_N4 == (0.0, 0.0, 1.0, 1.0), axis=1),
                np.any(p.color_N4 != (1.0, 1.0, 1.0, 0.0), axis=1),
                col[:, 0].copy(),
                col[:, 1].copy(),
                col[:, 2].copy(),
                col[:, 3].copy(),
            )

        build = lambda **kw: triplet_pipeline(params_source=source, **kw)  # noqa: E731
        for step, out in self._run(plan, build, TRAIN_OUTPUTS):
            sl = slice(step * B, (step + 1) * B)
            entries = [self.shard_set.samples[i] for i in ids[sl]]
            keys = [e.key for e in entries]
            _check_keys(keys, out["meta"], self.shard_set.tar_urls[entries[0].shard])
            shape = out["shape"].cpu().numpy()
            applied = _applied_params(out)
            expected = params.take(sl)
            if not (
                np.array_equal(applied.flip_N, expected.flip_N)
                and np.array_equal(applied.roi_N4, expected.roi_N4)
            ):
                raise RuntimeError(f"DALI batch {step}: augmentation parameters out of step with the reader")
            K = augment.adjust_K_N33(
                out["k"].cpu().numpy().reshape(-1, 3, 3).astype(np.float64),
                src_wh_N2=shape[:, [1, 0]],
                params=applied,
                dst_wh=(self.cfg.width, self.cfg.height),
            )
            frames = out["frames"]
            # .float() copies: the iterator reuses its output buffers for later batches
            yield step, Batch(
                frames_aug_BSCHW=out["frames_aug"].float().div_(255.0),
                frames_BSCHW=frames.float().div_(255.0),
                K_B33=torch.from_numpy(K).to(frames.device),
                keys=tuple(keys),
                gt_T_BS44=torch.from_numpy(self.shard_set.camera_motion_BS44(keys, applied.flip_N)).to(frames.device),
                valid_B=torch.from_numpy(plan.valid_M[sl].copy()),
            )


def _with_substitutes(plan: partition.RankPlan, found: dict[int, str], replaced: dict[int, str]) -> partition.RankPlan:
    """`plan` with each damaged position holding a good sample of its own batch instead (recorded in `replaced`)."""
    B = plan.batch_size
    ids = plan.sample_ids_M.copy()
    replaced.update(found)
    for pos, problem in found.items():
        start = pos // B * B
        good = [p for p in range(start, start + B) if p not in replaced]
        if not good:
            raise RuntimeError(f"every sample of a training batch is damaged, the last: {problem}")
        ids[pos] = ids[good[0]]
    return replace(plan, sample_ids_M=ids)


class DaliTrainLoader(_Triplets, TrainOrder):
    """Training batches (augmented) for one rank. See `pipeline.loader` for the API."""


class DaliTripletEvalLoader(_Triplets, EvalOrder):
    """Triplets without augmentation, every sample exactly once across ranks (Batch.valid_B): pose validation."""


class DaliEvalLoader(_DaliDecoder, EvalOrder):
    """Evaluation batches for one rank: every sample of the set exactly once across ranks (valid_B). When DALI fails
    on a damaged frame, the batches in flight are checked frame by frame (PIL); each damaged frame's slot gets a
    good frame of the plan, marked invalid, the frame is reported in EvalBatch.skipped (where it is not padding) and
    the pipeline restarts at the failed batch."""

    def epoch_iterator(self, epoch: int = 0, start_step: int = 0) -> Iterator[EvalBatch]:
        plan, _ = self.epoch_plan(epoch, start_step)
        B = self.cfg.batch_size
        skipped: dict[int, SkippedFrame] = {}  # position in the plan -> the damaged real frame it held

        def leave_out(plan: partition.RankPlan, found: dict[int, SkippedFrame]) -> partition.RankPlan:
            skipped.update({p: f for p, f in found.items() if plan.valid_M[p]})
            return self._without_damaged(plan, found)

        for at, batch in self._past_damaged(plan, lambda plan, done: self._plan_batches(plan.from_step(done)), leave_out):
            here = tuple(skipped[p] for p in range(at * B, (at + 1) * B) if p in skipped)
            yield replace(batch, skipped=here + batch.skipped)

    def _damaged(self, plan: partition.RankPlan, step: int) -> dict[int, SkippedFrame]:
        """{position in the plan: its SkippedFrame} of the damaged frames DALI may have been decoding at `step`."""
        from pipeline.loader.reference import check_eval_frame

        B = self.cfg.batch_size
        stop = min(len(plan.sample_ids_M), (step + self.cfg.prefetch + 1) * B)
        checked: dict[int, SkippedFrame | None] = {}  # padding repeats a frame: checked once
        found = {}
        for pos in range(step * B, stop):
            i = int(plan.sample_ids_M[pos])
            if i not in checked:
                checked[i] = check_eval_frame(self.shard_set, i)
            frame = checked[i]
            if frame is not None:
                found[pos] = frame
        return found

    def _without_damaged(self, plan: partition.RankPlan, found: dict[int, SkippedFrame]) -> partition.RankPlan:
        """`plan` with each damaged position holding a good frame of the plan instead, marked invalid."""
        from pipeline.loader.reference import check_eval_frame

        ids, valid = plan.sample_ids_M.copy(), plan.valid_M.copy()
        bad = {int(ids[p]) for p in found}
        candidates = (i for i in dict.fromkeys(int(i) for i in ids) if i not in bad)
        good = next((i for i in candidates if check_eval_frame(self.shard_set, i) is None), None)
        if good is None:
            raise RuntimeError(f"every frame of this evaluation part is damaged, e.g. {next(iter(found.values()))}")
        for pos in found:
            ids[pos], valid[pos] = good, False
        return replace(plan, sample_ids_M=ids, valid_M=valid)

    def _plan_batches(self, plan: partition.RankPlan) -> Iterator[tuple[int, EvalBatch]]:
        B = self.cfg.batch_size
        for step, out in self._run(plan, eval_pipeline, EVAL_OUTPUTS):
            sl = slice(step * B, (step + 1) * B)
            entries = [self.shard_set.samples[i] for i in plan.sample_ids_M[sl]]
            keys = [e.key for e in entries]
            _check_keys(keys, out["meta"], self.shard_set.tar_urls[entries[0].shard])
            shape = out["shape"].cpu().numpy()
            K = augment.adjust_K_N33(
                out["k"].cpu().numpy().reshape(-1, 3, 3).astype(np.float64),
                src_wh_N2=shape[:, [1, 0]],
                params=augment.identity_params(len(entries)),
                dst_wh=(self.cfg.width, self.cfg.height),
            )
            valid = plan.valid_M[sl].copy()
            gts, bad = self._gts(out["gt"].cpu().numpy(), entries, valid)
            image = out["image"]
            yield step, EvalBatch(
                image_B3HW=image.float().div_(255.0),
                K_B33=torch.from_numpy(K).to(image.device),
                gt_depths=gts,
                keys=tuple(keys),
                valid_B=torch.from_numpy(valid),
                skipped=bad,
            )

    def _gts(self, rows: np.ndarray, entries: list, valid: np.ndarray) -> tuple[tuple, tuple[SkippedFrame, ...]]:
        """The GT maps of a batch; a damaged gt.npy is a (1, 1) placeholder, its slot set invalid in `valid` and the
        frame reported (where it is real)."""
        from pipeline.loader.reference import skipped_frame

        gts, bad = [], []
        for i, row in enumerate(rows):
            e = entries[i]
            try:
                gts.append(load_npy(bytes(row), e.key))
            except ValueError as err:
                gts.append(np.zeros((1, 1), np.float32))
                if valid[i]:
                    bad.append(skipped_frame(err, self.shard_set.tar_urls[e.shard], e.key))
                valid[i] = False
        return tuple(gts), tuple(bad)
