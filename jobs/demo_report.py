"""report.md / report.html of `rmdepth demo`: metrics vs. the constant baseline, pictures, loss curve, shard sets,
and the commands that do the same on a cluster.

Shape legend: H height, W width.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

import numpy as np

METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")

CLUSTER_COMMANDS = """\
# 1. preprocess real data to shards on object storage (one Ray task per shard)
ray job submit --address http://HEAD:8265 --working-dir . -- \\
    python -m jobs.preprocess --dataset cityscapes --input s3://BUCKET/raw/cityscapes \\
    --output s3://BUCKET/shards/cityscapes-train --size 640x192
ray job submit --address http://HEAD:8265 --working-dir . -- \\
    python -m jobs.preprocess --dataset kitti --input s3://BUCKET/raw/kitti_raw \\
    --split-file splits/eigen_zhou/train_files.txt --output s3://BUCKET/shards/kitti-train --size 640x192
ray job submit --address http://HEAD:8265 --working-dir . -- \\
    python -m jobs.preprocess --dataset kitti --input s3://BUCKET/raw/kitti_raw --eval \\
    --split-file splits/eigen/test_files.txt --output s3://BUCKET/shards/kitti-eigen-test
# 2. Cityscapes pretraining, then KITTI fine-tuning (the paper's CS+K recipe), elastic over 2..8 GPU workers
ray job submit --address http://HEAD:8265 --working-dir . -- \\
    python -m jobs.train --preset cs_then_kitti --storage-path s3://BUCKET/runs --use-gpu --elastic 2,8 \\
    --set pretrain.data.train_url=s3://BUCKET/shards/cityscapes-train \\
    --set data.train_url=s3://BUCKET/shards/kitti-train --set data.val_url=s3://BUCKET/shards/kitti-eigen-test
# 3. distributed evaluation of a checkpoint, and scheduled re-evaluation of every new checkpoint
ray job submit --address http://HEAD:8265 --working-dir . -- \\
    python -m jobs.evaluate --checkpoint s3://BUCKET/runs/cs_then_kitti/CHECKPOINT \\
    --data s3://BUCKET/shards/kitti-eigen-test --protocol kitti-eigen --out s3://BUCKET/eval/CHECKPOINT
kubectl apply -f infra/k8s/  # RayCluster, RayJobs and the RayCronJob re-evaluation schedule
"""


def _fmt(v: Any) -> str:
    return "-" if v is None or v != v else f"{float(v):.4f}"  # None or NaN


def _png(path: str, image_HW3: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image_HW3).save(path)


def _pictures_grid(state, workdir: str) -> str | None:
    from engine.logger import flow_rgb, vector_field_rgb
    from engine.viz import colorize, image_grid, to_uint8_image

    if not state.pictures:
        return None
    rows = []
    for p in state.pictures:
        h, w = p["pred_depth"].shape
        true = p["true_depth"].astype(np.float64)
        true = np.where(true >= 999.0, 0.0, true)  # the synthetic sky is "infinitely" far: shown black
        # one colour scale for both: the prediction median-scaled to the truth (as the metrics do), the truth's range
        pred = _median_scaled(p["pred_depth"], true)
        valid = true[true > 0]
        disp_range = (1.0 / float(valid.max()), float(np.percentile(1.0 / valid, 95.0))) if valid.size else None
        rows.append([
            to_uint8_image(np.transpose(p["image"], (2, 0, 1))),
            colorize(pred, kind="depth", disp_range=disp_range),
            colorize(true, kind="depth", disp_range=disp_range),
            vector_field_rgb(p["motion_field"], scale=1.0),
            flow_rgb(p["flow"]),
        ])
    grid = image_grid(rows, cell_hw=(h * 2, w * 2))
    _png(os.path.join(workdir, "pictures.png"), grid)
    return "pictures.png"


def _median_scaled(pred_hw: np.ndarray, true_HW: np.ndarray) -> np.ndarray:
    """The prediction times median(truth) / median(prediction), both over the truth's valid pixels."""
    from PIL import Image

    h, w = pred_hw.shape
    true = np.asarray(Image.fromarray(true_HW.astype(np.float32)).resize((w, h), Image.Resampling.NEAREST))
    valid = true > 0
    if not valid.any():
        return pred_hw
    return pred_hw * float(np.median(true[valid]) / np.median(pred_hw[valid]))


