"""Evaluation outputs: metrics JSON, per-image Parquet, image grid PNG and a Markdown + HTML report.

Shape legend: H height, W width.

Layout written under OUT (local dir or object-storage prefix; every file written atomically):
  metrics.json        {"metrics": {abs_rel..a3}, "baseline": {...}|null, "protocol": {...}, "checkpoint": {...}, ...}
  per_image.parquet   one row per test frame (and per baseline frame, column `model`)
  grid.png            input / predicted depth / GT depth for a few frames
  report.md, report.html
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.viz import colorize, dilate_sparse, image_grid
from model.metrics import LOWER_IS_BETTER, METRIC_NAMES
from pipeline import storage
from pipeline.codecs import png_bytes


@dataclass(frozen=True, kw_only=True)
class GridSample:
    """One row of the report's image grid: input (H, W, 3) uint8, predicted disparity or depth map, GT depth."""

    key: str
    image_HW3: np.ndarray
    pred_depth_hw: np.ndarray
    gt_depth_HW: np.ndarray


def rows_to_parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def render_grid(samples: list[GridSample], *, cell_width: int = 320) -> np.ndarray:
    """uint8 image: one row per sample with input | prediction | GT (dilated, sparse GT stays readable)."""
    if not samples:
        raise ValueError("render_grid: no samples")
    h0, w0 = samples[0].image_HW3.shape[:2]
    cell_hw = (max(1, round(cell_width * h0 / w0)), cell_width)
    rows = []
    for s in samples:
        rows.append(
            [
                s.image_HW3,
                colorize(s.pred_depth_hw, kind="depth"),
                colorize(dilate_sparse(s.gt_depth_HW), kind="depth"),
            ]
        )
    return image_grid(rows, cell_hw=cell_hw)


def _fmt(v: float) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def metrics_table_md(named: dict[str, dict[str, float]]) -> str:
    """Markdown table, one row per model (e.g. {"model": {...}, "constant baseline": {...}})."""
    arrows = [f"{m} {'↓' if LOWER_IS_BETTER[m] else '↑'}" for m in METRIC_NAMES]
    lines = ["| | " + " | ".join(arrows) + " |", "|---|" + "---|" * len(METRIC_NAMES)]
    for name, m in named.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(m[k]) for k in METRIC_NAMES) + " |")
    return "\n".join(lines)


def kv_md(d: dict[str, Any]) -> str:
    """A settings mapping as a Markdown list."""
    return "\n".join(f"- **{k}**: `{v}`" for k, v in d.items())


def kv_html(d: dict[str, Any]) -> str:
    """A settings mapping as an HTML list (escaped)."""
    return "<ul>" + "".join(f"<li><b>{html.escape(str(k))}</b>: <code>{html.escape(str(v))}</code></li>"
                            for k, v in d.items()) + "</ul>"


def render_markdown(summary: dict[str, Any], *, grid_name: str | None) -> str:
    named = {"model": summary["metrics"]}
    if summary.get("baseline"):
        named["constant depth (median-scaled baseline)"] = summary["baseline"]
    parts = [
        f"# Depth evaluation: {summary['protocol']['name']}",
        "",
        f"{summary['num_images']} test frames from `{summary['data']}`, metrics averaged per image "
        "(monodepth2 `compute_errors`)." + _skipped_note(summary),
        "",
        "## Metrics",
        "",
        metrics_table_md(named),
        "",
        "## Protocol",
        "",
        kv_md(summary["protocol"]),
        "",
        "## Checkpoint",
        "",
        kv_md(summary["checkpoint"]),
        "",
    ]
    if summary.get("eval_set"):
        parts += ["## Eval set", "", kv_md(summary["eval_set"]), ""]
    if summary.get("skipped"):
        parts += ["## Skipped (damaged) frames", ""]
        parts += [f"- `{s['shard']}` `{s['key']}`: {s['reason']}" for s in summary["skipped"]] + [""]
    if summary.get("ratio_median") is not None:
        parts += [f"Median-scaling ratios: median {summary['ratio_median']:.3f}, std {summary['ratio_std']:.3f}.", ""]
    if grid_name:
        parts += ["## Samples (input | predicted depth | GT depth)", "", f"![samples]({grid_name})", ""]
    return "\n".join(parts)


