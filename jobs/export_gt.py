"""Write the standard KITTI `gt_depths.npz` (key `data`: one float32 HxW depth map per split-file line, in order).

Exactly monodepth2's export_gt_depth.py: velodyne points projected with P_rect_0X @ R_rect_00 @ velo2cam, depth =
velodyne x (vel_depth, the default; --camera-depth for camera z), round-1 pixel indexing, minimum depth kept on
duplicates; or the proj_depth/groundtruth pngs (--gt-source groundtruth, the eigen_benchmark GT). The object array
is built explicitly, so maps of different sizes load with any NumPy (np.load(..., allow_pickle=True)["data"]).
Any missing or broken entry is fatal: the array must line up with the split file.

  rmdepth export-gt --input /data/kitti_raw --split-file splits/eigen/test_files.txt --output gt_depths.npz
"""

from __future__ import annotations

import argparse
import sys

from jobs.cli import run_module


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help="KITTI raw root: local path or s3:// URL")
    p.add_argument("--split-file", default="",
                   help="split file `<date>/<drive> <frame> l|r` per line (default: every frame of camera 02)")
    p.add_argument("--output", required=True, help="output .npz: local path or s3:// URL")
    p.add_argument("--gt-source", default="velodyne", choices=("velodyne", "groundtruth"),
                   help="velodyne (default) or groundtruth (proj_depth/groundtruth pngs, eigen_benchmark)")
    p.add_argument("--camera-depth", action="store_true",
                   help="velodyne GT: use camera z instead of monodepth2's velodyne x as depth")


def export_gt(input_url: str, output: str, *, split_file: str = "", gt_source: str = "velodyne",
              vel_depth: bool = True) -> int:
    """Write the npz; returns the number of maps."""
    import io

    import numpy as np
    from tqdm import tqdm

    from jobs.errors import JobError
    from pipeline import storage
    from pipeline.shards.config import ShardConfig
    from pipeline.sources import kitti

    cfg = ShardConfig(dataset="kitti", input=input_url, kind="eval", split_file=split_file, cameras=("02",),
                      gt_source=gt_source, vel_depth=vel_depth)
    kitti.check_root(cfg)
    listing = kitti.list_eval_frames(cfg)
    if listing.skipped:
        s = listing.skipped[0]
        raise JobError(f"{len(listing.skipped)} split entries have no usable input; first: {s.key or s.file}: "
                       f"{s.file}: {s.reason}")
    maps = []
    for frame in tqdm(listing.records, desc="gt", unit="frame", disable=not sys.stderr.isatty()):
        try:
            maps.append(kitti.load_gt(frame))
        except (ValueError, OSError) as e:
            raise JobError(f"{frame.key}: {e}") from None
    data = np.empty(len(maps), dtype=object)
    for i, m in enumerate(maps):
        data[i] = m
    buf = io.BytesIO()
    np.savez_compressed(buf, data=data)
    storage.write_bytes(output, buf.getvalue())
    return len(maps)


def run(args: argparse.Namespace) -> int:
    n = export_gt(args.input, args.output, split_file=args.split_file, gt_source=args.gt_source,
                  vel_depth=not args.camera_depth)
    print(f"wrote {n} ground-truth depth maps to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
