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

from dsplug.evaluate.bootstrap import bootstrap_ci
from dsplug.evaluate.checks import check_confusion
from dsplug.evaluate.metrics import (
    classification_metrics,
    evaluate_partition,
    multilabel_metrics,
    paired_uar_difference,
    regression_metrics,
)
from dsplug.evaluate.predictions import aggregate_chunks, selection_score, write_predictions_csv

__all__ = [
    "aggregate_chunks",
    "bootstrap_ci",
    "check_confusion",
    "classification_metrics",
    "evaluate_partition",
    "multilabel_metrics",
    "paired_uar_difference",
    "regression_metrics",
    "selection_score",
    "write_predictions_csv",
]
