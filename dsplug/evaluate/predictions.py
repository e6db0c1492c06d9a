"""From chunk outputs to file decisions: aggregation, the model-selection score and the predictions CSV."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from dsplug.artifacts import predictions_csv, write_atomic
from dsplug.errors import DataError
from dsplug.evaluate.checks import check_class_indices, check_labels, check_scores, check_values
from dsplug.task import Task

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

def _uar(targets: np.ndarray, outputs: np.ndarray) -> float:
    from sklearn.metrics import recall_score

    return float(recall_score(targets, outputs.argmax(axis=1), average="macro", labels=np.unique(targets), zero_division=0))


def _macro_ap(targets: np.ndarray, outputs: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    keep = targets.sum(axis=0) > 0
    return float(average_precision_score(targets[:, keep], outputs[:, keep], average="macro"))


def _neg_mse(targets: np.ndarray, outputs: np.ndarray) -> float:
    return -float(np.mean((outputs.reshape(-1) - targets.reshape(-1)) ** 2))


#: The file-level score of each :attr:`dsplug.task.Task.selection_metric` (higher is better).
SELECTION_SCORES = {"uar": _uar, "map": _macro_ap, "neg_mse": _neg_mse}


def selection_score(task: Task, split: Any, chunk_outputs: np.ndarray) -> float:
    """Model-selection score on files: the task's :attr:`~dsplug.task.Task.selection_metric`
    (UAR, macro mAP or minus the MSE) of the files' mean chunk outputs.

    Parameters
    ----------
    task : Task
        The model's task.
    split : dsplug.data.LabelledChunks
        The chunks' ``file_index`` and the ``file_targets``.
    chunk_outputs : np.ndarray [shape=(n_chunks, k)]
        Model outputs per chunk; averaged per file.
    """
    ids = [str(i) for i in split.file_index]
    order, outputs = aggregate_chunks(file_ids=ids, probs=chunk_outputs, method="mean")
    outputs = outputs[np.argsort([int(i) for i in order])]
    return SELECTION_SCORES[Task(task).selection_metric](split.file_targets, outputs)


def aggregate_chunks(
    *,
    file_ids: Sequence[str],
    probs: np.ndarray,
    method: Literal["mean", "vote"] = "mean",
) -> tuple[list[str], np.ndarray]:
    """Combine chunk-level probabilities into one row per file.

    Parameters
    ----------
    file_ids : sequence of str [length n_chunks]
        The file each chunk comes from. Chunks of a file need not be contiguous.
    probs : np.ndarray [shape=(n_chunks, k), dtype=float]
        Class probabilities of each chunk.
    method : {"mean", "vote"}
        ``mean``: average of the chunks' probabilities. ``vote``: fraction of the file's chunks
        whose arg-max is each class (rows sum to 1; the arg-max of a row is the majority class,
        ties going to the lowest class index).

    Returns
    -------
    files : list of str [length n_files]
        Unique file ids in the order of their first chunk.
    file_probs : np.ndarray [shape=(n_files, k), dtype=float64]
        One row per entry of ``files``.

    Raises
    ------
    DataError
        If the inputs are empty, of different lengths, or ``method`` is unknown.

    Examples
    --------
    >>> files, p = aggregate_chunks(file_ids=["b", "a", "b"],
    ...                             probs=np.array([[0.2, 0.8], [0.6, 0.4], [0.4, 0.6]]))
    >>> files, p.round(2).tolist()
    (['b', 'a'], [[0.3, 0.7], [0.6, 0.4]])
    """
    if method not in ("mean", "vote"):
        raise DataError(f"method must be 'mean' or 'vote', got {method!r}")
    if isinstance(file_ids, str):
        raise DataError(
            f"file_ids must be a sequence (one id per chunk), got the string {file_ids!r}"
        )
    ids = [str(file_id) for file_id in file_ids]
    if not ids:
        raise DataError("file_ids is empty; there are no chunks to aggregate")
    scores = np.asarray(probs)
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise DataError(f"probs must be 2-D (chunks, classes >= 1), got shape {scores.shape}")
    scores = check_scores(scores, name="probs", n_rows=len(ids), n_classes=scores.shape[1])

    unique, first, inverse = np.unique(np.asarray(ids), return_index=True, return_inverse=True)
    order = np.argsort(first)  # unique ids sorted by first occurrence
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    file_index = rank[inverse.ravel()]

    if method == "vote":
        scores = np.eye(scores.shape[1])[scores.argmax(axis=1)]
    sums = np.zeros((order.size, scores.shape[1]))
    np.add.at(sums, file_index, scores)
    counts = np.bincount(file_index, minlength=order.size)
    return [str(name) for name in unique[order]], sums / counts[:, None]


# --------------------------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------------------------


def write_predictions_csv(
    path: PathLike,
    *,
    file_ids: Sequence[str],
    probs: np.ndarray,
    labels: Sequence[str],
    y_true: np.ndarray | None = None,
    starts: Sequence[float] | np.ndarray | None = None,
    ends: Sequence[float] | np.ndarray | None = None,
    task: Task = Task.CLASSIFICATION,
) -> None:
    """Write one CSV row per prediction (``predictions.csv``), atomically.

    The format is :func:`dsplug.artifacts.predictions_csv`, shared with ``dsplug predict``:
    columns ``file, level, start, end, label, predicted, prob_<class>...`` (one ``prob_``
    column per class, in label order). ``level`` is ``chunk`` when chunk times are given and
    ``file`` otherwise; ``start``/``end`` are empty for file-level rows; ``label`` is the true
    class, empty when the truth is unknown; ``predicted`` is the task's decision
    (:meth:`dsplug.task.Task.decide`: the arg-max class, or the classes above the threshold).

    Parameters
    ----------
    path : str or os.PathLike
        Output file; parent folders are created.
    file_ids : sequence of str [length n]
        The file of each row.
    probs : np.ndarray [shape=(n, k), dtype=float]
        Class probabilities of each row.
    labels : sequence of str [length k]
        Class names.
    y_true : np.ndarray [shape=(n,), dtype=int], optional
        True class index of each row.
    starts, ends : array-like [shape=(n,), seconds], optional
        Start and end time of each chunk in its file.
    task : Task
        Classification (``y_true`` class indices) or multilabel (no ``y_true``).

    Raises
    ------
    DataError
        On mismatched lengths, wrong number of columns or bad labels.
    """
    names = check_labels(labels)
    if isinstance(file_ids, str):
        raise DataError(
            f"file_ids must be a sequence (one id per row), got the string {file_ids!r}"
        )
    ids = [str(file_id) for file_id in file_ids]
    values = check_scores(probs, name="probs", n_rows=len(ids), n_classes=len(names))
    truth = None if y_true is None else check_class_indices(
        y_true, name="y_true", n_classes=len(names)
    )
    if truth is not None and truth.size != len(ids):
        raise DataError(f"y_true has {truth.size} values but there are {len(ids)} rows")
    times = {}
    for name, column in (("starts", starts), ("ends", ends)):
        if column is not None:
            times[name] = check_values(column, name=name, n=len(ids))
    level = "chunk" if times else "file"
    rows = [
        {
            "file": file_id,
            "level": level,
            "start": float(times["starts"][i]) if "starts" in times else None,
            "end": float(times["ends"][i]) if "ends" in times else None,
            "label": names[truth[i]] if truth is not None else None,
            "predicted": task.decide(values[i], classes=names),
            "outputs": values[i],
        }
        for i, file_id in enumerate(ids)
    ]
    columns = task.output_columns(names, k=len(names))
    out = write_atomic(path, predictions_csv(rows, columns=columns))
    logger.debug("wrote %d predictions to %s", len(ids), out)
