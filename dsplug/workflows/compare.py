"""Compare backbones on one recipe: same data, splits and seed; one table to decide by.

For each backbone the recipe is run into ``OUT/<backbone>`` (a finished run is reused), then
exported quantised, and measured: devel/test UAR with 95 % CIs, parameters, TFLite size (fp32
and int8 — dynamic-range for raw-audio backbones, whose full-integer conversion crashes the
TF 2.21 converter), end-to-end latency per chunk (TFLite, one thread) and training time.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsplug.artifacts import csv_text, write_atomic
from dsplug.errors import DsplugError
from dsplug.recipe.loader import load_recipe

logger = logging.getLogger(__name__)


def compare(
    recipe_path: str | Path,
    *,
    backbones: Sequence[str],
    out: str | Path,
    overrides: Sequence[str] = (),
    reporter: Any = None,
    runs: int = 30,
) -> list[dict[str, Any]]:
    """Run and measure ``recipe_path`` once per backbone; write ``compare.md`` and ``compare.csv``.

    Each entry of ``backbones`` is a backbone name, optionally with the weights to use instead
    of the recipe's (``name:weights``, e.g. ``densenet121:none,efficientnet_lite0:imagenet``).

    Returns
    -------
    list of dict
        One row per backbone (see :func:`format_table` for the columns).
    """
    from dsplug.artifacts import RunDir
    from dsplug.runtime import bench
    from dsplug.workflows.run import run_point

    if not backbones:
        raise DsplugError("--backbones: name at least one backbone, e.g. densenet121,mobilenet_v2")
    out = Path(out)
    rows = []
    for entry in backbones:
        name, _, weights = entry.partition(":")
        chosen = [f"model.backbone.name={name}"] + ([f"model.backbone.weights={weights}"] if weights else [])
        [point] = load_recipe(recipe_path, overrides=[*overrides, *chosen])
        mode = "int8" if _input_kind(name) == "image" else "dynamic"
        wanted = point.recipe.export.quantize
        if mode not in wanted:  # the run exports the small model too (with the recipe's own modes)
            [point] = load_recipe(recipe_path, overrides=[*overrides, *chosen, f"export.quantize=[{', '.join([*wanted, mode])}]"])
        run_dir = out / (f"{name}-{weights}" if weights else name)
        if reporter:
            reporter.info(f"== {entry}")
        result = run_point(point, run_dir=run_dir, reporter=reporter)
        exported = result["export"]
        small = run_dir / RunDir.model_file(mode)
        history = list(csv.DictReader(open(run_dir / "history.csv"))) if (run_dir / "history.csv").is_file() else []
        timing = bench(run_dir / "model.tflite", threads=1, runs=runs, warmup=3)
        metrics = result["metrics"]
        rows.append({
            "backbone": name,
            "weights": point.recipe.model.backbone.weights,
            **{f"{part}_{key}": _get(metrics, part, key) for part in ("devel", "test") for key in ("uar", "uar_ci95")},
            "parameters": timing["parameters"],
            "tflite_fp32_mb": (run_dir / "model.tflite").stat().st_size / 1e6,
            "tflite_small_mb": small.stat().st_size / 1e6 if small.is_file() else None,
            "small_mode": mode,
            "latency_ms": timing["latency_mean_ms"],
            "train_seconds": sum(float(h.get("seconds") or 0) for h in history),
            "export": exported.get("models", {}),
        })
    write_atomic(out / "compare.md", format_table(rows) + "\n")
    cells = ({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows)
    write_atomic(out / "compare.csv", csv_text(cells, columns=[k for k in rows[0] if k != "export"]))
    return rows


def _input_kind(name: str) -> str:
    from dsplug import registry

    return str(registry.load("backbones", name).input_kind)


def _get(metrics: dict[str, Any], part: str, key: str) -> Any:
    return metrics.get(part, {}).get(key)


def _uar(row: dict[str, Any], part: str) -> str:
    value, ci = row.get(f"{part}_uar"), row.get(f"{part}_uar_ci95")
    if value is None:
        return "–"
    return f"{value:.3f} ({ci[0]:.3f}–{ci[1]:.3f})" if ci else f"{value:.3f}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :func:`compare`'s rows."""
    lines = [
        "| backbone | weights | devel UAR (95 % CI) | test UAR (95 % CI) | parameters | TFLite fp32 (MB) | TFLite int8 (MB) | latency / chunk (ms) | training (s) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        small = f"{row['tflite_small_mb']:.2f}" if row["tflite_small_mb"] is not None else "–"
        if row["small_mode"] != "int8":
            small += f" ({row['small_mode']})"
        lines.append(
            f"| {row['backbone']} | {row['weights']} | {_uar(row, 'devel')} | {_uar(row, 'test')} | "
            f"{row['parameters']:,} | {row['tflite_fp32_mb']:.2f} | {small} | {row['latency_ms']:.2f} | {row['train_seconds']:.0f} |"
        )
    return "\n".join(lines)
