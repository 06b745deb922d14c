"""Evaluate ego-motion as the field measures it: monodepth2's 5-frame-snippet ATE on KITTI odometry (plus the
KITTI devkit's relative errors), for a checkpoint (distributed over Ray workers) or for predictions made elsewhere.

  rmdepth eval-pose --checkpoint URL --data KITTI_ODOMETRY_ROOT [--sequences 09,10] --out OUT [--num-workers 2]
  rmdepth eval-pose --checkpoint URL --data KITTI_RAW_ROOT [--sequences 2011_09_26_drive_0001_sync] --out OUT
  rmdepth eval-pose --predictions poses.npy --gt-poses 09.txt [--json m.json] [--out OUT]

Odometry: sequences/NN/image_2 frames with poses/NN.txt; raw: <date>/<drive>/image_02 frames with camera 02 poses
from oxts (pykitti). Workers (plain Ray tasks with rank/world_size) predict contiguous, disjoint ranges of each
sequence's frame pairs; the driver checks that every pair was predicted exactly once, scores each sequence and
writes metrics.json, per_snippet.parquet, poses_<seq>.npy, trajectory.png and report.md/.html under --out.
--predictions is monodepth2's poses.npy: (F-1) x 4 x 4, entry i the motion mapping frame i's points into frame i+1.
"""

from __future__ import annotations

import argparse
import io
import json
import sys

from jobs.cli import run_module
from jobs.config_args import add_config_arguments, alias, resolve_config
from jobs.errors import UsageError
from jobs.evaluate import add_worker_arguments

DEFAULT_ODOMETRY_SEQUENCES = "09,10"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    src = parser.add_argument_group("model evaluation")
    src.add_argument("--checkpoint", help="checkpoint directory or URL (see engine/checkpoint.py)")
    src.add_argument("--data", help="KITTI odometry root (sequences/, poses/) or KITTI raw root (local or URL)")
    src.add_argument("--dataset", choices=("kitti-odometry", "kitti-raw"), default=None,
                     help="layout of --data (default: kitti-odometry if DATA/sequences exists, else kitti-raw)")
    src.add_argument("--sequences", default=None,
                     help="comma-separated odometry sequences (default 09,10) or raw drives, e.g. "
                          "2011_09_26_drive_0001_sync (default: every drive)")
    src.add_argument("--out", help="output dir/URL for metrics.json, per_snippet.parquet, poses_*.npy, trajectory.png, "
                                   "report.md/.html")
    ext = parser.add_argument_group("external predictions")
    ext.add_argument("--predictions", help="monodepth2 poses.npy: (F-1) x 4 x 4 motions, frame i -> i+1")
    ext.add_argument("--gt-poses", help="KITTI odometry poses file (e.g. poses/09.txt): 12 numbers a line")
    ext.add_argument("--json", help="write the metrics (ate_mean, ate_std, ...) to this JSON file/URL")
    g = parser.add_argument_group("protocol (flags are aliases of --set overrides; fields in engine/pose_eval.py PoseProtocol)")
    add_config_arguments(g, config_help="a PoseProtocol JSON, or the metrics.json of an earlier pose evaluation",
                         example="track_length=3")
    alias(g, "--track-length", field="track_length", help="frames per ATE snippet (default 5, monodepth2)")
    alias(g, "--rpe-lengths", field="rpe_lengths",
          help="segment lengths in metres of the devkit's relative errors (default 100,...,800)")
    alias(g, "--rpe-step", field="rpe_step", help="a devkit segment starts every N frames (default 10)")
    add_worker_arguments(parser)


def _protocol(args: argparse.Namespace):
    from engine.pose_eval import PoseProtocol

    return resolve_config(PoseProtocol, args, base=PoseProtocol(), embedded_key="protocol", drop=PoseProtocol.DESCRIPTIVE)


