"""The re-evaluation results table on object storage, and checkpoint discovery under a training storage prefix.

Table layout at RESULTS (local dir or s3:// prefix):
  parts/<run>__<checkpoint>__<protocol>__<evalset>.parquet   one part per (checkpoint, protocol, eval set), one row,
                                                             written atomically under a deterministic name
  summary.md, summary_<metric>.png                           metric vs step per run (rewritten by each reeval run)
The table is the directory: a part either exists completely or not at all, so a killed run loses nothing already
written and a re-run (or a concurrent run) writes the same name again instead of a duplicate row. Readers still
dedupe by `key` (the sha1 of checkpoint URL, protocol settings and eval-set id).

Checkpoint discovery (Ray Train layout, engine/checkpoint.py): `<prefix>/<run_name>/checkpoint_*/` holding
model.pt + identity.json + config.json; incomplete directories are skipped and reported. `prefix` may also be a
single run directory or a single checkpoint directory.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from engine.checkpoint import is_checkpoint_name, missing_files
from model.metrics import LOWER_IS_BETTER, METRIC_NAMES
from pipeline import storage

PARTS_DIR = "parts"
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True, kw_only=True)
class CheckpointRef:
    run: str
    name: str
    url: str


def discover_checkpoints(prefix: str) -> tuple[list[CheckpointRef], list[str]]:
    """Complete checkpoints under `prefix` (sorted by run, name) and a list of 'url: reason' for skipped ones."""
    prefix = prefix.rstrip("/")
    if not storage.exists(prefix):
        raise FileNotFoundError(f"runs prefix {prefix} does not exist")
    found: list[CheckpointRef] = []
    skipped: list[str] = []
    base = prefix.rsplit("/", 1)[-1]

    def visit_run(run_url: str, run: str) -> None:
        for name in storage.listdir(run_url):
            if not is_checkpoint_name(name):
                continue
            url = storage.join(run_url, name)
            if not storage.isdir(url):
                continue
            missing = missing_files(url)
            if not missing:
                found.append(CheckpointRef(run=run, name=name, url=url))
            else:
                skipped.append(f"{url}: incomplete checkpoint (missing {', '.join(missing)})")

    if is_checkpoint_name(base) and not missing_files(prefix):
        parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        return [CheckpointRef(run=parent.rsplit("/", 1)[-1] or "run", name=base, url=prefix)], []
    if any(is_checkpoint_name(n) for n in storage.listdir(prefix)):
        visit_run(prefix, base)
    for run in storage.listdir(prefix):
        run_url = storage.join(prefix, run)
        if is_checkpoint_name(run) or not storage.isdir(run_url):
            continue
        visit_run(run_url, run)
    return sorted(found, key=lambda c: (c.run, c.name)), skipped


def eval_set_id(data_url: str, summary) -> str:
    """Identity of an eval shard set: its URL and the content summary (sample count, shard checksums)."""
    h = hashlib.sha1()
    h.update(data_url.rstrip("/").encode())
    h.update(str(summary.num_samples).encode())
    for s in summary.shards:
        h.update(s.sha256.encode())
    return h.hexdigest()[:12]


def result_key(checkpoint_url: str, protocol_settings: dict[str, Any], evalset: str) -> str:
    text = json.dumps({"ckpt": checkpoint_url.rstrip("/"), "protocol": protocol_settings, "evalset": evalset}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()


def part_url(results_url: str, ckpt: CheckpointRef, protocol_name: str, evalset: str, key: str) -> str:
    name = "__".join(_SAFE.sub("-", p) for p in (ckpt.run, ckpt.name, protocol_name, evalset, key[:8]))
    return storage.join(results_url, PARTS_DIR, name + ".parquet")


def write_part(url: str, row: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row]), buf)
    storage.write_bytes(url, buf.getvalue())


def read_results(results_url: str) -> list[dict[str, Any]]:
    """All result rows, deduplicated by key (the newest evaluation wins), sorted by run and step."""
    import pyarrow.parquet as pq

    rows: dict[str, dict[str, Any]] = {}
    for url in storage.glob(storage.join(results_url, PARTS_DIR), "*.parquet"):
        try:
            table = pq.read_table(io.BytesIO(storage.read_bytes(url)))
        except Exception as e:  # noqa: BLE001 - a foreign/corrupt file must not hide the rest of the table
            raise ValueError(f"results part {url} is not a readable Parquet file: {e}") from e
        for r in table.to_pylist():
            old = rows.get(r["key"])
            if old is None or str(r.get("evaluated_at", "")) > str(old.get("evaluated_at", "")):
                rows[r["key"]] = {"num_skipped": 0, **r}  # parts written before the column existed
    return sorted(rows.values(), key=lambda r: (r["run"], r["protocol"], r["eval_set"], r["step"], r["checkpoint"]))


def make_row(*, ckpt: CheckpointRef, identity: dict[str, Any], protocol_settings: dict[str, Any], data_url: str,
             evalset: str, key: str, metrics: dict[str, float], num_images: int,
             baseline: dict[str, float] | None, num_skipped: int = 0) -> dict[str, Any]:
    """One results-table row; `num_images` frames were scored and `num_skipped` damaged frames left out."""
    row = {
        "key": key,
        "run": ckpt.run,
        "checkpoint": ckpt.name,
        "checkpoint_url": ckpt.url,
        "step": int(identity.get("step", -1)),
        "epoch": int(identity.get("epoch", -1)),
        "samples_seen": int(identity.get("samples_seen", -1)),
        "protocol": protocol_settings["name"],
        "protocol_settings": json.dumps(protocol_settings, sort_keys=True),
        "eval_set": data_url,
        "eval_set_id": evalset,
        "num_images": int(num_images),
        "num_skipped": int(num_skipped),
        "evaluated_at": _dt.datetime.now(_dt.UTC).isoformat(),
        "code_version": str(identity.get("code_version", "")),
    }
    row.update({m: float(metrics[m]) for m in METRIC_NAMES})
    for m in METRIC_NAMES:
        row[f"baseline_{m}"] = float(baseline[m]) if baseline else float("nan")
    return row


def write_summary(results_url: str, rows: list[dict[str, Any]], *, metrics: tuple[str, ...] = ("abs_rel", "a1")) -> list[str]:
    """summary.md (best and latest per run) + summary_<metric>.png (metric vs step, one line per run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    lines = ["# Re-evaluation results", ""]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["protocol"], r["eval_set"]), []).append(r)
    for (protocol, evalset), grows in sorted(groups.items()):
        lines += [f"## {protocol} on `{evalset}`", "", "| run | checkpoint | step | " + " | ".join(METRIC_NAMES) + " |",
                  "|---|---|---|" + "---|" * len(METRIC_NAMES)]
        for r in grows:
            lines.append(f"| {r['run']} | {r['checkpoint']} | {r['step']} | " + " | ".join(f"{r[m]:.4f}" for m in METRIC_NAMES) + " |")
        lines.append("")
        for run in sorted({r["run"] for r in grows}):
            rr = [r for r in grows if r["run"] == run]
            best = min(rr, key=lambda r: r["abs_rel"])
            lines.append(f"- **{run}**: best abs_rel {best['abs_rel']:.4f} at step {best['step']} ({best['checkpoint']}); "
                         f"{len(rr)} checkpoints evaluated")
        lines.append("")
    for m in metrics:
        fig, ax = plt.subplots(figsize=(6, 4))
        for (protocol, _evalset), grows in sorted(groups.items()):
            for run in sorted({r["run"] for r in grows}):
                rr = sorted((r for r in grows if r["run"] == run), key=lambda r: r["step"])
                ax.plot([r["step"] for r in rr], [r[m] for r in rr], marker="o", label=f"{run} ({protocol})")
        ax.set_xlabel("step")
        ax.set_ylabel(f"{m} ({'lower' if LOWER_IS_BETTER[m] else 'higher'} is better)")
        ax.grid(True, alpha=0.3)
        if groups:
            ax.legend(fontsize=7)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        name = f"summary_{m}.png"
        storage.write_bytes(storage.join(results_url, name), buf.getvalue())
        written.append(name)
        lines.append(f"![{m} vs step]({name})")
    storage.write_text(storage.join(results_url, "summary.md"), "\n".join(lines) + "\n")
    return ["summary.md", *written]
