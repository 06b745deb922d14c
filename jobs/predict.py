"""Predict depth for images, folders of images and videos with a trained checkpoint.

  rmdepth predict --checkpoint URL photo.jpg frames/ drive.mp4 --out predictions/

For each image (or video frame) writes <name>_depth.png (magma colour map of the disparity, near = bright) and
<name>_depth.npy (float32 depth in the model's units at the input's resolution; monocular models are correct only up
to scale). Folders are read recursively; video frames come from PyAV and go to <out>/<video name>/frame_%06d_*.
Unreadable inputs are reported and skipped; the exit code is 1 if any input failed.
"""

from __future__ import annotations

import argparse
import os
import sys

from jobs.cli import run_module
from jobs.errors import UsageError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive) or video files; local or URLs")
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory or URL")
    parser.add_argument("--out", required=True, help="output folder (local or URL)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default cpu)")
    parser.add_argument("--every", type=int, default=1, help="videos: keep every N-th frame (default 1)")
    parser.add_argument("--max-frames", type=int, default=0, help="videos: at most this many frames per video (0 = all)")
    parser.add_argument("--post-process", action="store_true", help="monodepth2 flip post-processing (2x compute)")


def _expand(inputs: list[str]) -> list[tuple[str, str, str]]:
    """(kind, url, output name) for every image/video found in the inputs."""
    from pipeline import storage

    out = []
    for item in inputs:
        if not storage.exists(item):
            raise FileNotFoundError(f"input {item} does not exist")
        if storage.isdir(item):
            base = os.path.basename(item.rstrip("/")) or "input"
            found = [u for u in storage.glob(item, "**") if u.lower().endswith(IMAGE_EXTS + VIDEO_EXTS)]
            if not found:
                raise ValueError(f"input folder {item} contains no images or videos ({', '.join(IMAGE_EXTS + VIDEO_EXTS)})")
            for u in found:
                rel = os.path.relpath(storage.strip_file_scheme(u), storage.strip_file_scheme(item)) if not storage.is_remote(u) else u[len(item.rstrip("/")) + 1 :]
                kind = "video" if u.lower().endswith(VIDEO_EXTS) else "image"
                out.append((kind, u, os.path.join(base, os.path.splitext(rel)[0])))
        elif item.lower().endswith(VIDEO_EXTS):
            out.append(("video", item, os.path.splitext(os.path.basename(item))[0]))
        elif item.lower().endswith(IMAGE_EXTS):
            out.append(("image", item, os.path.splitext(os.path.basename(item))[0]))
        else:
            raise UsageError(f"input {item}: not an image ({', '.join(IMAGE_EXTS)}) or video ({', '.join(VIDEO_EXTS)})")
    return out


def run(args: argparse.Namespace) -> int:
    if args.every < 1 or args.max_frames < 0:
        raise UsageError("--every must be >= 1 and --max-frames >= 0")
    items = _expand(args.inputs)
    import io

    import numpy as np
    import torch
    from PIL import Image
    from tqdm import tqdm

    from engine.checkpoint import load_inference_model
    from engine.evaluate import predict_disparity, resize_to
    from engine.viz import colorize
    from pipeline import storage
    from pipeline.codecs import png_bytes

    depth_net, cfg, identity = load_inference_model(args.checkpoint, device=args.device)
    height, width = cfg.loader.height, cfg.loader.width

    def predict(rgb: np.ndarray, name: str) -> None:
        h, w = rgb.shape[:2]
        small = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        image = torch.from_numpy(small).permute(2, 0, 1)[None].to(args.device)
        disp = predict_disparity(depth_net, image, use_post_process=args.post_process)[0]
        disp_full = resize_to(disp.cpu(), (h, w)).numpy()  # resized as disparity, like monodepth2 test_simple
        depth = (1.0 / disp_full).astype(np.float32)
        buf = io.BytesIO()
        np.save(buf, depth, allow_pickle=False)
        storage.write_bytes(storage.join(args.out, name + "_depth.npy"), buf.getvalue())
        storage.write_bytes(storage.join(args.out, name + "_depth.png"), png_bytes(colorize(disp_full)))

    failed: list[str] = []
    written = 0
    for kind, url, name in tqdm(items, desc="predict", unit="input", disable=not sys.stderr.isatty()):
        try:
            if kind == "image":
                with Image.open(io.BytesIO(storage.read_bytes(url))) as im:
                    rgb = np.asarray(im.convert("RGB"))
                predict(rgb, name)
                written += 1
            else:
                written += _predict_video(url, name, predict, every=args.every, max_frames=args.max_frames)
        except (OSError, ValueError) as e:
            failed.append(f"{url}: {e}")
            print(f"skipped {url}: {e}", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - PyAV raises its own error types for corrupt files
            if type(e).__module__.startswith("av"):
                failed.append(f"{url}: {e}")
                print(f"skipped {url}: cannot decode video ({e})", file=sys.stderr)
            else:
                raise
    print(f"wrote {written} depth maps to {args.out} (checkpoint step {identity.get('step', '?')})")
    if failed:
        print(f"{len(failed)} input(s) failed", file=sys.stderr)
        return 1
    return 0


def _predict_video(url: str, name: str, predict, *, every: int, max_frames: int) -> int:
    import av

    from pipeline import storage

    with storage.local_tempdir() as tmp:
        local = url
        if storage.is_remote(url):
            local = os.path.join(tmp, os.path.basename(url))
            storage.get_file(url, local)
        n = 0
        with av.open(storage.strip_file_scheme(local)) as container:
            stream = container.streams.video[0]
            for i, frame in enumerate(container.decode(stream)):
                if i % every:
                    continue
                predict(frame.to_ndarray(format="rgb24"), os.path.join(name, f"frame_{i:06d}"))
                n += 1
                if max_frames and n >= max_frames:
                    break
        if n == 0:
            raise ValueError("the video has no frames")
        return n


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