def _loss_curve(state, workdir: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = state.train_result
    stages = [(result.parent, "Cityscapes pretraining")] if result.parent is not None else []
    stages.append((result, "KITTI"))
    if not any(r.history for r, _ in stages):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    offset = 0
    for r, label in stages:
        steps = [offset + row["step"] for row in r.history]
        if steps:
            axes[0].plot(steps, [row["loss"] for row in r.history], label=f"{label} ({r.final_step} steps)")
        if r.metrics:
            vs = [offset + row["step"] for row in r.metrics]
            axes[1].plot(vs, [row.get("val_abs_rel") for row in r.metrics], "o-", label=f"model ({label})")
            axes[1].plot(vs, [row.get("val_baseline_abs_rel") for row in r.metrics], "x--",
                         label="constant depth (median-scaled)")
        offset += r.final_step
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel("training loss")
    axes[0].legend()
    axes[1].set_xlabel("optimizer step")
    axes[1].set_ylabel("validation AbsRel")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "loss_curve.png"), dpi=90)
    plt.close(fig)
    return "loss_curve.png"


def _sections(state, pictures: str | None, curve: str | None, workdir: str) -> list[tuple[str, str]]:
    """(title, markdown body) pairs."""
    res = state.eval_result
    opts = state.opts
    out = []
    intro = (
        f"Everything below ran on this machine: synthetic KITTI- and Cityscapes-format worlds, WebDataset shards "
        f"written by Ray tasks, RM-Depth trained with Ray Train ({opts.workers} CPU workers, `{opts.loader}` loader"
        f"{', Cityscapes pretraining then KITTI' if opts.pretrain else ''}), evaluated by {opts.workers} Ray workers "
        f"on a held-out test drive. Storage: `{state.storage_root}`"
        f"{' (a local S3-compatible server: every shard, checkpoint and result went through s3:// URLs)' if opts.use_s3 else ''}."
    )
    out.append(("What ran", intro + "\n\nStage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in state.timings.items())))
    head = "| | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS) + "\n"
    body = "| RM-Depth (this run) | " + " | ".join(_fmt(res.metrics.get(m)) for m in METRICS) + " |\n"
    if res.baseline:
        body += "| constant depth, median-scaled | " + " | ".join(_fmt(res.baseline.get(m)) for m in METRICS) + " |\n"
    verdict = ""
    if res.baseline:
        better = res.metrics["abs_rel"] < res.baseline["abs_rel"]
        verdict = (f"\n\nAbsRel {res.metrics['abs_rel']:.3f} vs. {res.baseline['abs_rel']:.3f} for the constant "
                   f"baseline: the trained model is **{'better' if better else 'not better'}** than the floor.")
    proto = ", ".join(f"{k}={v}" for k, v in sorted(_protocol(res.protocol).items()))
    out.append(("Metrics on the test drive (KITTI Eigen protocol)",
                f"{len(res.rows)} test frames, each counted once; per-image metrics averaged over images.\n\n"
                + head + body + verdict + f"\n\nProtocol: {proto}.\n\nCheckpoint: `{res.identity.get('url')}` "
                f"(step {res.identity.get('step', '?')}). Full outputs: `{state.eval_url}`."))
    out += _pose_sections(state, workdir)
    if pictures:
        loss = state.run_config.loss
        steps = state.train_result.final_step
        start, end = loss.motion_burnin_steps(steps)
        field = max((float(p["motion_field"].norm(dim=0).max()) for p in state.pictures), default=0.0)
        burnin = (f"The object-motion field is off (and not computed) until step {start:.0f} and ramps up to full "
                  f"strength at step {end:.0f} of this run's {steps}"
                  + (", so the motion column is flat grey and the flow is ego-motion only." if steps <= start else
                     f"; its largest value in these pictures is {field:.3f} m. In this world every moving car drives "
                     "parallel to the camera, where object motion and depth are photometrically interchangeable, and "
                     "the field has not been seen to switch on (BENCHMARKS.md, Learning)."))
        out.append(("Pictures", "Columns: input frame | predicted depth (median-scaled) | true depth (rendered; both on "
                                "the truth's colour scale, sky black) | 3D motion field of "
                                "moving objects (target to next frame; RGB = x, y, z components, grey = 0, full colour = "
                                "1 m, the camera's motion per frame) | optical flow (from depth, ego-motion and motion field). "
                                f"{burnin}\n\n![pictures]({pictures})"))
    if curve:
        out.append(("Training", f"![loss curve]({curve})\n\nTensorBoard logs: `tensorboard --logdir "
                                f"{os.path.join(os.path.abspath(opts.workdir), 'tensorboard')}`; run: "
                                f"`{state.train_result.run_url}`"))
    rows = "| shard set | kind | samples | shards | skipped inputs | stored size |\n|---|---|---|---|---|---|\n"
    for name, s in state.shard_summaries.items():
        rows += (f"| `{state.shards[name]}` | {s.kind} | {s.num_samples} | {len(s.shards)} | {s.num_errors} | "
                 f"{s.stored_size_wh[0]}x{s.stored_size_wh[1]} |\n")
    out.append(("Shard sets", rows))
    out.append(("The same on a cluster", "```bash\n" + CLUSTER_COMMANDS + "```"))
    return out


def _pose_sections(state, workdir: str) -> list[tuple[str, str]]:
    """Ego-motion on the test drive (eval-pose outputs), pose validation during training, moving-object depth."""
    from pipeline import storage

    out = []
    if state.pose_summary:
        m, b = state.pose_summary["metrics"], state.pose_summary["baseline"]
        rows = [("ate_mean", "ATE, 5-frame snippets (m)"), ("ate_std", "ATE std (m)"),
                ("rotation_error_deg", "rotation error per frame (deg)"),
                ("translation_cosine", "translation direction cosine"), ("length_ratio_median", "translation length ratio")]
        table = "| | RM-Depth (this run) | standing camera |\n|---|---|---|\n" + "".join(
            f"| {label} | {_fmt(m.get(k))} | {_fmt(b.get(k))} |\n" for k, label in rows)
        plot = "trajectory.png"
        try:
            storage.get_file(storage.join(state.pose_url, plot), os.path.join(workdir, plot))
            picture = f"\n\n![trajectory]({plot})"
        except (OSError, FileNotFoundError):
            picture = ""
        scored = [r for r in state.train_result.metrics if "val_abs_rel" in r]
        val = min(scored, key=lambda r: r["val_abs_rel"]) if scored else {}
        during = ""
        if "val_pose_ate" in val:
            during = (f"\n\nDuring training (validation drive, 3-frame snippets, best checkpoint): ATE "
                      f"{val['val_pose_ate']:.4f} m vs {val['val_pose_ate_zero_motion']:.4f} m for a standing camera, "
                      f"direction cosine {val['val_pose_cosine']:.4f}, spread of the output {val['val_pose_spread']:.3f} "
                      "(relative; a constant output gives 0).")
        out.append(("Ego-motion on the test drive (KITTI odometry protocol)",
                    "monodepth2's protocol (`rmdepth eval-pose`): snippets of 5 frames, first point aligned, "
                    "least-squares scale; the test drive converted to the KITTI odometry layout (sequence 09).\n\n"
                    + table + during + f"\n\nFull outputs: `{state.pose_url}`." + picture))
    if state.synth_metrics:
        sm = state.synth_metrics
        out.append(("Depth on moving objects (synthetic truth)",
                    "Dense AbsRel of the test drive against the rendered depth (median-scaled per image, pixels "
                    "closer than 80 m, Garg crop), split by the truth's moving-object mask; field recall: the share of "
                    "the moving cars' true motion (next frame) that the object-motion field recovers (1 = all, 0 = "
                    "none), and its mean magnitude elsewhere (m):\n\n"
                    "| static pixels | pixels of moving cars | of which oncoming / same direction | share of moving pixels "
                    "| field recall (static leak, m) |\n|---|---|---|---|---|\n"
                    f"| {_fmt(sm['dense_abs_rel_static'])} | {_fmt(sm['dense_abs_rel_moving'])} | "
                    f"{_fmt(sm.get('dense_abs_rel_moving_oncoming'))} / "
                    f"{_fmt(sm.get('dense_abs_rel_moving_same_direction'))} | "
                    f"{_fmt(sm['moving_pixel_fraction'])} | {_fmt(sm.get('field_recall'))} "
                    f"({_fmt(sm.get('field_static'))}) |"))
    return out


def _protocol(protocol) -> dict[str, Any]:
    from engine.config_io import to_dict

    return to_dict(protocol)


def _md_to_html(text: str) -> str:
    """Enough markdown for our own sections: tables, images, code blocks, paragraphs."""
    import re

    blocks, out = text.split("\n\n"), []
    for b in blocks:
        if b.startswith("```"):
            out.append("<pre>" + html.escape(b.strip("`").removeprefix("bash\n")) + "</pre>")
        elif b.startswith("|"):
            lines = [ln for ln in b.strip().splitlines() if not set(ln) <= set("|-")]
            cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
            trs = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in cells)
            out.append(f"<table>{trs}</table>")
        elif m := re.match(r"!\[(.*?)\]\((.*?)\)", b):
            out.append(f'<p><img alt="{html.escape(m[1])}" src="{html.escape(m[2])}" style="max-width:100%"></p>')
        else:
            out.append(f"<p>{_inline(b)}</p>")
    return "\n".join(out)


def _inline(s: str) -> str:
    import re

    s = html.escape(s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def write_report(state, workdir: str) -> str:
    """Write report.md, report.html, pictures.png, loss_curve.png and demo.json into workdir; returns report.md."""
    pictures = _pictures_grid(state, workdir)
    curve = _loss_curve(state, workdir)
    sections = _sections(state, pictures, curve, workdir)
    title = "RM-Depth demo report"
    md = f"# {title}\n\n" + "\n\n".join(f"## {t}\n\n{b}" for t, b in sections) + "\n"
    path = os.path.join(workdir, "report.md")
    with open(path, "w") as f:
        f.write(md)
    body = "\n".join(f"<h2>{html.escape(t)}</h2>\n{_md_to_html(b)}" for t, b in sections)
    with open(os.path.join(workdir, "report.html"), "w") as f:
        f.write(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>"
                "body{font-family:sans-serif;max-width:1100px;margin:auto}td{border:1px solid #ccc;padding:3px 6px}"
                "table{border-collapse:collapse}pre{background:#f4f4f4;padding:8px;overflow-x:auto}</style></head>"
                f"<body><h1>{title}</h1>\n{body}</body></html>")
    res = state.eval_result
    with open(os.path.join(workdir, "demo.json"), "w") as f:
        json.dump({"metrics": res.metrics, "baseline": res.baseline, "num_test_frames": len(res.rows),
                   "pose": state.pose_summary, "moving_objects": state.synth_metrics,
                   "timings_s": state.timings, "checkpoint": res.identity.get("url"),
                   "shards": state.shards}, f, indent=2, default=str)
    return path
