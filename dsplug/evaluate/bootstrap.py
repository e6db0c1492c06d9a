"""Bootstrap confidence intervals: row-wise (vectorised) metrics, :func:`bootstrap_ci`, a partition's metrics with CIs and the paired UAR difference of two models."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning

from dsplug.errors import DataError

logger = logging.getLogger(__name__)



#: Upper bound on the number of resampled values held in memory at once by :func:`bootstrap_ci`.
BOOTSTRAP_CHUNK_ELEMENTS = 1_000_000

# --------------------------------------------------------------------------------------------
# row-wise (vectorised) metrics used for the bootstrap
# --------------------------------------------------------------------------------------------


def uar_rows(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int) -> np.ndarray:
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


def accuracy_rows(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Accuracy of each row: shape ``(b, n)`` -> ``(b,)``."""
    return np.mean(y_true == y_pred, axis=-1)


def ccc_rows(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
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
    rows_per_batch = max(1, min(n_resamples, BOOTSTRAP_CHUNK_ELEMENTS // n))
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
