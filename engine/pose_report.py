"""Ego-motion evaluation outputs: metrics JSON, per-snippet Parquet, trajectory plot and a Markdown + HTML report.

Shape legend: F frames, N motions.

Layout written under OUT (local dir or object-storage prefix; every file written atomically):
  metrics.json          {"metrics": {...all sequences}, "baseline": {...zero motion}, "sequences": {name: {...}},
                        "protocol": {...}, "checkpoint": {...}, "data": ..., "layout": ...}; NaN is written as null
  per_snippet.parquet   one row per ATE snippet (sequence, start_frame, num_motions, ate, zero_motion_ate, gt_path_m)
  poses_<seq>.npy       the predicted motions (N, 4, 4), monodepth2's poses.npy format
  trajectory.png        top view (x right, z forward of the first camera): truth vs scale-aligned prediction
  report.md, report.html
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from typing import Any

import numpy as np

from engine.pose_eval import SequenceScore, combine
from engine.report import kv_html, kv_md, rows_to_parquet_bytes
from pipeline import storage

TABLE_METRICS: tuple[tuple[str, str], ...] = (
    ("ate_mean", "ATE mean (m) ↓"),
    ("ate_std", "ATE std ↓"),
    ("rpe_trans_pct", "t_err (%) ↓"),
    ("rpe_rot_deg_per_100m", "r_err (°/100 m) ↓"),
    ("rotation_error_deg", "rot. err / motion (°) ↓"),
    ("translation_cosine", "t cosine ↑"),
    ("length_ratio_median", "|t| ratio (median)"),
    ("trajectory_ate_rmse", "traj. ATE RMSE (m) ↓"),
)
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def json_safe(value: Any) -> Any:
    """NaN / inf -> None (strict JSON), recursively; numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def file_stem(sequence: str) -> str:
    """A sequence name usable in a file name ("2011_09_26/..._sync" -> "2011_09_26_..._sync")."""
    return _SAFE.sub("_", sequence.replace("/", "_"))


def summarize(scores: list[SequenceScore], *, protocol_settings: dict[str, Any], checkpoint: dict[str, Any],
              data: str, layout: str, gt_sources: dict[str, str]) -> dict[str, Any]:
    """The metrics.json content (before NaN -> null)."""
    return {
        "metrics": combine([s.model for s in scores]),
        "baseline": combine([s.baseline for s in scores]),
        "sequences": {s.name: {"num_frames": s.num_frames, "gt_source": gt_sources.get(s.name, ""),
                               "metrics": s.model.metrics(), "baseline": s.baseline.metrics()} for s in scores},
        "protocol": protocol_settings,
        "checkpoint": checkpoint,
        "data": data,
        "layout": layout,
        "num_sequences": len(scores),
    }


