"""The Cityscapes writer: 30-frame leftImg8bit_sequence snippets, the annotated frame's leftImg8bit, camera.json and
disparity PNG, plus exact truth for every frame. Each (city, sequence) snippet is its own street world.

The camera is the real Cityscapes one (fx 2262.52, fy 2265.30, u0 1096.98, v0 513.137 at 2048x1024, baseline
0.209313 m) scaled to the rendered size with pipeline.intrinsics.resize_K; camera.json holds the scaled
intrinsics, i.e. those of the written images. Extrinsic angles are 0 (the render has no pitch/roll/yaw offset).
The ego car's hood is a static band in the bottom quarter of every frame; its disparity is 0 (invalid), as is
the sky's.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import zlib

import numpy as np

from pipeline.codecs import npz_bytes, png_bytes
from pipeline.intrinsics import resize_K
from pipeline.synth import faults as faults_mod
from pipeline.synth.config import CityscapesSynthConfig
from pipeline.synth.io import TreeWriter, run_jobs
from pipeline.synth.render import SKY_DEPTH, Camera
from pipeline.synth.world import make_world

FULL_SIZE = (2048, 1024)
FULL_K = np.array([[2262.52, 0.0, 1096.98], [0.0, 2265.30, 513.137], [0.0, 0.0, 1.0]])


def hood(size_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask HxW bool, colour HxWx3 uint8, depth HxW float32) of the ego car's hood: a fixed shape whose top edge
    curves from 0.80 H at the centre to 0.86 H at the sides; its depth falls from 2.2 m at that edge to 1.0 m at
    the bottom row."""
    w, h = size_wh
    u = (np.arange(w) - (w - 1) / 2) / (w / 2)
    top = h * (0.80 + 0.06 * u**2)
    v = np.arange(h)[:, None].astype(np.float64)
    mask = v >= top[None, :]
    frac = np.clip((v - top[None, :]) / np.maximum(h - top[None, :], 1.0), 0.0, 1.0)
    depth = (2.2 - 1.2 * frac).astype(np.float32)
    shade = 0.18 + 0.10 * (1 - frac) + 0.08 * np.exp(-((u[None, :] + 0.3) ** 2) / 0.02) * (1 - frac)
    colour = np.stack([shade, shade * 1.05, shade * 1.15], axis=-1)
    colour = (np.clip(colour, 0, 1) * 255 + 0.5).astype(np.uint8)
    return mask, colour, np.where(mask, depth, 0.0).astype(np.float32)


