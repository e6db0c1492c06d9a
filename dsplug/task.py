"""The task: what a model's outputs mean, and everything that follows from it.

One owner for the learning problem. Everything that differs between single-label classification,
multi-label tagging and regression is asked of the :class:`Task` (its output activation, its
training loss, the way chunk outputs become a file's, the score that picks the best epoch, how
targets are encoded and what the exported metadata says), so the rest of dsplug never compares
task names. A new task (for example open-set classification with a background class) is a new
member here and the places that ask it.

``Task`` is a :class:`~enum.StrEnum`: a member *is* its name (``Task.CLASSIFICATION ==
"classification"``), so recipes, manifests, metadata JSON and plugins that declare
``tasks = ("classification",)`` keep their plain strings.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

TaskName = Literal["classification", "multilabel", "regression"]

#: Joins the classes of a multi-label row (manifest cells, decided labels).
LABEL_SEPARATOR = ";"
#: A multi-label class is on above this score.
MULTILABEL_THRESHOLD = 0.5


class Task(enum.StrEnum):
    """A learning problem: single-label classification, multi-label tagging or regression.

    Build one from its name with ``Task(name)`` (``ValueError`` names the choices).
    """

    CLASSIFICATION = "classification"
    MULTILABEL = "multilabel"
    REGRESSION = "regression"

    def __repr__(self) -> str:
        return repr(self.value)  # messages read "data.task is 'regression'"

    @classmethod
    def _missing_(cls, value: object) -> Task:
        raise ValueError(f"unknown task {value!r}: use one of {', '.join(t.value for t in cls)}")

    # -- what the outputs are --------------------------------------------------------------------
    @property
    def has_classes(self) -> bool:
        """The outputs are one score per class (classification, multilabel), not values."""
        return self is not Task.REGRESSION

    @property
    def exclusive(self) -> bool:
        """Each item has exactly one class: the decision is the top class (argmax), scores sum
        to 1, files may be aggregated by vote, recall per class (UAR) is the score, and classes
        may be balanced."""
        return self is Task.CLASSIFICATION

    @property
    def multilabel(self) -> bool:
        """Each item has any number of classes, each decided on its own (sigmoid scores)."""
        return self is Task.MULTILABEL

    @property
    def activation(self) -> Literal["softmax", "sigmoid", "linear"]:
        """The output layer's activation."""
        return {"classification": "softmax", "multilabel": "sigmoid", "regression": "linear"}[self.value]

    @property
    def output_meaning(self) -> Literal["probabilities", "values"]:
        """What an output row holds (the exported metadata's ``meaning``)."""
        return "probabilities" if self.has_classes else "values"

    @property
    def verb(self) -> str:
        """What a model of the task does, for descriptions: classifies, tags or rates."""
        return {"classification": "classifies", "multilabel": "tags", "regression": "rates"}[self.value]

    @property
    def selection_metric(self) -> Literal["uar", "map", "neg_mse"]:
        """The file-level score that picks the best epoch (higher is better): UAR, macro mAP or
        minus the mean squared error."""
        return {"classification": "uar", "multilabel": "map", "regression": "neg_mse"}[self.value]

    # -- training ----------------------------------------------------------------------------------
    def loss(self, *, label_smoothing: float = 0.0, reduction: str = "sum_over_batch_size") -> Any:
        """The training loss (a ``tf_keras`` loss): categorical or binary cross-entropy, or mean
        squared error (``label_smoothing`` applies to the cross-entropies only)."""
        import tf_keras

        if self is Task.CLASSIFICATION:
            return tf_keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction=reduction)
        if self is Task.MULTILABEL:
            return tf_keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing, reduction=reduction)
        return tf_keras.losses.MeanSquaredError(reduction=reduction)

    # -- labels and targets ------------------------------------------------------------------------
    def labels_of(self, cell: str) -> list[str]:
        """The classes of one manifest label cell: its ``;``-separated names (multilabel,
        ``"dog; bark"`` -> ``["dog", "bark"]``), else the cell as one label."""
        if self.multilabel:
            return [part.strip() for part in cell.split(LABEL_SEPARATOR) if part.strip()]
        return [cell]

    def targets(self, cells: Sequence[str], *, classes: Sequence[str]) -> np.ndarray:
        """The targets of items from their label cells.

        Returns
        -------
        np.ndarray
            ``(n,) int64`` class indices (classification), ``(n, k) float32`` multi-hot
            (multilabel), or ``(n,) float32`` values (regression).
        """
        if not self.has_classes:
            return np.array([float(cell) for cell in cells], dtype=np.float32)
        index = {name: i for i, name in enumerate(classes)}
        if self.exclusive:
            return np.array([index[cell] for cell in cells], dtype=np.int64)
        hot = np.zeros((len(cells), len(classes)), dtype=np.float32)
        for row, cell in enumerate(cells):
            hot[row, [index[label] for label in self.labels_of(cell)]] = 1.0
        return hot

    def target_rows(self, targets: np.ndarray, *, n_classes: int) -> np.ndarray:
        """What the model is trained towards, one row per item: one-hot rows (classification),
        the multi-hot rows (multilabel) or the values as ``(n, 1)`` (regression); float32."""
        if self.exclusive:
            return np.eye(n_classes, dtype=np.float32)[targets]
        if self.multilabel:
            return np.asarray(targets, np.float32)
        return np.asarray(targets, np.float32).reshape(-1, 1)

    # -- files and decisions -----------------------------------------------------------------------
    def aggregation(self, requested: Literal["mean", "vote"]) -> Literal["mean", "vote"]:
        """How a file's chunk outputs combine: the recipe's choice where votes mean something
        (one class per item), the mean otherwise."""
        return requested if self.exclusive else "mean"

    def decide(self, outputs: np.ndarray, *, classes: Sequence[str]) -> str:
        """The label of one output row: the top class (classification), the classes above
        :data:`MULTILABEL_THRESHOLD` joined by ``;`` (multilabel, ``""`` if none), or the
        value(s) (regression, ``;``-joined).

        Parameters
        ----------
        outputs : np.ndarray [shape=(k,)]
            One output row.
        classes : sequence of str
            Class names in output order.
        """
        if self.exclusive:
            return classes[int(np.argmax(outputs))]
        if self.multilabel:
            return LABEL_SEPARATOR.join(c for c, p in zip(classes, outputs) if p > MULTILABEL_THRESHOLD)
        return LABEL_SEPARATOR.join(f"{float(v):.6g}" for v in np.ravel(outputs))

    def output_columns(self, classes: Sequence[str], *, k: int) -> list[str]:
        """Output column names: ``prob_<class>``, or ``value`` / ``value_<name>`` (regression,
        ``k`` outputs)."""
        if self.has_classes:
            return [f"prob_{c}" for c in classes]
        if len(classes) == k:
            return [f"value_{c}" for c in classes] if k > 1 else ["value"]
        return ["value"] if k == 1 else [f"value_{i}" for i in range(k)]
