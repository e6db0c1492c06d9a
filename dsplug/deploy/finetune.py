"""What pruning and quantization-aware training share: a short fine-tune of a copy of the classifier.

Both fine-tune the classifier (normalised image -> outputs) of a trained pipeline on the training
chunks, through the unchanged float32 front-end, and keep the epoch with the best devel score
when devel chunks are given, as training does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import tf_keras

from dsplug.errors import ExportError
from dsplug.task import Task


@dataclasses.dataclass
class FineTuneResult:
    """What a fine-tune of the classifier returns (:class:`~dsplug.deploy.prune.PruneResult`,
    :class:`~dsplug.deploy.qat.QatResult` add their own facts).

    Attributes
    ----------
    model : tf_keras.Model
        Audio (batch, samples) -> outputs: the pipeline's float32 front-end and the fine-tuned
        classifier, named like the pipeline's end-to-end model (ready for
        :func:`dsplug.deploy.convert.convert`).
    classifier : tf_keras.Model
        The fine-tuned classifier (normalised images -> outputs).
    losses : list[float]
        Training loss of each fine-tuning epoch.
    epoch : int
        The fine-tuning epoch kept (1-based; the last one without devel chunks).
    devel_scores : list[float | None]
        Devel score of each candidate epoch (None where not measured, or without devel).
    """

    model: tf_keras.Model
    classifier: tf_keras.Model
    losses: list[float]
    epoch: int
    devel_scores: list[float | None]

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts (for the sidecar metadata and export.json)."""
        return {
            "losses": [round(v, 6) for v in self.losses],
            "epoch": self.epoch,
            "devel_scores": [None if v is None else round(v, 6) for v in self.devel_scores],
        }


def check_training_data(audio: np.ndarray, targets: np.ndarray, *, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Training chunks as float32 ``(n, samples)`` and targets as float32 ``(n, k)``.

    Raises
    ------
    ExportError
        No chunks, not 2-D, or a different number of chunks and targets.
    """
    audio = np.asarray(audio, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.float32).reshape(len(targets), -1)
    if audio.ndim != 2 or len(audio) != len(targets) or len(audio) == 0:
        raise ExportError(
            f"{what} needs training chunks (n, samples) and targets (n, k) of the same n, got "
            f"{audio.shape} and {targets.shape}"
        )
    return audio, targets


def copy_model(model: tf_keras.Model) -> tf_keras.Model:
    """A copy of ``model`` with the same weights (the original stays untouched)."""
    copy = tf_keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def end_to_end(pipeline: Any, classifier: tf_keras.Model) -> tf_keras.Model:
    """Audio -> ``classifier(frontend(audio))``, named like the pipeline's end-to-end model."""
    inputs = tf_keras.Input(pipeline.end_to_end.input_shape[1:], dtype="float32", name="audio")
    return tf_keras.Model(inputs, classifier(pipeline.frontend(inputs)), name=pipeline.end_to_end.name)


class BestEpoch(tf_keras.callbacks.Callback):
    """Keep the weights of the epoch with the best devel score from epoch ``first`` on.

    Parameters
    ----------
    wrapped : tf_keras.Model
        The model whose weights are saved and restored (the classifier being fine-tuned).
    devel : dsplug.data.Split or None
        Chunks for the devel score; None keeps the last epoch.
    task : Task
        Selects the score (:attr:`dsplug.task.Task.selection_metric`).
    batch_size : int
        Inference batch size.
    first : int
        First (0-based) epoch that may be kept.
    """

    def __init__(self, wrapped: tf_keras.Model, *, devel: Any, task: Task, batch_size: int, first: int) -> None:
        super().__init__()
        self.wrapped, self.devel, self.task, self.batch_size, self.first = wrapped, devel, task, batch_size, first
        self.best_epoch, self.best_score = -1, -math.inf
        self.best_weights: list[np.ndarray] | None = None
        self.scores: list[float | None] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from dsplug.evaluate import selection_score
        from dsplug.pipeline import predict_batches

        if self.devel is None or epoch < self.first:
            self.scores.append(None)
            self.best_epoch = epoch
            return
        score = selection_score(self.task, self.devel, predict_batches(self.model, self.devel.audio, batch_size=self.batch_size))
        self.scores.append(score)
        if score > self.best_score:
            self.best_epoch, self.best_score = epoch, score
            self.best_weights = self.wrapped.get_weights()

    def restore(self) -> None:
        """Put the chosen epoch's weights back (nothing to do without devel)."""
        if self.best_weights is not None:
            self.wrapped.set_weights(self.best_weights)
