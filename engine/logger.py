"""Rank-0 training logs: TensorBoard scalars and images, a progress line, and a loss history for plots.

Shape legend: B batch, H height, W width.

TensorBoard event files are written to a local directory; when `upload_url` is set they are copied there (e.g. the
run's prefix on object storage) every time a checkpoint is saved, so a remote run's curves live next to its
checkpoints.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

import numpy as np
import torch

from engine.viz import colorize, to_uint8_image
from pipeline import storage


def vector_field_rgb(field_3HW: torch.Tensor, *, scale: float | None = None) -> np.ndarray:
    """A 3D motion field as an RGB image: each component mapped from [-m, m] to [0, 255] (m = `scale`, e.g. 1 m so
    that a near-zero field stays flat grey, or by default the largest |component| of this field)."""
    x = field_3HW.detach().float().cpu()
    m = float(x.abs().max()) if scale is None else scale
    x = x / m * 0.5 + 0.5 if m > 0 else torch.full_like(x, 0.5)
    return to_uint8_image(x)


def flow_rgb(flow_2HW: torch.Tensor) -> np.ndarray:
    """Optical flow in the usual HSV colour wheel: hue = direction, value = magnitude / max magnitude."""
    import matplotlib.colors as mcolors

    u, v = flow_2HW.detach().float().cpu().numpy()
    mag = np.sqrt(u * u + v * v)
    hue = (np.arctan2(-v, -u) / np.pi + 1.0) / 2.0
    val = mag / max(float(mag.max()), 1e-9)
    hsv = np.stack([hue, np.ones_like(hue), val], axis=-1)
    return (mcolors.hsv_to_rgb(hsv) * 255.0 + 0.5).astype(np.uint8)


class TrainLogger:
    """Collects step statistics on rank 0; other ranks get a logger with `enabled=False` (every call is a no-op)."""

    def __init__(self, *, enabled: bool, log_dir: str, upload_url: str = "", total_steps: int = 0, name: str = ""):
        self.enabled = enabled
        self.log_dir = log_dir
        self.upload_url = upload_url
        self.total_steps = total_steps
        self.name = name
        self.history: list[dict[str, Any]] = []
        self._writer = None
        self._window: list[dict[str, float]] = []
        self._t_window = time.perf_counter()
        self._wait_window = 0.0
        self._samples_window = 0
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            os.makedirs(log_dir, exist_ok=True)
            self._writer = SummaryWriter(log_dir=log_dir)

    def step(self, *, logs: dict[str, float], samples: int, data_wait_s: float) -> None:
        """Add one optimizer step's logs to the current window (written by `flush_window`)."""
        if not self.enabled:
            return
        self._window.append(dict(logs))
        self._wait_window += data_wait_s
        self._samples_window += samples

    def flush_window(self, *, step: int, epoch: int, step_in_epoch: int, steps_per_epoch: int, lr: float) -> dict[str, float]:
        """Write the averaged window to TensorBoard, print the progress line, append to the history."""
        if not self.enabled or not self._window:
            return {}
        elapsed = max(time.perf_counter() - self._t_window, 1e-9)
        keys = self._window[0].keys()
        mean = {k: float(np.mean([w[k] for w in self._window])) for k in keys}
        row = {
            "step": step,
            "epoch": epoch,
            **mean,
            "lr": lr,
            "samples_per_s": self._samples_window / elapsed,
            "data_wait_fraction": min(1.0, self._wait_window / elapsed),
        }
        assert self._writer is not None
        for k, v in mean.items():
            self._writer.add_scalar(f"train/{k}", v, step)
        self._writer.add_scalar("train/lr", lr, step)
        self._writer.add_scalar("perf/samples_per_s", row["samples_per_s"], step)
        self._writer.add_scalar("perf/data_wait_fraction", row["data_wait_fraction"], step)
        self.history.append(row)
        total = f"/{self.total_steps}" if self.total_steps else ""
        print(
            f"[rmdepth train {self.name}] epoch {epoch} step {step}{total} ({step_in_epoch}/{steps_per_epoch}) "
            f"loss {mean.get('loss', math.nan):.4f} lr {lr:.2e} {row['samples_per_s']:.1f} samples/s "
            f"data-wait {100 * row['data_wait_fraction']:.0f}%",
            file=sys.stdout,
            flush=True,
        )
        self._window, self._wait_window, self._samples_window = [], 0.0, 0
        self._t_window = time.perf_counter()
        return row

    def images(self, *, step: int, frames_aug_BSCHW: torch.Tensor, visuals: Any) -> None:
        """Input target frame, depth colour map, motion field and flow of the first sample."""
        if not self.enabled:
            return
        assert self._writer is not None
        panels = {
            "input": to_uint8_image(frames_aug_BSCHW[0, 1]),
            "depth": colorize(visuals.depth_B1HW[0, 0], kind="depth"),
            "motion_field": vector_field_rgb(visuals.motion_field_B3HW[0]),
            "flow": flow_rgb(visuals.flow_B2HW[0]),
        }
        for name, img in panels.items():
            self._writer.add_image(f"images/{name}", img, step, dataformats="HWC")

    def validation(self, *, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        assert self._writer is not None
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                self._writer.add_scalar(f"val/{k.removeprefix('val_')}", v, step)
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                         if k in ("val_abs_rel", "val_a1", "val_baseline_abs_rel", "val_pose_ate",
                                  "val_pose_ate_zero_motion", "val_pose_cosine", "val_pose_spread"))
        print(f"[rmdepth train {self.name}] validation at step {step}: {shown}", flush=True)

    def sync(self) -> None:
        """Flush event files and copy them to `upload_url` (if set)."""
        if not self.enabled or self._writer is None:
            return
        self._writer.flush()
        if not self.upload_url:
            return
        for root, _, files in os.walk(self.log_dir):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), self.log_dir)
                storage.put_file(os.path.join(root, f), storage.join(self.upload_url, rel))

    def close(self) -> None:
        if self._writer is not None:
            self.sync()
            self._writer.close()
            self._writer = None
