"""Quantization-aware training (QAT) of a trained pipeline's classifier.

Fake-quantisation (int8 weights per channel, int8 activations) of the whole classifier during a
short fine-tune with tensorflow-model-optimization (tfmot), so that the weights adapt to 8-bit
rounding; :func:`dsplug.deploy.convert.convert` with ``quantize="qat"`` turns the result into an
int8 classifier without calibration data. tfmot quantises one level of layers, so the nested
classifier is first flattened (:func:`flatten`). The pipeline passed in is never changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from dsplug.task import Task
from dsplug.deploy.finetune import BestEpoch, FineTuneResult, check_training_data, end_to_end
from dsplug.errors import ExportError

logger = logging.getLogger(__name__)


class _PopFree(dict):  # type: ignore[type-arg]
    """Tensor map for :meth:`Node.map_arguments`, which pops from per-tensor lists."""

    def __getitem__(self, key: str) -> list[Any]:
        return [dict.__getitem__(self, key)]


def _replay(model: tf_keras.Model, inputs: list[Any]) -> list[Any]:
    """Call ``model``'s layers on ``inputs`` in graph order, inlining nested functional models."""
    tensors = _PopFree({str(id(x)): y for x, y in zip(model.inputs, inputs)})
    for depth in sorted(model._nodes_by_depth, reverse=True):  # noqa: SLF001 (Keras 2 graph API)
        for node in model._nodes_by_depth[depth]:  # noqa: SLF001
            if node.is_input:
                continue
            args, kwargs = node.map_arguments(tensors)
            layer = node.layer
            if isinstance(layer, tf_keras.Model) and layer._is_graph_network:  # noqa: SLF001
                outputs = _replay(layer, tf.nest.flatten((args, kwargs)))
            else:
                outputs = layer(*args, **kwargs)
            for key, value in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                dict.__setitem__(tensors, key, value)
    return [tensors[str(id(x))][0] for x in model.outputs]


def flatten(model: tf_keras.Model) -> tf_keras.Model:
    """The same functional model with its nested functional models inlined.

    tfmot's quantisation works on one level of layers only, while a pipeline's classifier
    nests the backbone and head models. The result reuses the original layer objects (their
    weights are shared, not copied) and computes the same function.
    """
    inputs = [tf_keras.Input(x.shape[1:], dtype=x.dtype, name=layer.name) for x, layer in zip(model.inputs, model._input_layers)]  # noqa: SLF001
    outputs = _replay(model, inputs)
    return tf_keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name)


def _float_compute_config() -> Any:
    """QuantizeConfig for layers tfmot cannot quantise (custom layers such as AReLU)."""
    import tensorflow_model_optimization as tfmot

    class FloatCompute(tfmot.quantization.keras.QuantizeConfig):
        """Compute in float32 with float weights; fake-quantise the output to 8 bits, so that the
        next layer gets int8 input (TFLite: DEQUANTIZE, float op, QUANTIZE)."""

        def get_weights_and_quantizers(self, layer: Any) -> list[Any]:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list[Any]:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list[Any]) -> None:
            return None

        def set_quantize_activations(self, layer: Any, quantize_activations: list[Any]) -> None:
            return None

        def get_output_quantizers(self, layer: Any) -> list[Any]:
            return [tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self) -> dict[str, Any]:
            return {}

    return FloatCompute


#: Narrowest activation range [min, min + MIN_RANGE] left after calibration.
MIN_RANGE = 1e-2


@contextlib.contextmanager
def _batch_ranges() -> Iterator[None]:
    """Make tfmot's activation quantizers take the range of the batch they see.

    tfmot (0.8) starts every activation range at [-6, 6] and moves it by 0.1 % per training
    step (moving average, decay 0.999), or only widens it (the input's all-values quantizer);
    a fine-tune of a few hundred steps on a small dataset never gets near the real ranges, and
    the int8 model then disagrees with the float one. Inside this context a
    training-mode forward pass sets each range to that batch's [min, max] (decay 0), which is
    post-training calibration on real audio; fine-tuning then refines from there.
    """
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    moving, all_values = quant_ops.MovingAvgQuantize, quant_ops.AllValuesQuantize

    def batch_range(inputs: Any, min_var: Any, max_var: Any, **kwargs: Any) -> Any:
        kwargs.pop("ema_decay", None)
        kwargs.pop("name_prefix", None)
        return moving(inputs, min_var, max_var, ema_decay=0.0, **kwargs)

    quant_ops.MovingAvgQuantize = quant_ops.AllValuesQuantize = batch_range
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize, quant_ops.AllValuesQuantize = moving, all_values


