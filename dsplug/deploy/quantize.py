"""Quantisation of the classifier only: the int8 scope, selective int8, float32 outside the scope.

The exported model is the whole pipeline (audio in, outputs out), but only its ``classifier``
sub-model (normalised image -> outputs) is quantised; the spectrogram front-end stays float32
(see :func:`dsplug.deploy.convert.convert` for why). This module holds the pieces that decide
and enforce that scope:

* :func:`in_quantized_scope` -- whether a TFLite tensor belongs to the classifier;
* :func:`int8_classifier` -- post-training int8 of the classifier with TensorFlow's
  ``QuantizationDebugger``: the front-end's nodes deny-listed, and the classifier ops whose
  quantisation error exceeds a threshold kept float32 too (selective quantisation);
* :func:`float_outside_scope` -- after dynamic-range or QAT conversion, the float32 weights of
  quantised ops outside the classifier put back into the flatbuffer.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from dsplug.errors import ExportError

logger = logging.getLogger(__name__)

#: The quantisation modes, in the order files are written and reported.
QUANTIZE_MODES: tuple[str, ...] = ("none", "dynamic", "float16", "int8", "qat")

#: Name of the sub-model (normalised image -> outputs) whose ops ``dynamic`` and ``int8``
#: quantise; everything outside it (the spectrogram front-end) stays float32.
QUANTIZED_SCOPE = "classifier"

#: Default of ``float_threshold`` for ``int8``: a classifier op whose quantisation error,
#: root-mean-square over the debug chunks in units of its output's quantisation step, exceeds
#: this stays float32. Rounding alone gives 1/sqrt(12) ~ 0.29, so 1.5 is about five times
#: that. TensorFlow's QuantizationDebugger guide flags suspects from 0.7; on the demo's
#: backbones that also kept MobileNetV2's 1280x128 head layer (1.0 step) float32, +0.66 MB for
#: no change in parity, while the ops that mattered (the stem and first depthwise convolutions
#: of EfficientNet-Lite0/1) were at 1.7-3.7 steps.
INT8_FLOAT_THRESHOLD = 1.5

#: Chunks (the first of the representative ones) on which the per-layer errors are measured.
INT8_DEBUG_CHUNKS = 32

#: Ops whose weights ``dynamic`` keeps float32 inside the classifier too: XNNPACK (the CPU
#: delegate LiteRT applies by default) has no dynamic-range depthwise kernel, so an int8
#: depthwise filter splits the delegated graph (MobileNetV2: 18 partitions, 2x slower than
#: float32); depthwise filters hold ~1 % of such a network's weights.
DYNAMIC_FLOAT_OPS = ("DEPTHWISE_CONV_2D",)


def in_quantized_scope(name: str) -> bool:
    """Whether a TFLite tensor name belongs to the classifier sub-model.

    Tensor names are the TensorFlow name scopes of the traced model
    (``dsplug/classifier/mobilenetv2_1.00_224/block_1_expand/Conv2D``); fused ops join several
    names with ``;``.
    """
    return any(QUANTIZED_SCOPE in part.split("/") for part in name.split(";"))


def check_scope(model: tf_keras.Model, quantize: str) -> None:
    """Refuse a model without a ``classifier`` sub-model for a mode that quantises only it.

    Raises
    ------
    ExportError
        Naming the model's layers and where a suitable model comes from.
    """
    names = [layer.name for layer in model.layers]
    if QUANTIZED_SCOPE not in names:
        raise ExportError(
            f"quantize={quantize!r} quantises only the sub-model named {QUANTIZED_SCOPE!r} (the "
            f"front-end must stay float32), but model {model.name!r} has layers {names}; export a "
            "model built by dsplug.pipeline.build_pipeline (its end_to_end model)"
        )


def is_fake_quantised(model: tf_keras.Model) -> bool:
    """Whether the ``classifier`` sub-model of ``model`` holds tfmot quantisation wrappers."""
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_wrapper import QuantizeWrapper

    classifier = next(layer for layer in model.layers if layer.name == QUANTIZED_SCOPE)
    return any(isinstance(layer, QuantizeWrapper) for layer in classifier.submodules)


def representative_audio(representative: np.ndarray | None, *, samples: int) -> np.ndarray:
    """Check the ``int8`` calibration chunks.

    Parameters
    ----------
    representative : np.ndarray [shape=(n, samples)] or None
        Real audio chunks in [-1, 1].
    samples : int
        The model's chunk length.

    Returns
    -------
    np.ndarray [shape=(n, samples), dtype=float32]

    Raises
    ------
    ExportError
        None or empty, the wrong shape, or non-finite samples.
    """
    if representative is None or len(representative) == 0:
        raise ExportError(
            "quantize='int8' needs representative audio chunks (n, samples) to calibrate the "
            "activation ranges; pass real training chunks as representative="
        )
    data = np.asarray(representative, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] != samples:
        raise ExportError(
            f"representative chunks must have shape (n, {samples}), got {data.shape}; pass "
            "chunks decoded with the recipe's sample rate and chunk length"
        )
    if not np.all(np.isfinite(data)):
        raise ExportError("representative chunks contain NaN or infinite samples")
    return data


def int8_classifier(converter: tf.lite.TFLiteConverter, data: np.ndarray, *, float_threshold: float | None) -> bytes:
    """Integer quantisation of the classifier only (the front-end's nodes deny-listed).

    The classifier ops whose per-layer error exceeds ``float_threshold`` quantisation steps stay
    float32 too (none when ``float_threshold`` is None: a full-integer classifier).

    Parameters
    ----------
    converter : tf.lite.TFLiteConverter
        A converter of the end-to-end model with ``Optimize.DEFAULT`` set.
    data : np.ndarray [shape=(n, samples), dtype=float32]
        Calibration chunks (:func:`representative_audio`); the first
        :data:`INT8_DEBUG_CHUNKS` also measure the per-layer errors.
    float_threshold : float or None
        Error limit in quantisation steps (root-mean-square).

    Returns
    -------
    bytes
        The .tflite flatbuffer. Converter failures propagate as they are.
    """
    from ai_edge_litert.interpreter import Interpreter

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.inference_input_type = tf.float32
    converter.inference_output_type = tf.float32
    converter.representative_dataset = lambda: ([chunk[None, :]] for chunk in data)
    debug = data[:INT8_DEBUG_CHUNKS]
    with warnings.catch_warnings():
        # the debugger runs its own numeric-verify model on TF's deprecated interpreter
        warnings.simplefilter("ignore")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([chunk[None, :]] for chunk in debug)
        )
        calibrated = Interpreter(model_content=debugger.calibrated_model)
        denied = [t["name"] for t in calibrated.get_tensor_details() if not in_quantized_scope(t["name"])]
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denied)
        if float_threshold is not None:
            sensitive = _sensitive_ops(debugger, threshold=float_threshold)
            if sensitive:
                debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denied + sensitive)
        return debugger.get_nondebug_quantized_model()


def _sensitive_ops(debugger: Any, *, threshold: float) -> list[str]:
    """Output tensor names of the classifier ops whose quantisation error exceeds ``threshold``.

    The error is TensorFlow's per-layer statistic (each quantised op against the float op fed
    the same dequantised inputs, on the debugger's debug chunks): the root-mean-square
    difference divided by the op's output scale (its quantisation step). Weights of large
    magnitude and inputs with a large mean (early convolutions of an ImageNet net on dark
    spectrogram images: errors of 2.6 and 3.7 steps in EfficientNet-Lite0) are what drive it up.
    """
    debugger.run()
    table = io.StringIO()
    debugger.layer_statistics_dump(table)
    table.seek(0)
    errors = {
        row["tensor_name"]: math.sqrt(float(row["mean_squared_error"])) / float(row["scale"])
        for row in csv.DictReader(table)
        if row["scale"] and float(row["scale"]) > 0
    }
    sensitive = [name for name, error in errors.items() if error > threshold and in_quantized_scope(name)]
    logger.info(
        "int8: %d of %d classifier op(s) exceed %.2f quantisation steps of error and stay float32: %s",
        len(sensitive), len(errors), threshold, {name.split(";")[-1]: round(errors[name], 2) for name in sensitive},
    )
    return sensitive


def float_outside_scope(flatbuffer: bytes, *, reference: bytes, keep_float: Sequence[str] = DYNAMIC_FLOAT_OPS) -> bytes:
    """Put back the float32 weights of quantised ops outside the classifier (and of the
    ``keep_float`` ops everywhere).

    TFLite's converter has no op or node deny-list for dynamic range, hence this edit of the
    flatbuffer (``tensorflow.lite.tools.flatbuffer_utils``).

    Parameters
    ----------
    flatbuffer : bytes
        A dynamic-range (or QAT) quantised model.
    reference : bytes
        The float32 conversion of the same model (tensor names match).
    keep_float : sequence of str
        TFLite builtin op names whose weights stay float32 inside the classifier too.

    Returns
    -------
    bytes
        The edited flatbuffer.

    Raises
    ------
    ExportError
        A quantised weight outside the scope has no float32 counterpart in ``reference``.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    ref = flatbuffer_utils.read_model_from_bytearray(bytearray(reference))
    float_tensors = {
        t.name: ref.buffers[t.buffer].data
        for graph in ref.subgraphs
        for t in graph.tensors
        if t.type == schema.TensorType.FLOAT32 and ref.buffers[t.buffer].data is not None
    }
    dequantize = schema.BuiltinOperator.DEQUANTIZE
    keep_builtins = {getattr(schema.BuiltinOperator, name) for name in keep_float}
    restored = []
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            if builtin == dequantize:
                continue  # a weight-only DEQUANTIZE must keep its int8 input
            classifier = any(in_quantized_scope(graph.tensors[i].name.decode()) for i in op.outputs if i >= 0)
            if classifier and builtin not in keep_builtins:
                continue
            for index in op.inputs:
                tensor = graph.tensors[index] if index >= 0 else None
                if tensor is None or tensor.type != schema.TensorType.INT8:
                    continue
                buffer = model.buffers[tensor.buffer]
                if buffer.data is None or tensor.name not in float_tensors:
                    raise ExportError(
                        f"dynamic-range quantisation changed tensor {tensor.name.decode()!r}, whose "
                        "float32 weights could not be found; export with quantize='none', 'float16' "
                        "or 'int8'"
                    )
                tensor.type = schema.TensorType.FLOAT32
                tensor.quantization = None
                buffer.data = float_tensors[tensor.name]
                restored.append(tensor.name.decode())
    logger.info("kept %d weight tensor(s) outside the classifier float32: %s", len(restored), restored)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
