"""Render a synthetic street world in the exact KITTI-raw or Cityscapes file format, with exact ground truth.

  rmdepth synth kitti OUT [--drives N --frames N --size WxH --seed S --moving-objects N --date 2011_09_26 ...]
  rmdepth synth cityscapes OUT [--split train --cities aachen,bochum --sequences N --frames 30 --size WxH ...]
  rmdepth synth kitti-odometry OUT --from RAW [--drives DRIVE,... --first-sequence 9]

OUT is a local folder or an fsspec URL (s3://bucket/prefix). Output is deterministic given the options. Exact
per-frame truth (depth, moving-object mask, camera pose) goes to rmdepth_truth/ folders beside the dataset's own
(see `pipeline.synth`). `--fault` plants broken files for reader tests (repeatable; see each subcommand's --help).
`kitti-odometry` re-packages KITTI raw drives (synthetic or real) in the KITTI odometry layout (sequences/NN/image_2,
calib.txt, times.txt, poses/NN.txt from oxts), for `rmdepth eval-pose`.
"""

from __future__ import annotations

import argparse
import json
import sys

from jobs.cli import run_module
from jobs.errors import UsageError

_KITTI_FAULT_HELP = (
    "plant a broken file (repeatable): corrupt-png:DRIVE:FRAME[:CAM] (garbled PNG; CAM image_02 (default) or "
    "image_03), empty-velodyne:DRIVE:FRAME (0-byte .bin), short-drive[:DRIVE] (that drive, default the last, has "
    "only 2 frames), missing-calib (no calib_cam_to_cam.txt), malformed-calib (P_rect_02 with 7 numbers). "
    "DRIVE is the drive number (1 = ..._drive_0001_sync), FRAME the 0-based frame index"
)
_CS_FAULT_HELP = (
    "plant a broken file (repeatable): corrupt-png:CITY:SEQ:FRAME (garbled leftImg8bit_sequence PNG; FRAME is the "
    "0-based index within the snippet), missing-camera:CITY:SEQ (no camera.json), malformed-camera:CITY:SEQ "
    "(camera.json is not valid JSON). SEQ is the sequence number in the file names"
)


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UsageError(f"--size must be WIDTHxHEIGHT, e.g. 416x128, got {text!r}")
    return int(parts[0]), int(parts[1])


def _common(p: argparse.ArgumentParser, *, size: str, frames: int, fault_help: str) -> None:
    p.add_argument("out", metavar="OUT", help="output root: a local folder or an fsspec URL (s3://bucket/prefix)")
    p.add_argument("--frames", type=int, default=frames, help=f"frames per drive / snippet (default {frames})")
    p.add_argument("--size", default=size, help=f"rendered image size WIDTHxHEIGHT (default {size})")
    p.add_argument("--seed", type=int, default=0, help="random seed; the output is a pure function of the options")
    p.add_argument("--moving-objects", type=int, default=4,
                   help="independently moving cars per world: one ahead in the ego lane, then same-direction and "
                        "oncoming ones (default 4); parked cars are extra")
    p.add_argument("--speed", type=float, default=10.0, help="mean ego speed in m/s (default 10)")
    p.add_argument("--stop-fraction", type=float, default=0.0,
                   help="fraction of each drive/snippet, in its middle, where the ego car stands still (static "
                        "frames, oxts vf = 0); default 0")
    p.add_argument("--fps", type=float, default=None, help="frame rate in Hz (default 10 KITTI, 17 Cityscapes)")
    p.add_argument("--no-truth", action="store_true", help="do not write the rmdepth_truth/ ground-truth files")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC", help=fault_help)
    p.add_argument("--workers", type=int, default=1,
                   help="render drives/snippets in this many processes (default 1; same output for any value)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success (default: a JSON summary)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET")
    sub.required = True
    k = sub.add_parser("kitti", help="KITTI raw layout: <date>/calib_*.txt and <date>_drive_NNNN_sync drives",
                       description="Render drives in the KITTI raw layout: calibration files, image_02/image_03 "
                                   "(0.54 m stereo), velodyne_points, oxts, timestamps; truth in "
                                   "<drive>/rmdepth_truth/.")
    _common(k, size="416x128", frames=40, fault_help=_KITTI_FAULT_HELP)
    k.add_argument("--drives", type=int, default=2, help="number of drives (default 2)")
    k.add_argument("--first-drive", type=int, default=1, help="number of the first drive (default 1)")
    k.add_argument("--date", default="2011_09_26", help="calibration date folder (default 2011_09_26)")
    k.add_argument("--no-stereo", action="store_true", help="do not render image_03")
    k.add_argument("--no-velodyne", action="store_true", help="do not write velodyne_points")
    c = sub.add_parser("cityscapes", help="Cityscapes layout: leftImg8bit_sequence, leftImg8bit, camera, disparity",
                       description="Render 30-frame snippets in the Cityscapes layout (annotated frame = index 19 of "
                                   "each snippet) with camera.json and disparity PNGs; truth in rmdepth_truth/.")
    _common(c, size="512x256", frames=30, fault_help=_CS_FAULT_HELP)
    c.add_argument("--split", default="train", choices=("train", "val", "test"), help="split (default train)")
    c.add_argument("--cities", default="", help="comma-separated city names (default: the split's first two)")
    c.add_argument("--sequences", type=int, default=2, help="snippets per city (default 2)")
    o = sub.add_parser("kitti-odometry", help="KITTI odometry layout (sequences/NN, poses/NN.txt) from raw drives",
                       description="Re-package KITTI raw drives (e.g. from `rmdepth synth kitti`) as KITTI odometry "
                                   "sequences: image_2/image_3 renumbered from 0, calib.txt, times.txt and cam0 "
                                   "ground-truth poses/NN.txt from the oxts records (pykitti).")
    o.add_argument("out", metavar="OUT", help="output root: a local folder or an fsspec URL (s3://bucket/prefix)")
    o.add_argument("--from", dest="raw", required=True, metavar="RAW", help="KITTI raw root (local or URL)")
    o.add_argument("--drives", default="", help="comma-separated drives, e.g. 2011_09_26_drive_0001_sync "
                                                "(default: every drive under RAW, sorted)")
    o.add_argument("--first-sequence", type=int, default=9,
                   help="number of the first sequence (default 9, the standard test sequence 09)")
    o.add_argument("--quiet", action="store_true", help="print nothing on success (default: a JSON summary)")


