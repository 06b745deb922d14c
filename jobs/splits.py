"""Standard split files: `rmdepth splits list` shows the known names and their public URLs;
`rmdepth splits download NAME --out DIR` fetches one (needs network access; offline it fails with the URL so
the file can be fetched by hand and passed as --split-file).
"""

from __future__ import annotations

import argparse
import sys

from jobs.cli import run_module

_MD2 = "https://raw.githubusercontent.com/nianticlabs/monodepth2/master/splits"
_SFM = "https://raw.githubusercontent.com/tinghuiz/SfMLearner/master/data/kitti"

# name -> (URL, file name written under --out, what it is)
SPLITS: dict[str, tuple[str, str, str]] = {
    "eigen_test": (f"{_MD2}/eigen/test_files.txt", "eigen/test_files.txt",
                   "KITTI Eigen test (697 frames; velodyne GT via export-gt)"),
    "eigen_benchmark_test": (f"{_MD2}/eigen_benchmark/test_files.txt", "eigen_benchmark/test_files.txt",
                             "KITTI Eigen test with improved GT (652 frames; --gt-source groundtruth)"),
    "eigen_zhou_train": (f"{_MD2}/eigen_zhou/train_files.txt", "eigen_zhou/train_files.txt",
                         "Zhou et al. training targets (static frames and test scenes removed)"),
    "eigen_zhou_val": (f"{_MD2}/eigen_zhou/val_files.txt", "eigen_zhou/val_files.txt", "Zhou et al. validation"),
    "eigen_full_train": (f"{_MD2}/eigen_full/train_files.txt", "eigen_full/train_files.txt", "Eigen full training"),
    "eigen_full_val": (f"{_MD2}/eigen_full/val_files.txt", "eigen_full/val_files.txt", "Eigen full validation"),
    "test_scenes_eigen": (f"{_SFM}/test_scenes_eigen.txt", "test_scenes_eigen.txt",
                          "drives of the Eigen test set (for --exclude-scenes)"),
    "static_frames": (f"{_SFM}/static_frames.txt", "static_frames.txt", "SfMLearner's static KITTI frames"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    sub.add_parser("list", help="list the known split names and their URLs")
    d = sub.add_parser("download", help="download one split file")
    d.add_argument("name", help=f"one of: {', '.join(SPLITS)}")
    d.add_argument("--out", required=True, help="folder (local or s3://) to write <name's path> into")
    d.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds (default 30)")


def download(name: str, out: str, *, timeout: float = 30.0) -> str:
    import urllib.error
    import urllib.request

    from jobs.errors import JobError, UsageError
    from pipeline import storage
    from pipeline.sources.splits import parse_split_text

    if name not in SPLITS:
        raise UsageError(f"unknown split {name!r}; known: {', '.join(SPLITS)}")
    url, rel, _ = SPLITS[name]
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (fixed https URLs)
            data = r.read()
    except (urllib.error.URLError, OSError) as e:
        raise JobError(f"cannot download {name} from {url} ({e}); without network access fetch it by hand "
                       "and pass the file with --split-file") from None
    text = data.decode("utf-8")
    if name not in ("test_scenes_eigen", "static_frames"):
        parse_split_text(text, source=url)  # refuse anything that is not a split file (e.g. an error page)
    dst = storage.join(out, *rel.split("/"))
    storage.write_bytes(dst, data)
    return dst


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, (url, _, what) in SPLITS.items():
            print(f"{name:22s} {what}\n{'':22s} {url}")
        return 0
    dst = download(args.name, args.out, timeout=args.timeout)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
