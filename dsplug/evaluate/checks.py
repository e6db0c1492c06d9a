"""Input checks shared by the metrics: labels, class indices, scores, values, confusion matrices."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dsplug.errors import DataError



# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def check_labels(labels: Sequence[str]) -> list[str]:
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


def check_class_indices(y: Any, *, name: str, n_classes: int) -> np.ndarray:
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


def check_scores(scores: Any, *, name: str, n_rows: int | None, n_classes: int) -> np.ndarray:
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
    return _real_finite(arr, name=name, hint="; check the model outputs")


def check_values(y: Any, *, name: str, n: int | None = None) -> np.ndarray:
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
    return _real_finite(arr, name=name, hint="")


def _real_finite(arr: np.ndarray, *, name: str, hint: str) -> np.ndarray:
    """``arr`` as ``float64`` if it holds real, finite numbers (any shape); ``hint`` ends the
    message about non-finite values."""
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values{hint}")
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
    names = check_labels(labels)
    k = len(names)
    counts = np.asarray(confusion)
    if counts.shape != (k, k):
        raise DataError(f"confusion must have shape ({k}, {k}) for {k} labels, got {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
        raise DataError("confusion must hold non-negative integer counts")
    return counts, names


def finite_or_none(value: float) -> float | None:
    """Return ``value`` as a Python float, or ``None`` when it is NaN or infinite."""
    value = float(value)
    return value if math.isfinite(value) else None
