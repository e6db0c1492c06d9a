"""Predictions as files and text: the predictions CSV, JSON, the per-file table and the summary.

The predictions CSV is the one format of :func:`dsplug.artifacts.predictions_csv` (also written
by evaluation): ``file, level, start, end, label, predicted`` and one column per output; the true
class (``label``) is not known here, so it is empty, and ``predicted`` is the model's decision.
With ``top_k`` it ends with ``top1, top1_prob, ..., topK, topK_prob``.

The text functions return lines for ``dsplug predict`` to print: a table with one row per file
(:func:`format_predictions`; one line for one file), the files per predicted class (:func:`format_class_counts`), the
skipped files (:func:`format_skipped`) and one closing line (:func:`format_batch_summary`).
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsplug.artifacts import predictions_csv, write_atomic
from dsplug.errors import DataError
from dsplug.runtime.batch import BatchPrediction, SkippedFile
from dsplug.runtime.predict import FilePrediction
from dsplug.task import Task

__all__ = [
    "check_top_k",
    "format_batch_summary",
    "format_class_counts",
    "format_skipped",
    "format_predictions",
    "predictions_json",
    "top_labels",
    "write_predictions_csv",
]

#: Longest file name shown in a table; longer ones keep their end ("…/speaker3/clip_0001.wav").
MAX_NAME = 60
#: Undecodable files listed one per line before the rest are counted.
MAX_SKIPPED_LINES = 20


def check_top_k(top_k: int, *, task: Task) -> None:
    """Refuse a ``top_k`` that is not a positive whole number, or any for a regression model.

    Raises
    ------
    DataError
        The value and what to pass instead.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise DataError(f"top_k must be a whole number >= 1, got {top_k!r}; e.g. --top-k 3")
    if not Task(task).has_classes:
        raise DataError(f"top_k={top_k} needs class probabilities; this model is a regression model: leave --top-k out")


def top_labels(prediction: FilePrediction, *, k: int) -> list[tuple[str, float]]:
    """The ``k`` classes with the highest file-level outputs, highest first.

    Parameters
    ----------
    prediction : FilePrediction
        Of a classification or multi-label model.
    k : int
        How many (>= 1); all classes when the model has fewer.

    Returns
    -------
    list of (str, float)
        Class and probability; ties keep the model's class order.

    Raises
    ------
    DataError
        ``k`` is not a positive whole number, or the model is a regression model.
    """
    check_top_k(k, task=prediction.task)
    return _top(prediction.probabilities, classes=prediction.classes, k=k)


def _top(outputs: np.ndarray, *, classes: Sequence[str], k: int) -> list[tuple[str, float]]:
    order = np.argsort(-np.asarray(outputs, dtype=np.float64), kind="stable")[:k]
    return [(classes[i], float(outputs[i])) for i in order]


def write_predictions_csv(path: str | os.PathLike[str], predictions: Sequence[FilePrediction], *, top_k: int = 0) -> Path:
    """Write chunk and file rows to a CSV file (atomically: nothing is left half-written).

    The format is :func:`dsplug.artifacts.predictions_csv`: columns ``file, level, start, end,
    label, predicted`` and one column per output (``prob_<class>``; ``value`` for regression).
    ``label`` (the true class) is empty, ``predicted`` holds the decision. For each file, its
    chunk rows (``level=chunk``) come first, then one ``level=file`` row spanning the whole
    file. Times are in seconds.

    Parameters
    ----------
    path : path
        The CSV file (its folder is created).
    predictions : sequence of FilePrediction
    top_k : int
        With ``k > 0``, columns ``top1, top1_prob, ..., topk, topk_prob`` end each row: the
        classes with the highest outputs of the row (chunk or file), highest first.

    Raises
    ------
    DataError
        ``predictions`` is empty or mixes models with different outputs; ``top_k`` on a
        regression model.
    """
    columns = _shared_columns(predictions)
    if top_k:
        check_top_k(top_k, task=predictions[0].task)
    k = min(top_k, len(columns))
    extra = [name for i in range(1, k + 1) for name in (f"top{i}", f"top{i}_prob")]
    rows = [row for p in predictions for row in _csv_rows(p, k=k)]
    return write_atomic(path, predictions_csv(rows, columns=columns, extra=extra))


