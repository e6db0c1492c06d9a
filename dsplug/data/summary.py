"""Data summaries: counts per class and partition, durations, skipped files, as recorded in ``data.json``."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dsplug.data.manifest import PARTITIONS, Item, Manifest
from dsplug.task import Task

logger = logging.getLogger(__name__)


def durations(items: Sequence[Item]) -> np.ndarray:
    """Durations in seconds read from file headers (NaN where a header cannot be read)."""
    import soundfile

    def one(item: Item) -> float:
        try:
            return float(soundfile.info(str(item.path)).duration)
        except Exception:  # unreadable headers are reported when the audio is decoded
            return float("nan")

    with ThreadPoolExecutor(max_workers=4) as pool:
        return np.array(list(pool.map(one, items)), dtype=np.float64)


def summarize(manifest: Manifest) -> dict[str, Any]:
    """Counts per class and partition, and durations.

    Returns
    -------
    dict
        ``{"manifest", "task", "split_from", "classes", "partitions": {name: {"files",
        "seconds", "counts": {class: n}}}, "files", "seconds"}``.
    """
    secs = durations(manifest.items)
    by_item = {id(item): s for item, s in zip(manifest.items, secs)}
    partitions: dict[str, Any] = {}
    for name in PARTITIONS:
        items = manifest.partition(name)
        if not items:
            continue
        counts = Counter(lab for item in items for lab in manifest.task.labels_of(item.label))
        partitions[name] = {
            "files": len(items),
            "seconds": float(np.nansum([by_item[id(i)] for i in items])),
            "groups": len({i.group for i in items if i.group}),
            "counts": {c: counts[c] for c in manifest.classes} if manifest.classes else {},
        }
    return {
        "manifest": str(manifest.source),
        "task": manifest.task,
        "split_from": manifest.split_from,
        "classes": manifest.classes,
        "partitions": partitions,
        "files": len(manifest.items),
        "seconds": float(np.nansum(secs)),
        "warnings": list(manifest.warnings),
        "skipped": [],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of :func:`summarize`'s result."""
    parts = [p for p in PARTITIONS if p in summary["partitions"]]
    lines = [
        f"manifest: {summary['manifest']}",
        f"task: {summary['task']}; partitions from: {summary['split_from']}; "
        f"{summary['files']} files, {summary['seconds'] / 60:.1f} min in all",
    ]
    if summary["classes"]:
        width = max(len(c) for c in summary["classes"] + ["class"])
        lines.append(f"{'class':<{width}}  " + "  ".join(f"{p:>7}" for p in parts))
        for name in summary["classes"]:
            cells = "  ".join(f"{summary['partitions'][p]['counts'][name]:>7}" for p in parts)
            lines.append(f"{name:<{width}}  {cells}")
    files = "  ".join(f"{summary['partitions'][p]['files']:>7}" for p in parts)
    minutes = "  ".join(f"{summary['partitions'][p]['seconds'] / 60:>7.1f}" for p in parts)
    width = max([len(c) for c in summary["classes"]] + [7])
    lines.append(f"{'files':<{width}}  {files}")
    lines.append(f"{'minutes':<{width}}  {minutes}")
    if summary.get("skipped"):
        skipped = "  ".join(f"{summary['partitions'][p].get('skipped', 0):>7}" for p in parts)
        lines.append(f"{'skipped':<{width}}  {skipped}   (undecodable files, see skipped_files.csv)")
    if summary.get("storage"):
        lines.append(f"chunks: {summary['storage']['reason']}")
    lines += [f"warning: {message}" for message in summary.get("warnings", [])]
    return "\n".join(lines)


def with_skipped(summary: dict[str, Any], skipped: Sequence[tuple[Item, str]]) -> dict[str, Any]:
    """The data summary with the skipped files recorded and subtracted from the counts.

    Parameters
    ----------
    summary : dict
        From :func:`summarize`.
    skipped : sequence of (Item, reason)
        Files that could not be decoded and were skipped.
    """
    result = {**summary, "skipped": [{"path": str(item.path), "line": item.row, "partition": item.partition, "reason": reason} for item, reason in skipped]}
    partitions = {name: {**part, "counts": dict(part["counts"])} for name, part in summary["partitions"].items()}
    for item, _ in skipped:
        part = partitions[item.partition]
        part["files"] -= 1
        part["skipped"] = part.get("skipped", 0) + 1
        for label in Task(summary["task"]).labels_of(item.label) if summary["classes"] else []:
            part["counts"][label] -= 1
    result["partitions"] = partitions
    result["files"] = summary["files"] - len(skipped)
    return result
