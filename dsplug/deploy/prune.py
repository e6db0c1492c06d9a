"""Magnitude pruning of a trained pipeline's classifier during a short fine-tune.

A copy of the classifier's Conv2D / DepthwiseConv2D / Dense kernels is pruned to a target
sparsity (polynomial decay) with tensorflow-model-optimization (tfmot), which needs tf_keras
models; the wrappers are stripped at the end. It pays off in compressed (gzip) size. The
pipeline passed in is never changed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from dsplug.task import Task
from dsplug.deploy.finetune import BestEpoch, FineTuneResult, check_training_data, copy_model, end_to_end
from dsplug.errors import ExportError

logger = logging.getLogger(__name__)

#: Layer types whose kernels :func:`prune` prunes (Conv2DTranspose and the depthwise
#: convolution are subclasses of Conv2D's base and are included through these).
PRUNABLE_LAYERS: tuple[type, ...] = (
    tf_keras.layers.Conv2D,
    tf_keras.layers.DepthwiseConv2D,
    tf_keras.layers.Dense,
)


@dataclasses.dataclass
class PruneResult(FineTuneResult):
    """A pruned, stripped model and what pruning achieved.

    Attributes
    ----------
    classifier : tf_keras.Model
        The pruned classifier, pruning wrappers stripped.
    target_sparsity : float
        The requested fraction of zero weights.
    sparsity : float
        The achieved fraction of exactly-zero weights among the pruned kernels.
    pruned_layers : int
        Number of Conv2D / DepthwiseConv2D / Dense layers pruned.
    pruned_weights : int
        Number of weights in their kernels.
    devel_scores : list[float | None]
        Devel score after each epoch (None before the final sparsity or without devel).

    See :class:`~dsplug.deploy.finetune.FineTuneResult` for ``model``, ``losses``, ``epoch``.
    """

    target_sparsity: float
    sparsity: float
    pruned_layers: int
    pruned_weights: int

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts (for the sidecar metadata and export.json)."""
        return {
            "target_sparsity": self.target_sparsity,
            "sparsity": round(self.sparsity, 6),
            "pruned_layers": self.pruned_layers,
            "pruned_weights": self.pruned_weights,
            **super().summary(),
        }


def _kernels(model: tf_keras.Model) -> list[tf.Variable]:
    """The kernels of every prunable layer in ``model`` and its nested models."""
    found = []
    for layer in model.submodules:
        if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            found.append(layer.depthwise_kernel)
        elif isinstance(layer, PRUNABLE_LAYERS):
            found.append(layer.kernel)
    return found


def kernel_sparsity(model: tf_keras.Model) -> tuple[float, int, int]:
    """Fraction of exactly-zero weights among the Conv2D / DepthwiseConv2D / Dense kernels.

    Returns
    -------
    (sparsity, layers, weights) : (float, int, int)
    """
    kernels = [k.numpy() for k in _kernels(model)]
    total = sum(k.size for k in kernels)
    zeros = sum(int(np.count_nonzero(k == 0)) for k in kernels)
    return (zeros / total if total else 0.0), len(kernels), total


def _pruning_policy() -> Any:
    import tensorflow_model_optimization as tfmot

    class KernelPolicy(tfmot.sparsity.keras.PruningPolicy):
        """Wrap only Conv2D / DepthwiseConv2D / Dense layers; leave the rest (custom layers too)."""

        def allow_pruning(self, layer: tf_keras.layers.Layer) -> bool:
            return isinstance(layer, PRUNABLE_LAYERS)

        def ensure_model_supports_pruning(self, model: tf_keras.Model) -> None:
            return None

    return KernelPolicy()


