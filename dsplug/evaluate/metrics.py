"""Point metrics: classification (UAR, accuracy, macro-F1, confusion), regression (CCC, MAE, ...) and multi-label (mAP)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn import metrics as skm

from dsplug.errors import DataError
from dsplug.evaluate.bootstrap import accuracy_rows, bootstrap_ci, ccc_rows, uar_rows
from dsplug.evaluate.checks import check_class_indices, check_labels, check_scores, check_values, finite_or_none



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
    names = check_labels(labels)
    k = len(names)
    truth = check_class_indices(y_true, name="y_true", n_classes=k)
    scores = check_scores(probs, name="probs", n_rows=truth.size, n_classes=k)
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


# --------------------------------------------------------------------------------------------
# regression and multi-label
# --------------------------------------------------------------------------------------------


def regression_metrics(
    *, y_true: np.ndarray, y_pred: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
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
    truth = check_values(y_true, name="y_true")
    pred = check_values(y_pred, name="y_pred", n=truth.size)
    mse = float(skm.mean_squared_error(truth, pred))
    if truth.std() > 0 and pred.std() > 0:
        pearson: float | None = float(np.corrcoef(truth, pred)[0, 1])
    else:
        pearson = None
    ccc = ccc_rows(truth, pred)
    ccc_ci = bootstrap_ci(
        y_true=truth, y_pred=pred, metric=ccc_rows, vectorized=True, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return {
        "mse": mse,
        "mae": float(skm.mean_absolute_error(truth, pred)),
        "rmse": math.sqrt(mse),
        "pearson": pearson,
        "ccc": finite_or_none(ccc),
        "ccc_ci95": [finite_or_none(ccc_ci[0]), finite_or_none(ccc_ci[1])],
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
    names = check_labels(labels)
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
    values = check_scores(scores, name="scores", n_rows=truth.shape[0], n_classes=k)
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

    def uar_of_rows(t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return uar_rows(t, p, n_classes=k)

    uar_ci, acc_ci = (
        bootstrap_ci(
            y_true=truth, y_pred=pred, metric=metric, vectorized=True, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
        for metric in (uar_of_rows, accuracy_rows)
    )
    return {
        "uar": result["uar"],
        "uar_ci95": [finite_or_none(uar_ci[0]), finite_or_none(uar_ci[1])],
        "accuracy": result["accuracy"],
        "accuracy_ci95": [finite_or_none(acc_ci[0]), finite_or_none(acc_ci[1])],
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
    truth = check_class_indices(y_true, name="y_true", n_classes=n_classes)
    a = check_class_indices(pred_a, name="pred_a", n_classes=n_classes)
    b = check_class_indices(pred_b, name="pred_b", n_classes=n_classes)
    if not len(truth) == len(a) == len(b):
        raise DataError(f"y_true, pred_a and pred_b must have one row per sample, got {len(truth)}, {len(a)} and {len(b)}")
    pairs = np.stack([a, b], axis=1)

    def difference_rows(t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return uar_rows(t, p[..., 1], n_classes=n_classes) - uar_rows(t, p[..., 0], n_classes=n_classes)

    low, high = bootstrap_ci(
        y_true=truth, y_pred=pairs, metric=difference_rows, vectorized=True,
        n_resamples=n_resamples, confidence=confidence, seed=seed,
    )
    difference = float(difference_rows(truth[None], pairs[None])[0])
    return {"difference": difference, "ci95": [finite_or_none(low), finite_or_none(high)]}