def _calibrate(trainer: tf_keras.Model, audio: np.ndarray, *, size: int, seed: int) -> None:
    """Set the quantisation ranges from one training-mode pass over ``size`` random chunks."""
    rng = np.random.default_rng(seed)
    batch = audio[np.sort(rng.permutation(len(audio))[:size])]
    with _batch_ranges():
        trainer(tf.constant(batch), training=True)
    # a constant activation (e.g. a dead channel, or a 1x1 map at small input sizes) gets an
    # empty range [v, v], whose fake-quantisation gradient is NaN: give it a minimal width
    variables = {w.name: w for w in trainer.non_trainable_weights}
    for name, upper in variables.items():
        lower = variables.get(name.replace("_max:", "_min:")) if name.endswith("_max:0") else None
        if lower is not None:
            upper.assign(tf.maximum(upper, lower + MIN_RANGE))


def _batchnorm_after_linear(model: tf_keras.Model) -> set[str]:
    """Names of the BatchNormalization layers that directly follow a Conv2D, DepthwiseConv2D or
    Dense layer: tfmot's default scheme quantises those pairs as one (no fake-quantisation
    between them, as TFLite folds the normalisation into the weights), but only when the
    normalisation carries no QuantizeConfig of its own."""
    linear = (tf_keras.layers.Conv2D, tf_keras.layers.DepthwiseConv2D, tf_keras.layers.Dense)
    found = set()
    for spec in model.get_config()["layers"]:
        if spec["class_name"] != "BatchNormalization" or not spec["inbound_nodes"]:
            continue
        source = spec["inbound_nodes"][0][0][0]
        if isinstance(model.get_layer(source), linear):
            found.add(spec["name"])
    return found