def _csv_rows(p: FilePrediction, *, k: int) -> list[dict[str, Any]]:
    """Rows of :func:`dsplug.artifacts.predictions_csv` for one file: its chunks, then the whole file."""
    def top(outputs: np.ndarray) -> list[Any]:
        return [cell for label, value in _top(outputs, classes=p.classes, k=k) for cell in (label, value)]

    rows: list[dict[str, Any]] = [
        {"file": p.file, "level": "chunk", "start": float(s), "end": float(e), "predicted": lab, "outputs": row, "extra": top(row)}
        for s, e, lab, row in zip(p.starts, p.ends, p.chunk_labels, p.chunk_probabilities)
    ]
    rows.append({
        "file": p.file, "level": "file", "start": 0.0, "end": float(p.duration),
        "predicted": p.label, "outputs": p.probabilities, "extra": top(p.probabilities),
    })
    return rows


def _shared_columns(predictions: Sequence[FilePrediction]) -> list[str]:
    if not predictions:
        raise DataError("no predictions to write")
    columns = {tuple(p.columns) for p in predictions}
    if len(columns) != 1:
        raise DataError("predictions come from models with different outputs; write them to separate files")
    return list(columns.pop())


def predictions_json(predictions: Sequence[FilePrediction], *, top_k: int = 0, skipped: Sequence[SkippedFile] = ()) -> str:
    """Predictions as JSON text: ``{"task", "classes", "files": [FilePrediction.as_dict(), ...]}``.

    With ``top_k > 0`` each file has ``"top": [{"label", "probability"}, ...]``; with skipped
    files the document has ``"skipped": [{"file", "reason", "message"}, ...]``.

    Raises
    ------
    DataError
        ``predictions`` is empty or mixes models with different outputs; ``top_k`` on a
        regression model.
    """
    _shared_columns(predictions)
    first = predictions[0]
    files = [p.as_dict() for p in predictions]
    if top_k:
        for entry, p in zip(files, predictions):
            entry["top"] = [{"label": label, "probability": value} for label, value in top_labels(p, k=top_k)]
    document: dict[str, Any] = {"task": first.task, "classes": list(first.classes), "files": files}
    if skipped:
        document["skipped"] = [{"file": s.file, "reason": s.reason, "message": s.message} for s in skipped]
    return json.dumps(document, indent=2)


def format_predictions(predictions: Sequence[FilePrediction], *, top_k: int = 1, max_rows: int | None = None) -> list[str]:
    """The decision per file and its confidence, or the ``top_k`` classes: a table, or one line for one file.

    Columns: ``file``, then for a classifier ``predicted, confidence`` (``top_k`` 1) or
    ``top 1, p1, ..., top k, pk``; for a multi-label model ``predicted`` (the classes above 0.5,
    ``(none)`` if none) and the top classes; for regression ``predicted`` (the values). One file
    is one line instead: ``clip.wav: T3 0.712`` (``clip.wav: T3 0.712, T2 0.101`` with
    ``top_k`` 2; ``clip.wav: a;b (a 0.900, b 0.600)`` for a multi-label model).

    Parameters
    ----------
    predictions : sequence of FilePrediction
    top_k : int
        Classes per file (>= 1; capped at the number of classes).
    max_rows : int, optional
        Show the first ``max_rows`` files and count the others in a last line.

    Returns
    -------
    list of str
        The header, a rule, the rows (and the line counting the rows left out).
    """
    if not predictions:
        return []
    first = predictions[0]
    k = 0
    if first.task.has_classes:
        check_top_k(top_k, task=first.task)
        k = min(top_k, len(first.classes))
    if len(predictions) == 1:
        return [_line(first, k=k)]
    decision = not first.task.exclusive  # the decision differs from the top class
    headers = ["file", *(["predicted"] if decision else [])]
    headers += ["predicted", "confidence"] if first.task.exclusive and k == 1 else [
        h for i in range(1, k + 1) for h in (f"top {i}", f"p{i}")
    ]
    shown = predictions[:max_rows] if max_rows is not None else predictions
    rows = [
        [_short(p.file), *([p.label or "(none)"] if decision else []),
         *(cell for label, value in _top(p.probabilities, classes=p.classes, k=k) for cell in (label, f"{value:.3f}"))]
        for p in shown
    ]
    lines = _align(headers, rows)
    if len(shown) < len(predictions):
        lines.append(f"... and {len(predictions) - len(shown)} more files")
    return lines