def render_trajectories(scores: list[SequenceScore]) -> bytes:
    """PNG: one top-view panel per sequence, truth vs the scale-aligned prediction, start marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(scores))
    rows = (len(scores) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 4.5 * rows), squeeze=False)
    for ax in axes.ravel()[len(scores):]:
        ax.axis("off")
    for ax, s in zip(axes.ravel(), scores, strict=False):
        gt, pred = s.gt_xyz_F3, s.model.pred_xyz_F3
        ax.plot(gt[:, 0], gt[:, 2], "k-", lw=2, label="ground truth")
        ax.plot(pred[:, 0], pred[:, 2], "r--", lw=1.5, label=f"predicted (x{s.model.trajectory_scale:.3g})")
        ax.plot([0.0], [0.0], "go", label="start")
        ax.set_title(f"{s.name}: ATE {s.model.metrics()['ate_mean']:.4f} m", fontsize=9)
        ax.set_xlabel("x (m, right)")
        ax.set_ylabel("z (m, forward)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _table_rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for name, seq in summary["sequences"].items():
        rows.append((f"{name}", seq["metrics"]))
        rows.append((f"{name} zero motion (baseline)", seq["baseline"]))
    if len(summary["sequences"]) > 1:
        rows.append(("all sequences", summary["metrics"]))
        rows.append(("all sequences zero motion", summary["baseline"]))
    return rows


def render_markdown(summary: dict[str, Any], *, plot_name: str | None) -> str:
    head = "| | " + " | ".join(label for _, label in TABLE_METRICS) + " |"
    lines = [head, "|---|" + "---|" * len(TABLE_METRICS)]
    for name, m in _table_rows(summary):
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k, _ in TABLE_METRICS) + " |")
    seqs = "\n".join(f"- **{n}**: {s['num_frames']} frames, {s['metrics']['num_snippets']} snippets, ground truth "
                     f"`{s['gt_source']}`" for n, s in summary["sequences"].items())
    kv = kv_md
    parts = [
        "# Ego-motion evaluation",
        "",
        f"{summary['metrics']['num_snippets']} snippets in {summary['num_sequences']} sequence(s) of "
        f"`{summary['data']}` ({summary['layout']}). ATE as monodepth2's evaluate_pose.py: "
        f"{summary['protocol']['track_length']}-frame snippets, first point aligned, least-squares scale; t_err / "
        "r_err: KITTI odometry devkit on the whole scale-aligned trajectory ('-': no segment fits).",
        "",
        "## Metrics",
        "",
        *lines,
        "",
        "## Sequences",
        "",
        seqs,
        "",
        "## Protocol",
        "",
        kv(summary["protocol"]),
        "",
        "## Predictions",
        "",
        kv(summary["checkpoint"]),
        "",
    ]
    if plot_name:
        parts += ["## Trajectories (top view; prediction scale-aligned)", "", f"![trajectories]({plot_name})", ""]
    return "\n".join(parts)


def render_html(summary: dict[str, Any], *, plot_name: str | None) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in TABLE_METRICS)
    body = "".join(f"<tr><td>{html.escape(n)}</td>" + "".join(f"<td>{_fmt(m.get(k))}</td>" for k, _ in TABLE_METRICS)
                   + "</tr>" for n, m in _table_rows(summary))

    kv = kv_html

    seqs = {n: f"{s['num_frames']} frames, {s['metrics']['num_snippets']} snippets, GT {s['gt_source']}"
            for n, s in summary["sequences"].items()}
    img = (f'<h2>Trajectories (top view; prediction scale-aligned)</h2><img src="{html.escape(plot_name)}">'
           if plot_name else "")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Ego-motion evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;text-align:right}img{max-width:100%}</style></head><body>"
        "<h1>Ego-motion evaluation</h1>"
        f"<p>{summary['metrics']['num_snippets']} snippets in {summary['num_sequences']} sequence(s) of "
        f"<code>{html.escape(str(summary['data']))}</code> ({html.escape(summary['layout'])}); ATE as monodepth2's "
        "evaluate_pose.py, t_err / r_err as the KITTI odometry devkit.</p>"
        f"<h2>Metrics</h2><table><tr><th></th>{head}</tr>{body}</table>"
        f"<h2>Sequences</h2>{kv(seqs)}<h2>Protocol</h2>{kv(summary['protocol'])}"
        f"<h2>Predictions</h2>{kv(summary['checkpoint'])}{img}</body></html>"
    )


def write_pose_outputs(out_url: str, *, scores: list[SequenceScore], predictions: dict[str, np.ndarray],
                       protocol_settings: dict[str, Any], checkpoint: dict[str, Any], data: str, layout: str,
                       gt_sources: dict[str, str]) -> dict[str, Any]:
    """Write every output under out_url; returns the summary written to metrics.json (NaN as None)."""
    summary = json_safe(summarize(scores, protocol_settings=protocol_settings, checkpoint=checkpoint, data=data,
                                  layout=layout, gt_sources=gt_sources))
    rows = [r for s in scores for r in s.snippet_rows]
    storage.write_bytes(storage.join(out_url, "per_snippet.parquet"), rows_to_parquet_bytes(rows))
    for name, motions_N44 in predictions.items():
        buf = io.BytesIO()
        np.save(buf, np.asarray(motions_N44, dtype=np.float32))
        storage.write_bytes(storage.join(out_url, f"poses_{file_stem(name)}.npy"), buf.getvalue())
    plot_name = "trajectory.png"
    storage.write_bytes(storage.join(out_url, plot_name), render_trajectories(scores))
    storage.write_text(storage.join(out_url, "report.md"), render_markdown(summary, plot_name=plot_name))
    storage.write_text(storage.join(out_url, "report.html"), render_html(summary, plot_name=plot_name))
    storage.write_text(storage.join(out_url, "metrics.json"), json.dumps(summary, indent=2, sort_keys=True,
                                                                         default=str))
    return summary
