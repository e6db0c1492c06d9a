"""Evaluation: metrics, bootstrap confidence intervals, chunk-to-file aggregation, selection score.

Plain functions over NumPy arrays; no TensorFlow. Every metric dictionary this module returns is
ready for JSON: numbers are Python ``int``/``float``, arrays are nested lists, and a value that is
undefined for the data (e.g. the recall of a class with no samples) is ``None``.
``dsplug.artifacts.RunDir.write_metrics`` writes them to ``metrics.json``; their figures
(confusion matrix, training curves) are drawn by :mod:`dsplug.report.figures`.

Conventions
-----------
- Classes are integer indices ``0 .. k-1`` into a list of ``k`` class names (``labels``).
- ``probs`` are per-class probabilities (or any scores: only their arg-max is used for the
  decision), shape ``(n, k)``.
- **UAR** (unweighted average recall) is the mean recall over the classes that occur in ``y_true``
  — the semantics of :func:`sklearn.metrics.balanced_accuracy_score`. A class with no true
  samples has no recall; it is left out of the mean instead of counting as 0 (which would make the
  score depend on classes absent from the partition). ``f1_macro`` averages over the same classes.
- Confidence intervals are percentile bootstrap intervals over samples (files or chunks, whatever
  the rows are), seeded, as in the DeepSpectrumLite paper (1000 resamples, 95 %).

Examples
--------
>>> import numpy as np
>>> from dsplug import evaluate
>>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
>>> m = evaluate.evaluate_partition(y_true=np.array([0, 1, 1]), probs=probs,
...                                 labels=["no", "yes"], level="file", n_resamples=200)
>>> m["uar"], m["confusion"]
(0.75, [[1, 0], [1, 1]])
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from dsplug.artifacts import decide, output_columns, predictions_csv, write_atomic
from dsplug.errors import DataError

__all__ = [
    "aggregate_chunks",
    "bootstrap_ci",
    "check_confusion",
    "classification_metrics",
    "evaluate_partition",
    "multilabel_metrics",
    "paired_uar_difference",
    "regression_metrics",
    "write_predictions_csv",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: Upper bound on the number of resampled values held in memory at once by :func:`bootstrap_ci`.
_BOOTSTRAP_CHUNK_ELEMENTS = 1_000_000


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_labels(labels: Sequence[str]) -> list[str]:
    """Return ``labels`` as a list of unique, non-empty strings, or raise :class:`DataError`."""
    if isinstance(labels, str):
        raise DataError(f"labels must be a sequence of class names, got the string {labels!r}")
    names = list(labels)
    if not names:
        raise DataError("labels is empty; pass the class names in class-index order")
    if not all(isinstance(name, str) and name for name in names):
        raise DataError(f"labels must be non-empty strings, got {names!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(f"labels contains duplicates {duplicates}; each class needs a unique name")
    return names


def _check_class_indices(y: Any, *, name: str, n_classes: int) -> np.ndarray:
    """Return ``y`` as a 1-D ``int64`` array of class indices in ``[0, n_classes)``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D (one class index per sample), got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty; evaluation needs at least one sample")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(
            f"{name} must hold integer class indices, got dtype {arr.dtype}; map class names to "
            "indices into labels first"
        )
    bad = arr[(arr < 0) | (arr >= n_classes)]
    if bad.size:
        raise DataError(
            f"{name} holds class index {int(bad[0])} outside [0, {n_classes}); "
            f"there are {n_classes} labels"
        )
    return arr.astype(np.int64)