def run(args: argparse.Namespace) -> int:
    if args.dataset == "kitti-odometry":
        return _run_odometry(args)
    from pipeline import synth
    from pipeline.synth.config import CityscapesSynthConfig, KittiSynthConfig, WorldConfig
    from pipeline.synth.faults import parse_fault

    size = _size(args.size)
    if not 1 <= args.workers <= 256:
        raise UsageError(f"--workers must be in [1, 256], got {args.workers}")
    try:
        faults = tuple(parse_fault(s, args.dataset) for s in args.fault)
        if args.dataset == "kitti":
            world = WorldConfig(num_moving=args.moving_objects, ego_speed=args.speed, stop_fraction=args.stop_fraction)
            kitti_cfg = KittiSynthConfig(
                num_drives=args.drives, num_frames=args.frames, size_wh=size, seed=args.seed, date=args.date,
                first_drive=args.first_drive, fps=args.fps or 10.0, stereo=not args.no_stereo,
                velodyne=not args.no_velodyne, truth=not args.no_truth, world=world, faults=faults,
            )
        else:
            world = WorldConfig(num_moving=args.moving_objects, ego_speed=args.speed, camera_height=1.22,
                                stop_fraction=args.stop_fraction)
            cities = tuple(c.strip() for c in args.cities.split(",") if c.strip())
            cs_cfg = CityscapesSynthConfig(
                split=args.split, cities=cities, num_sequences=args.sequences, num_frames=args.frames,
                size_wh=size, seed=args.seed, fps=args.fps or 17.0, truth=not args.no_truth, world=world,
                faults=faults,
            )
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.dataset == "kitti":
        summary = synth.write_kitti(args.out, kitti_cfg, workers=args.workers)
    else:
        summary = synth.write_cityscapes(args.out, cs_cfg, workers=args.workers)
    if not args.quiet:
        print(json.dumps(summary, default=float))
    return 0


def _run_odometry(args: argparse.Namespace) -> int:
    from pipeline.synth.odometry import write_kitti_odometry

    drives = tuple(d.strip() for d in args.drives.split(",") if d.strip())
    if not 0 <= args.first_sequence <= 99:
        raise UsageError(f"--first-sequence must be in [0, 99], got {args.first_sequence}")
    summary = write_kitti_odometry(args.out, args.raw, drives=drives, first_sequence=args.first_sequence)
    if not args.quiet:
        print(json.dumps(summary, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__], prog="python -m jobs.synth"))
