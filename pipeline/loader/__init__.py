"""Shard set -> batches, with NVIDIA DALI (GPU or CPU) or a reference PIL loader; identical semantics.

Public API (what the trainer / evaluator use):

    from pipeline.loader import LoaderConfig, AugmentConfig, build_train_loader, build_eval_loader

    loader = build_train_loader(url, cfg, rank=rank, world_size=world_size, device_id=None)
    loader.kind                   # "dali" or "reference" (also logged when built)
    loader.num_batches_per_epoch  # the same on every rank (DDP-safe), the same every epoch
    for step, batch in enumerate(loader.epoch_iterator(epoch, start_step=0), start=start_step):
        ...                       # batch: pipeline.batch.Batch (frames in [0, 1]; on the GPU with DALI mixed)

    ev = build_eval_loader(url, cfg, rank=rank, world_size=world_size)
    for eb in ev:                 # pipeline.batch.EvalBatch; every sample valid exactly once across ranks
        ...                       # (ev.num_batches_per_epoch is equal on all ranks; padding has valid_B False)

`url` is a complete shard set (local dir or s3:// prefix with summary.json; an incomplete set is refused). With
`cfg.cache_dir` an s3:// set is first downloaded to a local cache (reused when sha256 matches), otherwise it is read
directly (DALI's S3 client / fsspec). Credentials and endpoint come from the AWS_* environment only.

Determinism and resume: the sample order and the augmentation of every sample are functions of (cfg.seed, epoch)
and the world size only. `epoch_iterator(epoch, start_step=k)` yields exactly batches k, k+1, ... of that epoch,
identical to an uninterrupted run, without decoding the skipped ones. Build the loader again after a restart or an
elastic resize (the partition depends on world_size); store (epoch, step) in the checkpoint. A mid-epoch resume is
exact only with the same world size and batch size; after a change, start the next epoch instead (or accept that
the rest of that epoch is re-partitioned).

`loader.plan(epoch)` (train) / `loader.plan()` (eval) returns the RankPlan: the global sample ids this rank reads,
in order (tests and tools use it). A sample that cannot be read or decoded is an error naming its tar (shards are
decoded once when written, so this means damage after writing); nothing is skipped silently.

Modules: config (LoaderConfig, AugmentConfig), augment (parameters + intrinsics + reference ops), partition (rank
plans), shardset (summary/.idx/cache), dali_pipeline + dali_loader (DALI), reference (PIL), build (choice).
"""

from pipeline.loader.build import build_eval_loader, build_train_loader
from pipeline.loader.config import AugmentConfig, LoaderConfig

__all__ = ["AugmentConfig", "LoaderConfig", "build_eval_loader", "build_train_loader"]
