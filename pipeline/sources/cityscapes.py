"""Cityscapes sequences: snippets + camera json -> Triplet / EvalFrame records, and disparity ground truth.

Layout: <root>/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png (2048x1024, ~17 Hz, 30-frame
snippets), <root>/camera/<split>/<city>/<city>_<seq>_<frame>_camera.json (for the annotated frame of a snippet; used
for the whole snippet), <root>/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png (uint16, d = (p-1)/256).

A snippet is a run of frame numbers of one <city>_<seq>; gaps of more than SNIPPET_BREAK numbers separate snippets
(real snippets are hundreds of numbers apart), smaller gaps are missing frames and are recorded as errors.
The bottom `crop_bottom_frac` of every image (the ego car) is cropped; K is unchanged by a bottom crop.

Shape legend: H height, W width.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline import storage
from pipeline.schema import EvalFrame, FrameRef, Triplet
from pipeline.shards.config import ShardConfig
from pipeline.sources.frames import image_size, note_holes
from pipeline.sources.records import Listing, SkippedInput
from pipeline.sources.splits import normalize_scene, read_scene_list, read_split_file

SNIPPET_BREAK = 10
_NAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})_(?P<kind>leftImg8bit|camera|disparity)\.(png|jpg|json)$")
CAMERA = "left"


@dataclass(frozen=True, kw_only=True)
class Snippet:
    city: str
    sequence: str  # <city>_<seq>
    frames: dict  # {frame number: image url}


def _seq_dir(cfg: ShardConfig) -> str:
    return storage.join(cfg.input, "leftImg8bit_sequence", cfg.source_split)


def check_root(cfg: ShardConfig) -> None:
    if not storage.isdir(cfg.input):
        raise FileNotFoundError(f"{cfg.input}: Cityscapes input folder not found")
    seq_dir = _seq_dir(cfg)
    if not storage.isdir(seq_dir) or not storage.listdir(seq_dir):
        raise ValueError(
            f"{cfg.input} does not look like Cityscapes sequences: expected {seq_dir}/<city>/"
            "<city>_<seq>_<frame>_leftImg8bit.png (and camera/<split>/<city>/*_camera.json)"
        )


def _parse_names(folder: str, kind: str) -> dict[tuple[str, str], dict[int, str]]:
    """{(city, seq): {frame: url}} for files of one kind directly under folder."""
    out: dict[tuple[str, str], dict[int, str]] = {}
    for name in storage.listdir(folder):
        m = _NAME.match(name)
        if m and m["kind"] == kind:
            out.setdefault((m["city"], m["seq"]), {})[int(m["frame"])] = storage.join(folder, name)
    return out


def _snippets(cfg: ShardConfig, listing: Listing) -> list[tuple[Snippet, dict[int, str]]]:
    """Snippets with the camera-json files of their (city, seq)."""
    out = []
    seq_dir = _seq_dir(cfg)
    for city in storage.listdir(seq_dir):
        images = _parse_names(storage.join(seq_dir, city), "leftImg8bit")
        cams = _parse_names(storage.join(cfg.input, "camera", cfg.source_split, city), "camera")
        for (c, seq), frames in sorted(images.items()):
            numbers = sorted(frames)
            runs, start = [], 0
            for i in range(1, len(numbers) + 1):
                if i == len(numbers) or numbers[i] - numbers[i - 1] > SNIPPET_BREAK:
                    runs.append(numbers[start:i])
                    start = i
            for run in runs:
                snip = Snippet(city=c, sequence=f"{c}_{seq}", frames={n: frames[n] for n in run})
                out.append((snip, cams.get((c, seq), {})))
    return out


def _read_camera(url: str) -> dict:
    try:
        d = json.loads(storage.read_text(url))
        intr = d["intrinsic"]
        out = {k: float(intr[k]) for k in ("fx", "fy", "u0", "v0")}
        out["baseline"] = float(d.get("extrinsic", {}).get("baseline", 0.0))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{url}: malformed camera json ({type(e).__name__}: {e})") from e
    if out["fx"] <= 0 or out["fy"] <= 0:
        raise ValueError(f"{url}: camera json has non-positive focal length")
    return out


def _snippet_camera(snip: Snippet, cams: dict[int, str]) -> str | None:
    lo, hi = min(snip.frames), max(snip.frames)
    inside = sorted(n for n in cams if lo <= n <= hi)
    return cams[inside[0]] if inside else None


def _snippet_geometry(cfg: ShardConfig, snip: Snippet, cams: dict[int, str], listing: Listing):
    """(K_33 tuple, size_wh after crop, crop rows, camera dict) or None after recording why."""
    cam_url = _snippet_camera(snip, cams)
    if cam_url is None:
        folder = storage.join(cfg.input, "camera", cfg.source_split, snip.city)
        listing.skipped.append(SkippedInput(file=folder, stage="calib", sequence=snip.sequence,
                                            reason=f"no camera json for snippet frames {min(snip.frames)}..{max(snip.frames)}"))
        return None
    try:
        cam = _read_camera(cam_url)
    except ValueError as e:
        listing.skipped.append(SkippedInput(file=cam_url, stage="calib", sequence=snip.sequence, reason=str(e)))
        return None
    first = snip.frames[min(snip.frames)]
    try:
        w, h = image_size(first)
    except OSError as e:
        listing.skipped.append(SkippedInput(file=first, stage="decode", sequence=snip.sequence,
                                            reason=f"cannot read image header ({e}); snippet skipped"))
        return None
    crop = int(round(h * cfg.crop_bottom_frac))
    K = ((cam["fx"], 0.0, cam["u0"]), (0.0, cam["fy"], cam["v0"]), (0.0, 0.0, 1.0))
    return K, (w, h - crop), crop, cam_url


def _split_targets(cfg: ShardConfig) -> dict[str, list] | None:
    if not cfg.split_file:
        return None
    out: dict[str, list] = {}
    for e in read_split_file(cfg.split_file):
        out.setdefault(normalize_scene(e.folder), []).append(e)
    return out


def list_triplets(cfg: ShardConfig) -> Listing:
    g = cfg.frame_gap
    listing = Listing()
    split = _split_targets(cfg)
    excluded = read_scene_list(cfg.exclude_scenes_file) if cfg.exclude_scenes_file else frozenset()
    found = set()
    for snip, cams in _snippets(cfg, listing):
        if snip.sequence in excluded:
            listing.count("excluded_snippets")
            continue
        found.add(snip.sequence)
        folder = storage.join(_seq_dir(cfg), snip.city)
        if len(snip.frames) < 2 * g + 1:
            listing.skipped.append(SkippedInput(file=folder, stage="enumerate", sequence=snip.sequence,
                                                reason=f"snippet {snip.sequence} from frame {min(snip.frames)} has "
                                                f"{len(snip.frames)} frames; a triplet needs 3 frames {g} apart"))
            continue
        note_holes(snip.frames, folder=f"{folder}/{snip.sequence}_*", sequence=snip.sequence, listing=listing)
        geo = _snippet_geometry(cfg, snip, cams, listing)
        if geo is None:
            continue
        K, size_wh, crop, _ = geo
        if split is None:
            targets = [(t, None) for t in sorted(snip.frames)]
        else:
            lo, hi = min(snip.frames), max(snip.frames)
            targets = [(e.frame, e) for e in split.get(snip.sequence, []) if lo <= e.frame <= hi]
        for t, entry in targets:
            if not all(i in snip.frames for i in (t - g, t, t + g)):
                if entry is not None:
                    listing.skipped.append(SkippedInput(file=f"{cfg.split_file}:{entry.line}", stage="split",
                                                        sequence=snip.sequence,
                                                        reason=f"target {t}: frame or a neighbour {g} away is missing"))
                continue
            listing.records.append(Triplet(
                dataset="cityscapes", split=cfg.split, sequence=snip.sequence, camera=CAMERA,
                frames=(FrameRef(path=snip.frames[t - g], index=t - g), FrameRef(path=snip.frames[t], index=t),
                        FrameRef(path=snip.frames[t + g], index=t + g)),
                K_33=K, size_wh=size_wh, crop_bottom=crop,
            ))
    if split is not None:
        for seq, entries in split.items():
            if seq not in found and seq not in excluded:
                for e in entries:
                    listing.skipped.append(SkippedInput(file=f"{cfg.split_file}:{e.line}", stage="split", sequence=seq,
                                                        reason=f"sequence {seq} not found in {_seq_dir(cfg)}"))
    return listing


def list_eval_frames(cfg: ShardConfig) -> Listing:
    """Frames that have a disparity png (all of them, or those in the split file, in split-file order)."""
    listing = Listing()
    split = _split_targets(cfg)
    excluded = read_scene_list(cfg.exclude_scenes_file) if cfg.exclude_scenes_file else frozenset()
    found: dict[tuple[str, int], EvalFrame] = {}
    for snip, cams in _snippets(cfg, listing):
        if snip.sequence in excluded:
            listing.count("excluded_snippets")
            continue
        names = _parse_names(storage.join(cfg.input, "disparity", cfg.source_split, snip.city), "disparity")
        disp = names.get((snip.city, snip.sequence.rsplit("_", 1)[1]), {})
        wanted = sorted(n for n in snip.frames if n in disp) if split is None else [
            e.frame for e in split.get(snip.sequence, []) if min(snip.frames) <= e.frame <= max(snip.frames)]
        if not wanted:
            continue
        geo = _snippet_geometry(cfg, snip, cams, listing)
        if geo is None:
            continue
        K, size_wh, crop, cam_url = geo
        for t in wanted:
            if t not in disp:
                listing.skipped.append(SkippedInput(file=snip.frames[t], stage="gt", sequence=snip.sequence,
                                                    reason="disparity png missing"))
                continue
            found[(snip.sequence, t)] = EvalFrame(
                dataset="cityscapes", split=cfg.split, sequence=snip.sequence, camera=CAMERA,
                frame=FrameRef(path=snip.frames[t], index=t), K_33=K, size_wh=size_wh, crop_bottom=crop,
                gt_source="disparity", extra={"gt_path": disp[t], "camera_json": cam_url},
            )
    if split is None:
        listing.records = [found[k] for k in sorted(found)]
    else:
        for seq, entries in split.items():
            for e in entries:
                if (seq, e.frame) in found:
                    listing.records.append(found[(seq, e.frame)])
                elif seq not in excluded:
                    listing.skipped.append(SkippedInput(file=f"{cfg.split_file}:{e.line}", stage="split", sequence=seq,
                                                        reason=f"frame {e.frame} of {seq} not found (image or disparity)"))
    return listing


def disparity_to_depth(disp_png_HW: np.ndarray, *, baseline: float, fx: float) -> np.ndarray:
    """Cityscapes disparity png (uint16) -> depth in metres (0 where invalid): d = (p - 1) / 256, depth = b * fx / d."""
    p = disp_png_HW.astype(np.float64)
    d = (p - 1.0) / 256.0
    depth = np.zeros_like(p)
    ok = (p > 0) & (d > 0)
    depth[ok] = baseline * fx / d[ok]
    return depth.astype(np.float32)


def load_gt(frame: EvalFrame) -> np.ndarray:
    cam = _read_camera(frame.extra["camera_json"])
    if cam["baseline"] <= 0:
        raise ValueError(f"{frame.extra['camera_json']}: extrinsic.baseline must be > 0 to turn disparity into depth")
    path = frame.extra["gt_path"]
    try:
        with Image.open(io.BytesIO(storage.read_bytes(path))) as im:
            disp = np.asarray(im)
    except OSError as e:
        raise ValueError(f"{path}: cannot decode disparity png ({e})") from e
    if disp.ndim != 2:
        raise ValueError(f"{path}: disparity png must be single-channel, got shape {disp.shape}")
    depth = disparity_to_depth(disp, baseline=cam["baseline"], fx=cam["fx"])
    if frame.crop_bottom:
        depth = depth[: depth.shape[0] - frame.crop_bottom]
    return np.ascontiguousarray(depth)
