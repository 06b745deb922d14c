"""Dataset sources: the only dataset-specific code. Each module provides

  check_root(cfg)            fail fast (ValueError naming the folder) when the input does not look like the dataset
  list_triplets(cfg)         -> Listing of pipeline.schema.Triplet (+ skipped inputs with file and reason)
  list_eval_frames(cfg)      -> Listing of pipeline.schema.EvalFrame
  load_gt(eval_frame)        -> float32 H x W depth in metres (0 = invalid) at the GT's own resolution
"""

from __future__ import annotations

from pipeline.sources import cityscapes, kitti
from pipeline.sources.records import Listing, SkippedInput

SOURCES = {"kitti": kitti, "cityscapes": cityscapes}

__all__ = ["SOURCES", "Listing", "SkippedInput"]