def run(args: argparse.Namespace) -> int:
    if args.predictions or args.gt_poses:
        return _run_external(args)
    if not (args.checkpoint and args.data and args.out):
        raise UsageError("give --checkpoint, --data and --out (or --predictions and --gt-poses for external "
                         "predictions)")
    if args.num_workers < 0 or args.batch_size < 1:
        raise UsageError("--num-workers must be >= 0 and --batch-size >= 1")
    from engine.pose_eval import score_sequence
    from engine.pose_report import write_pose_outputs
    from jobs.pose_runner import predict_sequences
    from pipeline.sources.kitti_odometry import detect_layout, load_sequence, odometry_sequences, raw_drives

    protocol = _protocol(args)
    layout = args.dataset or detect_layout(args.data)
    names = [s.strip() for s in (args.sequences or "").split(",") if s.strip()]
    if not names:
        names = DEFAULT_ODOMETRY_SEQUENCES.split(",") if layout == "kitti-odometry" else raw_drives(args.data)
    if not names:
        have = odometry_sequences(args.data) if layout == "kitti-odometry" else []
        raise FileNotFoundError(f"{args.data}: no sequences to evaluate (found: {', '.join(have) or 'none'})")
    seqs = list({s.name: s for s in (load_sequence(args.data, n, layout) for n in names)}.values())
    pred = predict_sequences(checkpoint=args.checkpoint, sequences=seqs, num_workers=args.num_workers,
                             batch_size=args.batch_size, device=args.device, cpus_per_worker=args.cpus_per_worker,
                             ray_address=args.ray_address)
    scores = [score_sequence(s.name, pred.motions[s.name], s.poses_F44, protocol=protocol) for s in seqs]
    summary = write_pose_outputs(
        args.out, scores=scores, predictions=pred.motions, protocol_settings=protocol.settings(),
        checkpoint={**pred.identity, "input_size_wh": list(pred.size_wh), "workers": pred.num_tasks},
        data=args.data, layout=layout, gt_sources={s.name: s.gt_source for s in seqs},
    )
    _print(summary)
    if args.json:
        _write_json(args.json, {**_flat(summary["metrics"], summary["baseline"]),
                                "sequences": {n: _flat(s["metrics"], s["baseline"])
                                              for n, s in summary["sequences"].items()}})
    print(f"wrote {args.out}/report.md")
    return 0


def _run_external(args: argparse.Namespace) -> int:
    if not (args.predictions and args.gt_poses):
        raise UsageError("--predictions and --gt-poses go together")
    if args.checkpoint or args.data:
        raise UsageError("--predictions/--gt-poses cannot be combined with --checkpoint/--data")
    import numpy as np

    from engine.pose_eval import check_motions, score_sequence
    from engine.pose_report import json_safe, summarize, write_pose_outputs
    from pipeline import storage
    from pipeline.sources.kitti_odometry import read_poses

    protocol = _protocol(args)
    gt = read_poses(args.gt_poses)
    if not storage.exists(args.predictions):
        raise FileNotFoundError(f"{args.predictions}: predictions file not found")
    try:
        raw = np.load(io.BytesIO(storage.read_bytes(args.predictions)), allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{args.predictions}: not a NumPy .npy array of motions ({e})") from None
    if not isinstance(raw, np.ndarray):
        raise ValueError(f"{args.predictions}: an .npz archive; expected a .npy array (N, 4, 4)")
    motions = check_motions(raw, num_frames=len(gt), source=args.predictions, gt_source=args.gt_poses)
    name = args.gt_poses.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    score = score_sequence(name, motions, gt, protocol=protocol)
    kw = dict(protocol_settings=protocol.settings(), checkpoint={"predictions": args.predictions}, data=args.gt_poses,
              layout="kitti-odometry poses file", gt_sources={name: args.gt_poses})
    if args.out:
        summary = write_pose_outputs(args.out, scores=[score], predictions={}, **kw)
    else:
        summary = json_safe(summarize([score], **kw))
    _print(summary)
    if args.json:
        seq = summary["sequences"][name]
        _write_json(args.json, _flat(seq["metrics"], seq["baseline"]))
    return 0


def _flat(metrics: dict, baseline: dict) -> dict:
    return {**metrics, "zero_motion_ate_mean": baseline["ate_mean"], "zero_motion_ate_std": baseline["ate_std"]}


def _write_json(url: str, payload: dict) -> None:
    from engine.pose_report import json_safe
    from pipeline import storage

    storage.write_text(url, json.dumps(json_safe(payload), indent=2))


def _print(summary: dict) -> None:
    def f(v):
        return f"{v:10.4f}" if isinstance(v, float) else f"{'-':>10}"

    print(f"{'sequence':>40}{'frames':>8}{'ate_mean':>10}{'ate_std':>10}{'t_err%':>10}{'r_err':>10}{'zero_ate':>10}")
    for name, s in summary["sequences"].items():
        m, b = s["metrics"], s["baseline"]
        print(f"{name:>40}{s['num_frames']:>8}" + "".join(f(m[k]) for k in ("ate_mean", "ate_std", "rpe_trans_pct",
                                                                          "rpe_rot_deg_per_100m")) + f(b["ate_mean"]))


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__], prog="python -m jobs.eval_pose"))