def _disparity_png(depth_HW: np.ndarray, valid_HW: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """uint16 Cityscapes disparity: p = d * 256 + 1 for valid pixels (d = fx * baseline / depth), 0 = invalid."""
    with np.errstate(divide="ignore"):
        d = fx * baseline / depth_HW
    p = np.round(d * 256.0 + 1.0)
    ok = valid_HW & np.isfinite(p) & (p <= 65535)
    return np.where(ok, p, 0).astype(np.uint16)


def camera_json(K_33: np.ndarray, baseline: float, height: float) -> dict:
    return {
        "extrinsic": {"baseline": baseline, "pitch": 0.0, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": 0.0, "z": height},
        "intrinsic": {"fx": float(K_33[0, 0]), "fy": float(K_33[1, 1]), "u0": float(K_33[0, 2]),
                      "v0": float(K_33[1, 2])},
    }


def _write_snippet(out_dir: str, cfg: CityscapesSynthConfig, city: str, seq: int, on_frame=None) -> dict:
    """Render snippet `seq` of `city` under `out_dir`; returns its summary."""
    writer = TreeWriter(out_dir)
    K = resize_K(FULL_K, FULL_SIZE, cfg.size_wh)
    hood_mask, hood_rgb, hood_depth = hood(cfg.size_wh)
    split = cfg.split
    seed = int(np.random.SeedSequence([cfg.seed, zlib.crc32(city.encode()), seq, 17]).generate_state(1)[0])
    rng = np.random.default_rng(seed)
    start = int(rng.integers(0, 300))
    times = np.arange(cfg.num_frames) / cfg.fps
    world = make_world(cfg.world, duration=float(times[-1]), seed=seed)
    camera = Camera(world, K, cfg.size_wh)
    names = [f"{city}_{seq:06d}_{start + k:06d}" for k in range(cfg.num_frames)]
    for k, t in enumerate(times):
        t = float(t)
        pose = world.rig_pose(t)
        frame = camera.render(pose, t)
        rgb = np.where(hood_mask[..., None], hood_rgb, frame.rgb_HW3)
        depth = np.where(hood_mask, hood_depth, frame.depth_HW).astype(np.float32)
        moving = frame.moving_HW & ~hood_mask
        sky = frame.sky_HW & ~hood_mask
        png = png_bytes(rgb)
        seq_png = png
        if any(f.kind == "corrupt-png" and f.city == city and f.sequence == seq and f.frame == k for f in cfg.faults):
            seq_png = faults_mod.garble_png(png)
        rel = f"{split}/{city}/{names[k]}"
        writer.write(f"leftImg8bit_sequence/{rel}_leftImg8bit.png", seq_png)
        if k == cfg.annotated_index:
            writer.write(f"leftImg8bit/{rel}_leftImg8bit.png", png)
            cam = json.dumps(camera_json(K, cfg.baseline, cfg.world.camera_height), indent=2)
            if any(f.kind == "malformed-camera" and f.city == city and f.sequence == seq for f in cfg.faults):
                cam = cam[: len(cam) // 2]
            if not any(f.kind == "missing-camera" and f.city == city and f.sequence == seq for f in cfg.faults):
                writer.write_text(f"camera/{rel}_camera.json", cam)
            disp = _disparity_png(depth, ~sky & ~hood_mask, K[0, 0], cfg.baseline)
            writer.write(f"disparity/{rel}_disparity.png", png_bytes(disp))
        if cfg.truth:
            writer.write(
                f"rmdepth_truth/{rel}_truth.npz",
                npz_bytes(depth=depth, moving=moving, instance=np.where(hood_mask, 0, frame.instance_HW),
                          sky=sky, hood=hood_mask, pose_cam_to_world=pose, K=K, time_s=np.float64(t)),
            )
        if on_frame is not None:
            on_frame()
    if cfg.truth:
        desc = world.describe()
        desc.update(dataset="cityscapes", snippet=f"{city}_{seq:06d}", frames=names,
                    annotated=names[cfg.annotated_index], times_s=[float(t) for t in times], sky_depth=SKY_DEPTH)
        writer.write_text(f"rmdepth_truth/{split}/{city}/{city}_{seq:06d}_world.json", json.dumps(desc))
    return {"city": city, "sequence": seq, "first_frame": start, "annotated": names[cfg.annotated_index],
            "num_frames": cfg.num_frames, "num_files": writer.num_files, "num_bytes": writer.num_bytes}


def write_cityscapes(out_dir: str, cfg: CityscapesSynthConfig, *, progress: bool | None = None,
                     workers: int = 1) -> dict:
    """Render `cfg.num_sequences` snippets per city of `cfg.split` under `out_dir`; returns a summary.

    `workers` > 1 renders snippets in that many processes (the output is the same bytes)."""
    from tqdm import tqdm

    K = resize_K(FULL_K, FULL_SIZE, cfg.size_wh)
    total = len(cfg.city_names) * cfg.num_sequences * cfg.num_frames
    show = progress if progress is not None else sys.stderr.isatty()
    bar = tqdm(total=total, desc=f"synth cityscapes {cfg.split}", unit="frame", disable=not show)
    jobs = [(out_dir, cfg, city, seq) for city in cfg.city_names for seq in range(cfg.num_sequences)]
    snippets = run_jobs(_write_snippet, jobs, workers=workers, on_frame=lambda: bar.update(1),
                        on_job=lambda r: bar.update(r["num_frames"]))
    bar.close()
    num_files = sum(s.pop("num_files") for s in snippets)
    num_bytes = sum(s.pop("num_bytes") for s in snippets)
    for s in snippets:
        s.pop("num_frames")
    return {
        "dataset": "cityscapes",
        "root": out_dir,
        "split": cfg.split,
        "size_wh": list(cfg.size_wh),
        "K": K.tolist(),
        "baseline_m": cfg.baseline,
        "snippets": snippets,
        "num_frames": total,
        "num_files": num_files,
        "num_bytes": num_bytes,
        "faults": [f.kind for f in cfg.faults],
        "config": dataclasses.asdict(cfg),
    }