def prune(
    pipeline: Any,
    *,
    audio: np.ndarray,
    targets: np.ndarray,
    sparsity: float,
    task: Task = Task.CLASSIFICATION,
    epochs: int = 6,
    batch_size: int = 32,
    lr: float = 1e-4,
    seed: int = 0,
    devel: Any = None,
) -> PruneResult:
    """Magnitude-prune the classifier to ``sparsity`` during a short fine-tune.

    A copy of ``pipeline.classifier`` is wrapped with
    ``tfmot.sparsity.keras.prune_low_magnitude`` -- only its Conv2D, DepthwiseConv2D and Dense
    layers, in the backbone and head sub-models alike (custom layers such as AReLU stay as they
    are) -- and fine-tuned end to end on the training chunks with Adam. The sparsity rises
    along a cubic ``PolynomialDecay`` from 0 to ``sparsity`` over the first half of the steps
    and is held for the rest, so the model recovers at the final sparsity. BatchNormalization
    layers are frozen (their statistics kept). With ``devel``, the epoch with the best devel
    score among those at the final sparsity is kept (the training's model selection: UAR,
    mAP or -MSE at file level); without it, the last epoch. The wrappers are stripped at the
    end. The pipeline itself is not changed.

    Parameters
    ----------
    pipeline : dsplug.pipeline.Pipeline
        The trained model parts (``frontend``, ``classifier``, ``end_to_end``).
    audio : np.ndarray [shape=(n, samples), dtype=float32]
        Training chunks.
    targets : np.ndarray [shape=(n, k), dtype=float32]
        One-hot (classification), multi-hot (multilabel) or values (regression, k = 1).
    sparsity : float
        Target fraction of zero weights in (0, 1).
    task : Task
        Selects the loss (:meth:`dsplug.task.Task.loss`) and the devel score.
    epochs, batch_size : int
        Fine-tuning length; at least two steps in all.
    lr : float
        Adam learning rate.
    seed : int
        Seed of the shuffling and dropout.
    devel : dsplug.data.Split, optional
        Chunks for choosing the epoch (e.g. the devel partition).

    Returns
    -------
    PruneResult

    Raises
    ------
    ExportError
        ``sparsity`` outside (0, 1); too few chunks or steps; mismatched shapes.
    """
    import tensorflow_model_optimization as tfmot

    if not 0.0 < sparsity < 1.0:
        raise ExportError(f"prune sparsity must be in (0, 1), got {sparsity!r}; e.g. --prune 0.5")
    audio, targets = check_training_data(audio, targets, what="pruning")
    steps_per_epoch = math.ceil(len(audio) / batch_size)
    total = steps_per_epoch * epochs
    if total < 2:
        raise ExportError(
            f"pruning needs at least 2 fine-tuning steps, got {epochs} epoch(s) of {steps_per_epoch} "
            "batch(es); raise the epochs or lower the batch size"
        )
    tf_keras.utils.set_random_seed(seed)
    # a copy, so the pipeline's weights stay as they are
    classifier = copy_model(pipeline.classifier)
    frequency = max(1, total // 20)
    end_step = max(frequency, frequency * int(0.5 * (total - 1) / frequency))
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=float(sparsity), begin_step=0, end_step=end_step, frequency=frequency
    )
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(
        classifier, pruning_schedule=schedule, pruning_policy=_pruning_policy()
    )
    for layer in wrapped.submodules:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.trainable = False
    trainer = end_to_end(pipeline, wrapped)
    trainer.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=lr), loss=Task(task).loss())
    selection = BestEpoch(
        wrapped, devel=devel, task=task, batch_size=batch_size,
        first=math.ceil((end_step + 1) / steps_per_epoch) - 1,  # first epoch at the final sparsity
    )
    history = trainer.fit(
        audio, targets, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), selection],  # masks applied first
    )
    selection.restore()
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    achieved, layers, weights = kernel_sparsity(stripped)
    model = end_to_end(pipeline, stripped)
    losses = [float(v) for v in history.history.get("loss", [])]
    logger.info("pruned %d layers (%d weights) to sparsity %.3f (target %.3f)", layers, weights, achieved, sparsity)
    return PruneResult(
        model=model, classifier=stripped, target_sparsity=float(sparsity), sparsity=achieved,
        pruned_layers=layers, pruned_weights=weights, losses=losses,
        epoch=selection.best_epoch + 1, devel_scores=selection.scores,
    )