@dataclasses.dataclass
class QatResult(FineTuneResult):
    """A quantization-aware fine-tuned model and what was done.

    Attributes
    ----------
    model : tf_keras.Model
        The fake-quantised end-to-end model (ready for :func:`dsplug.deploy.convert.convert`
        with ``quantize="qat"``).
    classifier : tf_keras.Model
        The fake-quantised classifier (one level of layers, named ``classifier``).
    float_layers : list[str]
        Layers tfmot cannot quantise, computed in float32 with an 8-bit output (e.g. AReLU).
    prune_preserving : bool
        Whether the sparsity of a pruned classifier was kept (tfmot's prune-preserving scheme).
    epoch : int
        The fine-tuning epoch kept (0: calibration only).
    devel_scores : list[float | None]
        Devel score of the fake-quantised model after calibration, then after each epoch.

    See :class:`~dsplug.deploy.finetune.FineTuneResult` for ``losses``.
    """

    float_layers: list[str]
    prune_preserving: bool

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts (for the sidecar metadata and export.json)."""
        return {"float_layers": self.float_layers, "prune_preserving": self.prune_preserving, **super().summary()}


def quantization_aware_finetune(
    pipeline: Any,
    *,
    audio: np.ndarray,
    targets: np.ndarray,
    task: Task = Task.CLASSIFICATION,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 1e-5,
    seed: int = 0,
    devel: Any = None,
    classifier: tf_keras.Model | None = None,
    prune_preserving: bool = False,
    calibration_size: int = 128,
) -> QatResult:
    """Quantization-aware fine-tuning of the classifier (tfmot's default 8-bit scheme).

    A flattened copy of the classifier (:func:`flatten`) is annotated layer by layer: every
    layer tfmot's default 8-bit registry knows is quantised as TFLite's int8 kernels will run
    it (weights per channel, activations per tensor, a BatchNormalization after a convolution
    or dense layer quantised together with it); any other layer (AReLU, plugin layers) computes in float32 and
    only its output is fake-quantised. The quantisation ranges are first calibrated on
    ``calibration_size`` training chunks (one forward pass, see :func:`_batch_ranges`), then
    the model is fine-tuned end to end through the float32 front-end with Adam at a small
    learning rate, BatchNormalization statistics frozen, so that the weights adapt to 8-bit
    rounding. With ``devel``, the state with the best devel score of the fake-quantised
    model is kept (after calibration or after an epoch); without it, the last epoch's.

    Parameters
    ----------
    pipeline : dsplug.pipeline.Pipeline
        The trained model parts (``frontend``, ``classifier``, ``end_to_end``); not changed.
    audio : np.ndarray [shape=(n, samples), dtype=float32]
        Training chunks.
    targets : np.ndarray [shape=(n, k), dtype=float32]
        One-hot (classification), multi-hot (multilabel) or values (regression, k = 1).
    task : Task
        Selects the loss (:meth:`dsplug.task.Task.loss`) and the devel score.
    epochs, batch_size : int
        Fine-tuning length (>= 1 epoch).
    lr : float
        Adam learning rate (small: the model is already trained).
    seed : int
        Seed of the shuffling and dropout.
    devel : dsplug.data.Split, optional
        Chunks for choosing the epoch (e.g. the devel partition).
    classifier : tf_keras.Model, optional
        The classifier to start from instead of ``pipeline.classifier`` (e.g. a pruned one).
    prune_preserving : bool
        Keep the zeros of a pruned classifier (tfmot's ``Default8BitPrunePreserveQuantizeScheme``).
    calibration_size : int
        Training chunks of the calibration pass.

    Returns
    -------
    QatResult

    Raises
    ------
    ExportError
        Fewer than one epoch; no or mismatched training chunks; a layer tfmot refuses.
    """
    import tensorflow_model_optimization as tfmot

    if epochs < 1:
        raise ExportError(f"quantization-aware fine-tuning needs at least 1 epoch, got {epochs}; e.g. qat_epochs: 3")
    audio, targets = check_training_data(audio, targets, what="quantization-aware fine-tuning")
    tf_keras.utils.set_random_seed(seed)
    qkeras = tfmot.quantization.keras
    if prune_preserving:
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = qkeras.default_8bit.Default8BitQuantizeScheme()
    registry = scheme.get_quantize_registry()
    float_config = _float_compute_config()
    float_layers: list[str] = []

    flat = flatten(classifier if classifier is not None else pipeline.classifier)
    folded = _batchnorm_after_linear(flat)

    def annotate(layer: tf_keras.layers.Layer) -> tf_keras.layers.Layer:
        if registry.supports(layer) or layer.name in folded:
            return qkeras.quantize_annotate_layer(layer)
        float_layers.append(layer.name)
        return qkeras.quantize_annotate_layer(layer, quantize_config=float_config())

    annotated = tf_keras.models.clone_model(flat, clone_function=annotate)
    annotated.set_weights(flat.get_weights())
    custom = {type(layer).__name__: type(layer) for layer in flat.submodules if type(layer).__module__.split(".")[0] != "tf_keras"}
    try:
        with qkeras.quantize_scope({**custom, "FloatCompute": float_config}):
            quantized = qkeras.quantize_apply(annotated, scheme)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ExportError(f"tfmot could not quantise the classifier for QAT: {err}") from err
    quantized._name = "classifier"  # noqa: SLF001 (the export's quantised scope)
    for layer in quantized.submodules:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.trainable = False
    trainer = end_to_end(pipeline, quantized)
    trainer.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=lr), loss=Task(task).loss())
    _calibrate(trainer, audio, size=calibration_size, seed=seed)
    selection = BestEpoch(quantized, devel=devel, task=task, batch_size=batch_size, first=-1)
    selection.set_model(trainer)
    selection.on_epoch_end(-1)  # the calibrated model before fine-tuning is a candidate too
    history = trainer.fit(audio, targets, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=[selection])
    selection.restore()
    logger.info(
        "quantization-aware fine-tuning: %d epoch(s), kept epoch %d; float32 layers: %s",
        epochs, selection.best_epoch + 1, float_layers or "none",
    )
    return QatResult(
        model=end_to_end(pipeline, quantized), classifier=quantized, float_layers=float_layers,
        prune_preserving=prune_preserving, losses=[float(v) for v in history.history.get("loss", [])],
        epoch=selection.best_epoch + 1, devel_scores=selection.scores,
    )