def _skipped_note(summary: dict[str, Any]) -> str:
    n = len(summary.get("skipped") or [])
    return f" {n} damaged frame(s) of {summary['frames']['total']} skipped (listed in metrics.json)." if n else ""


def render_html(summary: dict[str, Any], *, grid_name: str | None) -> str:
    named = {"model": summary["metrics"]}
    if summary.get("baseline"):
        named["constant depth (median-scaled baseline)"] = summary["baseline"]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in METRIC_NAMES)
    body = "".join(
        f"<tr><td>{html.escape(n)}</td>" + "".join(f"<td>{_fmt(m[k])}</td>" for k in METRIC_NAMES) + "</tr>"
        for n, m in named.items()
    )

    kv = kv_html
    img = f'<h2>Samples (input | predicted depth | GT depth)</h2><img src="{html.escape(grid_name)}">' if grid_name else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Depth evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;text-align:right}img{max-width:100%}</style></head><body>"
        f"<h1>Depth evaluation: {html.escape(summary['protocol']['name'])}</h1>"
        f"<p>{summary['num_images']} test frames from <code>{html.escape(str(summary['data']))}</code>, "
        f"metrics averaged per image.{html.escape(_skipped_note(summary))}</p>"
        f"<h2>Metrics</h2><table><tr><th></th>{head}</tr>{body}</table>"
        f"<h2>Protocol</h2>{kv(summary['protocol'])}<h2>Checkpoint</h2>{kv(summary['checkpoint'])}"
        + (f"<h2>Eval set</h2>{kv(summary['eval_set'])}" if summary.get("eval_set") else "")
        + f"{img}"
        "</body></html>"
    )


def write_eval_outputs(
    out_url: str,
    *,
    metrics: dict[str, float],
    rows: list[dict[str, Any]],
    protocol_settings: dict[str, Any],
    checkpoint: dict[str, Any],
    data: str,
    baseline: dict[str, float] | None = None,
    baseline_rows: list[dict[str, Any]] | None = None,
    samples: list[GridSample] | None = None,
    eval_set: dict[str, Any] | None = None,
    skipped: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Write all outputs under `out_url`; returns the summary written to metrics.json. `skipped`: the damaged frames
    left out ({"shard", "key", "reason"}); frames total = evaluated (num_images) + skipped."""
    ratios = np.array([r["ratio"] for r in rows], dtype=np.float64) if rows else np.zeros(0)
    skipped = list(skipped or [])
    summary = {
        "metrics": metrics,
        "baseline": baseline,
        "protocol": protocol_settings,
        "checkpoint": checkpoint,
        "data": data,
        "eval_set": eval_set,
        "num_images": len(rows),
        "frames": {"total": len(rows) + len(skipped), "evaluated": len(rows), "skipped": len(skipped)},
        "skipped": skipped,
        "ratio_median": float(np.median(ratios)) if protocol_settings.get("use_median_scaling") and len(ratios) else None,
        "ratio_std": float(np.std(ratios)) if protocol_settings.get("use_median_scaling") and len(ratios) else None,
    }
    all_rows = [{"model": "model", **r} for r in rows]
    if baseline_rows:
        all_rows += [{"model": "constant", **r} for r in baseline_rows]
    storage.write_bytes(storage.join(out_url, "per_image.parquet"), rows_to_parquet_bytes(all_rows))
    grid_name = None
    if samples:
        grid_name = "grid.png"
        storage.write_bytes(storage.join(out_url, grid_name), png_bytes(render_grid(samples)))
    storage.write_text(storage.join(out_url, "report.md"), render_markdown(summary, grid_name=grid_name))
    storage.write_text(storage.join(out_url, "report.html"), render_html(summary, grid_name=grid_name))
    storage.write_text(storage.join(out_url, "metrics.json"), json.dumps(summary, indent=2, sort_keys=True, default=str))
    return summary