def _check_scores(scores: Any, *, name: str, n_rows: int | None, n_classes: int) -> np.ndarray:
    """Return ``scores`` as a finite ``float64`` array of shape ``(n_rows, n_classes)``."""
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise DataError(f"{name} must be 2-D (samples, classes), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name} is empty; evaluation needs at least one sample")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise DataError(
            f"{name} has {arr.shape[0]} rows but there are {n_rows} samples; "
            "pass one row per sample"
        )
    if arr.shape[1] != n_classes:
        raise DataError(
            f"{name} has {arr.shape[1]} columns but there are {n_classes} labels; pass one column "
            "per class, in the order of labels"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values; check the model outputs")
    return arr


def _check_values(y: Any, *, name: str, n: int | None = None) -> np.ndarray:
    """Return ``y`` as a finite 1-D ``float64`` array (of length ``n`` if given)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D (one value per sample), got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty; evaluation needs at least one sample")
    if n is not None and arr.size != n:
        raise DataError(
            f"{name} has {arr.size} values but there are {n} samples; pass one per sample"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values")
    return arr


def check_confusion(confusion: Any, labels: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Validate a confusion matrix against its class names.

    Parameters
    ----------
    confusion : array-like [shape=(k, k), dtype=int]
        Counts, rows = true class, columns = predicted class (``metrics["confusion"]``).
    labels : sequence of str [length k]
        Class names.

    Returns
    -------
    counts : np.ndarray [shape=(k, k), dtype=int]
    names : list of str [length k]

    Raises
    ------
    DataError
        If ``confusion`` is not a square matrix of non-negative counts matching ``labels``, or
        the labels are not unique non-empty strings.
    """
    names = _check_labels(labels)
    k = len(names)
    counts = np.asarray(confusion)
    if counts.shape != (k, k):
        raise DataError(f"confusion must have shape ({k}, {k}) for {k} labels, got {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
        raise DataError("confusion must hold non-negative integer counts")
    return counts, names


def _number(value: float) -> float | None:
    """Return ``value`` as a Python float, or ``None`` when it is NaN or infinite."""
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# row-wise (vectorised) metrics used for the bootstrap
# --------------------------------------------------------------------------------------------


def _uar_rows(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int) -> np.ndarray:
    """UAR of each row: shape ``(b, n)`` int class indices -> ``(b,)`` float.

    Mean recall over the classes present in the row's ``y_true`` (balanced accuracy).
    """
    rows, n = y_true.shape
    offset = (np.arange(rows) * n_classes)[:, None]
    keys = (offset + y_true).ravel()
    support = np.bincount(keys, minlength=rows * n_classes).reshape(rows, n_classes)
    hits = np.bincount(
        keys, weights=(y_true == y_pred).ravel().astype(np.float64), minlength=rows * n_classes
    ).reshape(rows, n_classes)
    present = support > 0
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=present)
    return recall.sum(axis=1) / present.sum(axis=1)


def _accuracy_rows(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Accuracy of each row: shape ``(b, n)`` -> ``(b,)``."""
    return np.mean(y_true == y_pred, axis=-1)


def _ccc_rows(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Lin's concordance correlation coefficient of each row: ``(b, n)`` float -> ``(b,)``.

    ``2 cov(t, p) / (var(t) + var(p) + (mean(t) - mean(p))**2)`` with population (1/n) moments;
    NaN where the denominator is 0 (both constant and equal).
    """
    mean_t = y_true.mean(axis=-1)
    mean_p = y_pred.mean(axis=-1)
    cov = np.mean((y_true - mean_t[..., None]) * (y_pred - mean_p[..., None]), axis=-1)
    denom = y_true.var(axis=-1) + y_pred.var(axis=-1) + (mean_t - mean_p) ** 2
    out = np.full(denom.shape, np.nan)
    np.divide(2.0 * cov, denom, out=out, where=denom > 0)
    return out


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------


def bootstrap_ci(
    *,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], Any],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a paired metric.

    Draws ``n_resamples`` samples of size ``n`` with replacement from the ``n`` (truth,
    prediction) pairs, computes the metric on each, and returns the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles (linear interpolation) of those values. This is
    ``scipy.stats.bootstrap(..., paired=True, method="percentile")`` with the resamples drawn in
    memory-bounded batches and with undefined resamples (metric NaN) left out.

    Parameters
    ----------
    y_true, y_pred : np.ndarray [shape=(n,) or (n, ...)]
        Paired truth and prediction; rows are resampled together. Any dtype the metric accepts.
    metric : callable
        ``metric(y_true, y_pred) -> float`` on one resample (same trailing shape as the input).
        A resample may miss whole classes; sklearn's warnings about that are silenced. With
        ``vectorized=True`` the metric instead takes arrays of shape ``(b, n, ...)`` (``b``
        resamples at once) and returns shape ``(b,)``.
    n_resamples : int
        Number of bootstrap resamples (the paper uses 1000).
    confidence : float
        Confidence level in (0, 1).
    seed : int
        Seed of the :class:`numpy.random.Generator` that draws the resamples. The same seed and
        inputs give the same interval.
    vectorized : bool
        Whether ``metric`` handles a batch of resamples (much faster; see ``metric``).

    Returns
    -------
    (low, high) : tuple of float
        Interval bounds; ``(nan, nan)`` if the metric is undefined on every resample.

    Raises
    ------
    DataError
        If the inputs are empty or of different lengths, or ``n_resamples``/``confidence`` are
        out of range.

    Examples
    --------
    >>> from sklearn.metrics import balanced_accuracy_score
    >>> bootstrap_ci(y_true=np.array([0, 0, 1, 1]), y_pred=np.array([0, 1, 1, 1]),
    ...              metric=balanced_accuracy_score, n_resamples=100)  # doctest: +SKIP
    (0.5, 1.0)
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim == 0 or y_pred.ndim == 0:
        raise DataError("y_true and y_pred must be arrays with one row per sample, got scalars")
    n = len(y_true)
    if n == 0:
        raise DataError("y_true is empty; a bootstrap needs at least one sample")
    if len(y_pred) != n:
        raise DataError(
            f"y_pred has {len(y_pred)} rows but y_true has {n}; pass one prediction per sample"
        )
    if not isinstance(n_resamples, int | np.integer) or n_resamples < 1:
        raise DataError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise DataError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")

    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples, dtype=np.float64)
    rows_per_batch = max(1, min(n_resamples, _BOOTSTRAP_CHUNK_ELEMENTS // n))
    with warnings.catch_warnings():
        # Resamples routinely miss a class; sklearn metrics warn about that on every call.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found in 'y_true'")
        for start in range(0, n_resamples, rows_per_batch):
            stop = min(start + rows_per_batch, n_resamples)
            index = rng.integers(0, n, size=(stop - start, n))
            if vectorized:
                batch = np.asarray(metric(y_true[index], y_pred[index]), dtype=np.float64)
                if batch.shape != (stop - start,):
                    raise DataError(
                        f"a vectorized metric must return one value per resample, shape "
                        f"({stop - start},), got {batch.shape}; or pass vectorized=False"
                    )
                values[start:stop] = batch
            else:
                for row, sample in enumerate(index, start=start):
                    values[row] = float(metric(y_true[sample], y_pred[sample]))

    defined = values[np.isfinite(values)]
    if defined.size < n_resamples:
        logger.warning(
            "metric undefined on %d of %d bootstrap resamples; they are left out of the interval",
            n_resamples - defined.size,
            n_resamples,
        )
    if defined.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(defined, [alpha, 1.0 - alpha])
    return float(low), float(high)


# --------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------


def classification_metrics(
    *, y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Single-label classification metrics from true classes and predicted probabilities.

    The prediction of a sample is the arg-max of its row of ``probs`` (ties: lowest index).

    Parameters
    ----------
    y_true : np.ndarray [shape=(n,), dtype=int]
        True class index of each sample, in ``[0, k)``.
    probs : np.ndarray [shape=(n, k), dtype=float]
        Class probabilities (or scores) of each sample, columns in the order of ``labels``.
    labels : sequence of str [length k]
        Class names; ``labels[i]`` is class ``i``.

    Returns
    -------
    dict
        ``uar`` (float; mean recall over the classes present in ``y_true``, equal to
        :func:`sklearn.metrics.balanced_accuracy_score`), ``accuracy`` (float), ``f1_macro``
        (float; mean F1 over the classes present in ``y_true``, F1 = 0 where precision is
        undefined), ``recall_per_class`` (dict name -> float, ``None`` for a class absent from
        ``y_true``), ``confusion`` (``k x k`` list of int, rows = true, columns = predicted, all
        ``k`` classes in label order), ``labels`` (list of str), ``n`` (int).

    Raises
    ------
    DataError
        On empty input, mismatched lengths, a wrong number of columns, class indices out of
        range, non-finite probabilities or bad labels.
    """
    names = _check_labels(labels)
    k = len(names)
    truth = _check_class_indices(y_true, name="y_true", n_classes=k)
    scores = _check_scores(probs, name="probs", n_rows=truth.size, n_classes=k)
    pred = scores.argmax(axis=1)

    confusion = skm.confusion_matrix(truth, pred, labels=np.arange(k))
    support = confusion.sum(axis=1)
    present = np.flatnonzero(support > 0)
    recall = skm.recall_score(
        truth, pred, labels=np.arange(k), average=None, zero_division=0.0
    )
    f1_macro = skm.f1_score(truth, pred, labels=present, average="macro", zero_division=0.0)
    return {
        "uar": float(np.mean(recall[present])),
        "accuracy": float(skm.accuracy_score(truth, pred)),
        "f1_macro": float(f1_macro),
        "recall_per_class": {
            name: (float(recall[i]) if support[i] > 0 else None) for i, name in enumerate(names)
        },
        "confusion": confusion.astype(int).tolist(),
        "labels": names,
        "n": int(truth.size),
    }


def evaluate_partition(
    *,
    y_true: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    level: Literal["file", "chunk"],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of one partition with bootstrap confidence intervals, in the ``metrics.json`` format.

    Parameters
    ----------
    y_true : np.ndarray [shape=(n,), dtype=int]
        True class index of each file (or chunk), in ``[0, k)``.
    probs : np.ndarray [shape=(n, k), dtype=float]
        Class probabilities of each file (or chunk); see :func:`aggregate_chunks` for files.
    labels : sequence of str [length k]
        Class names in class-index order.
    level : {"file", "chunk"}
        What the rows are; recorded in the result.
    n_resamples, confidence, seed
        Bootstrap settings, see :func:`bootstrap_ci`.

    Returns
    -------
    dict
        The keys of :func:`classification_metrics` plus ``uar_ci95`` and ``accuracy_ci95``
        (``[low, high]``), ``level`` and ``bootstrap`` (``{"n_resamples", "confidence",
        "seed"}``). The interval keys keep their ``_ci95`` names whatever ``confidence`` is, so
        the format stays fixed; ``bootstrap.confidence`` holds the actual level.

    Raises
    ------
    DataError
        On invalid inputs (see :func:`classification_metrics`) or an unknown ``level``.
    """
    if level not in ("file", "chunk"):
        raise DataError(f"level must be 'file' or 'chunk', got {level!r}")
    result = classification_metrics(y_true=y_true, probs=probs, labels=labels)
    k = len(result["labels"])
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(probs, dtype=np.float64).argmax(axis=1)

    def uar_rows(t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return _uar_rows(t, p, n_classes=k)

    uar_ci, acc_ci = (
        bootstrap_ci(
            y_true=truth,
            y_pred=pred,
            metric=metric,
            vectorized=True,
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
        )
        for metric in (uar_rows, _accuracy_rows)
    )
    return {
        "uar": result["uar"],
        "uar_ci95": [_number(uar_ci[0]), _number(uar_ci[1])],
        "accuracy": result["accuracy"],
        "accuracy_ci95": [_number(acc_ci[0]), _number(acc_ci[1])],
        "f1_macro": result["f1_macro"],
        "n": result["n"],
        "level": level,
        "confusion": result["confusion"],
        "labels": result["labels"],
        "recall_per_class": result["recall_per_class"],
        "bootstrap": {"n_resamples": int(n_resamples), "confidence": float(confidence),
                      "seed": int(seed)},
    }


def paired_uar_difference(
    *,
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    n_classes: int,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """UAR of ``pred_b`` minus UAR of ``pred_a`` on the same samples, with a paired bootstrap CI.

    Both predictions are resampled together (the same rows in each resample), so the interval
    reflects only where the two disagree, not how hard the samples are: e.g. whether a
    quantised model's UAR differs from its float model's beyond what a few near-tie flips give.

    Parameters
    ----------
    y_true, pred_a, pred_b : np.ndarray [shape=(n,), dtype=int]
        True class and the two predicted classes of each sample, in ``[0, n_classes)``.
    n_classes : int
        Number of classes.
    n_resamples, confidence, seed
        Bootstrap settings, see :func:`bootstrap_ci`.

    Returns
    -------
    dict
        ``difference`` (float, in UAR units: 0.02 is 2 points) and ``ci95`` (``[low, high]``).

    Raises
    ------
    DataError
        Class indices out of range or arrays of different lengths.
    """
    truth = _check_class_indices(y_true, name="y_true", n_classes=n_classes)
    a = _check_class_indices(pred_a, name="pred_a", n_classes=n_classes)
    b = _check_class_indices(pred_b, name="pred_b", n_classes=n_classes)
    if not len(truth) == len(a) == len(b):
        raise DataError(f"y_true, pred_a and pred_b must have one row per sample, got {len(truth)}, {len(a)} and {len(b)}")
    pairs = np.stack([a, b], axis=1)

    def difference_rows(t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return _uar_rows(t, p[..., 1], n_classes=n_classes) - _uar_rows(t, p[..., 0], n_classes=n_classes)

    low, high = bootstrap_ci(
        y_true=truth, y_pred=pairs, metric=difference_rows, vectorized=True,
        n_resamples=n_resamples, confidence=confidence, seed=seed,
    )
    difference = float(difference_rows(truth[None], pairs[None])[0])
    return {"difference": difference, "ci95": [_number(low), _number(high)]}


def selection_score(task: str, split: Any, chunk_outputs: np.ndarray) -> float:
    """Model-selection score on files: UAR (classification), mAP (multilabel), -MSE (regression).

    Parameters
    ----------
    task : str
        ``classification``, ``multilabel`` or ``regression``.
    split : dsplug.data.Split
        The chunks' ``file_index`` and the ``file_targets``.
    chunk_outputs : np.ndarray [shape=(n_chunks, k)]
        Model outputs per chunk; averaged per file.
    """
    ids = [str(i) for i in split.file_index]
    order, outputs = aggregate_chunks(file_ids=ids, probs=chunk_outputs, method="mean")
    outputs = outputs[np.argsort([int(i) for i in order])]
    if task == "classification":
        from sklearn.metrics import recall_score

        pred = outputs.argmax(axis=1)
        return float(recall_score(split.file_targets, pred, average="macro", labels=np.unique(split.file_targets), zero_division=0))
    if task == "multilabel":
        from sklearn.metrics import average_precision_score

        keep = split.file_targets.sum(axis=0) > 0
        return float(average_precision_score(split.file_targets[:, keep], outputs[:, keep], average="macro"))
    return -float(np.mean((outputs.reshape(-1) - split.file_targets.reshape(-1)) ** 2))


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
    scores = _check_scores(scores, name="probs", n_rows=len(ids), n_classes=scores.shape[1])

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
# regression and multi-label
# --------------------------------------------------------------------------------------------


def regression_metrics(
    *,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Regression metrics, with a bootstrap confidence interval of the CCC.

    Parameters
    ----------
    y_true, y_pred : np.ndarray [shape=(n,), dtype=float]
        True and predicted values (same unit).
    n_resamples, confidence, seed
        Bootstrap settings for ``ccc_ci95``, see :func:`bootstrap_ci`.

    Returns
    -------
    dict
        ``mse``, ``mae``, ``rmse`` (float), ``pearson`` (float, ``None`` if either vector is
        constant), ``ccc`` (Lin's concordance correlation coefficient with population moments,
        ``None`` if both vectors are constant and equal), ``ccc_ci95`` (``[low, high]``), ``n``.

    Raises
    ------
    DataError
        On empty, non-finite or mismatched inputs.
    """
    truth = _check_values(y_true, name="y_true")
    pred = _check_values(y_pred, name="y_pred", n=truth.size)
    mse = float(skm.mean_squared_error(truth, pred))
    if truth.std() > 0 and pred.std() > 0:
        pearson: float | None = float(np.corrcoef(truth, pred)[0, 1])
    else:
        pearson = None
    ccc = _ccc_rows(truth, pred)
    ccc_ci = bootstrap_ci(
        y_true=truth,
        y_pred=pred,
        metric=_ccc_rows,
        vectorized=True,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    return {
        "mse": mse,
        "mae": float(skm.mean_absolute_error(truth, pred)),
        "rmse": math.sqrt(mse),
        "pearson": pearson,
        "ccc": _number(ccc),
        "ccc_ci95": [_number(ccc_ci[0]), _number(ccc_ci[1])],
        "n": int(truth.size),
    }


def multilabel_metrics(
    *, y_true: np.ndarray, scores: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Multi-label metrics: mean average precision (mAP) and AP per class.

    Parameters
    ----------
    y_true : np.ndarray [shape=(n, k), values 0 or 1]
        Whether each class is present in each sample.
    scores : np.ndarray [shape=(n, k), dtype=float]
        Per-class scores (e.g. sigmoid outputs), columns in the order of ``labels``.
    labels : sequence of str [length k]
        Class names.

    Returns
    -------
    dict
        ``map`` (float; macro average of :func:`sklearn.metrics.average_precision_score` over
        the classes with at least one positive sample — AP is undefined without positives, so
        such classes are left out rather than counted as 0), ``ap_per_class`` (dict name ->
        float, ``None`` for a class without positives), ``n_scored_classes`` (int), ``labels``,
        ``n``.

    Raises
    ------
    DataError
        On empty or mismatched inputs, values of ``y_true`` other than 0/1, or no class with a
        positive sample.
    """
    names = _check_labels(labels)
    k = len(names)
    truth = np.asarray(y_true)
    if truth.ndim != 2 or truth.shape[0] == 0:
        raise DataError(f"y_true must be a non-empty 2-D (samples, classes) 0/1 array, got shape "
                        f"{truth.shape}")
    if truth.shape[1] != k:
        raise DataError(
            f"y_true has {truth.shape[1]} columns but there are {k} labels; one column per class"
        )
    if not np.isin(truth, (0, 1)).all():
        raise DataError("y_true must hold only 0 and 1 (absent / present)")
    truth = truth.astype(np.int64)
    values = _check_scores(scores, name="scores", n_rows=truth.shape[0], n_classes=k)
    positive = truth.sum(axis=0) > 0
    if not positive.any():
        raise DataError("y_true has no positive label in any class; mAP is undefined")
    ap = skm.average_precision_score(truth[:, positive], values[:, positive], average=None)
    ap_per_class: dict[str, float | None] = dict.fromkeys(names)
    for name, value in zip(np.asarray(names)[positive], np.atleast_1d(ap), strict=True):
        ap_per_class[str(name)] = float(value)
    return {
        "map": float(np.mean(ap)),
        "ap_per_class": ap_per_class,
        "n_scored_classes": int(positive.sum()),
        "labels": names,
        "n": int(truth.shape[0]),
    }


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
) -> None:
    """Write one CSV row per prediction (``predictions.csv``), atomically.

    The format is :func:`dsplug.artifacts.predictions_csv`, shared with ``dsplug predict``:
    columns ``file, level, start, end, label, predicted, prob_<class>...`` (one ``prob_``
    column per class, in label order). ``level`` is ``chunk`` when chunk times are given and
    ``file`` otherwise; ``start``/``end`` are empty for file-level rows; ``label`` is the true
    class, empty when the truth is unknown; ``predicted`` is the arg-max class.

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

    Raises
    ------
    DataError
        On mismatched lengths, wrong number of columns or bad labels.
    """
    names = _check_labels(labels)
    if isinstance(file_ids, str):
        raise DataError(
            f"file_ids must be a sequence (one id per row), got the string {file_ids!r}"
        )
    ids = [str(file_id) for file_id in file_ids]
    values = _check_scores(probs, name="probs", n_rows=len(ids), n_classes=len(names))
    truth = None if y_true is None else _check_class_indices(
        y_true, name="y_true", n_classes=len(names)
    )
    if truth is not None and truth.size != len(ids):
        raise DataError(f"y_true has {truth.size} values but there are {len(ids)} rows")
    times = {}
    for name, column in (("starts", starts), ("ends", ends)):
        if column is not None:
            times[name] = _check_values(column, name=name, n=len(ids))
    level = "chunk" if times else "file"
    rows = [
        {
            "file": file_id,
            "level": level,
            "start": float(times["starts"][i]) if "starts" in times else None,
            "end": float(times["ends"][i]) if "ends" in times else None,
            "label": names[truth[i]] if truth is not None else None,
            "predicted": decide(values[i], classes=names, task="classification"),
            "outputs": values[i],
        }
        for i, file_id in enumerate(ids)
    ]
    columns = output_columns(names, task="classification", k=len(names))
    out = write_atomic(path, predictions_csv(rows, columns=columns))
    logger.debug("wrote %d predictions to %s", len(ids), out)