def _line(p: FilePrediction, *, k: int) -> str:
    top = ", ".join(f"{label} {value:.3f}" for label, value in _top(p.probabilities, classes=p.classes, k=k))
    if p.task.exclusive:
        return f"{p.file}: {top}"
    return f"{p.file}: {p.label or '(none)'}" + (f" ({top})" if top else "")


def format_class_counts(predictions: Sequence[FilePrediction]) -> list[str]:
    """Files per predicted class, in the model's class order (no lines for regression).

    A multi-label file counts once for each class it was tagged with, ``(none)`` if none.
    """
    if not predictions or not predictions[0].task.has_classes:
        return []
    first = predictions[0]
    counts: collections.Counter[str] = collections.Counter()
    for p in predictions:
        labels = first.task.labels_of(p.label) if p.label else []
        counts.update(labels or ["(none)"])
    names = [*first.classes, *(["(none)"] if counts["(none)"] else [])]
    total = len(predictions)
    rows = [[name, str(counts[name]), f"{100 * counts[name] / total:.1f} %"] for name in names]
    return _align(["class", "files", "share"], rows, right={1, 2})


def format_skipped(skipped: Sequence[SkippedFile]) -> list[str]:
    """A line per undecodable file (the first :data:`MAX_SKIPPED_LINES`), one for the others.

    Files skipped for their extension are named together in one line.
    """
    undecodable = [s for s in skipped if s.reason == "undecodable"]
    lines = [f"skipped: {s.message}" for s in undecodable[:MAX_SKIPPED_LINES]]
    if len(undecodable) > MAX_SKIPPED_LINES:
        lines.append(f"skipped {len(undecodable) - MAX_SKIPPED_LINES} more undecodable files (--json lists them all)")
    others = [s.file for s in skipped if s.reason == "extension"]
    if others:
        suffixes = sorted({Path(name).suffix.lower() or "no extension" for name in others})
        names = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        lines.append(
            f"skipped {len(others)} file{'s' * (len(others) != 1)} of a folder whose extension is not an audio "
            f"format ({', '.join(suffixes)}): {names}; name a file to predict it anyway"
        )
    return lines


def format_batch_summary(batch: BatchPrediction) -> str:
    """One line: files predicted, time, speed, and what was skipped (e.g. ``"predicted 622 files in
    4.1 s (152.0 files/s, 2 jobs); skipped 2: 1 undecodable, 1 not audio"``)."""
    n = len(batch.predictions)
    line = (
        f"predicted {n} file{'s' * (n != 1)} in {batch.seconds:.1f} s ({batch.files_per_second:.1f} files/s, "
        f"{batch.jobs} job{'s' * (batch.jobs != 1)})"
    )
    if batch.skipped:
        kinds = collections.Counter(s.reason for s in batch.skipped)
        parts = [f"{kinds[reason]} {words}" for reason, words in (("undecodable", "undecodable"), ("extension", "not audio")) if kinds[reason]]
        line += f"; skipped {len(batch.skipped)}: {', '.join(parts)}"
    return line


def _short(name: str) -> str:
    return name if len(name) <= MAX_NAME else "…" + name[-(MAX_NAME - 1):]


def _align(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int] | None = None) -> list[str]:
    """Columns padded to their widest cell; numbers (cells that parse as floats) right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    numeric = right if right is not None else {
        i for i in range(len(headers)) if rows and all(_is_number(row[i]) for row in rows)
    }

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width) for i, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
