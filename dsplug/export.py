"""Export the whole pipeline (audio chunk in, outputs out) to TFLite with builtin ops only.

The model's input is one raw mono chunk, float32, shape (1, chunk_samples) at the recipe's
sample rate; its output the class probabilities (1, n_classes). A sidecar JSON next to the
model (``model.json``, ``model-int8.json``, ...) carries what an app needs: class names, sample
rate, chunk and hop length, the recipe hash, the dsplug version, the quantisation mode and the
pruning applied.

Compression (the export stage of the architecture: prune -> quantize -> TFLite):

* :func:`dsplug.compress.prune` -- magnitude pruning of the classifier's kernels during a short
  fine-tune, stripped before export; :func:`dsplug.compress.quantization_aware_finetune` --
  quantization-aware fine-tuning (QAT) of the classifier.
* :func:`convert` -- ``none`` (float32), ``dynamic`` (int8 weights, float activations),
  ``float16`` (float16 weights), ``int8`` (post-training integer quantisation of the
  classifier, calibrated on real training chunks; layers with a large quantisation error stay
  float32) or ``qat`` (int8 classifier from a QAT
  model). The spectrogram front-end always stays float32 (see :func:`convert` for why and how).
* :func:`parity_report` / :func:`format_parity` -- every exported model against the Keras model
  on real chunks: probability differences, top-1 agreement, file-level UAR, size, gzip size.
* :func:`export_run` -- all of it on a finished run directory (``dsplug export RUN_DIR``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import io
import json
import logging
import math
import re
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tensorflow as tf
import tf_keras

from dsplug import __version__
from dsplug import compress
from dsplug.compress import PruneResult, QatResult
from dsplug.errors import DsplugError, ExportError

logger = logging.getLogger(__name__)

Quantize = Literal["none", "dynamic", "float16", "int8", "qat"]

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

#: What a finished run directory must hold for :func:`export_run`.
RUN_FILES = ("recipe.yaml", "model.keras")


# --------------------------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------------------------


def _converter(model: tf_keras.Model, *, samples: int) -> tf.lite.TFLiteConverter:
    """A converter for ``model`` traced with a (1, samples) float32 input, builtin ops only."""
    spec = tf.TensorSpec((1, samples), tf.float32, name="audio")
    function = tf.function(lambda audio: model(audio, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def _conversion_error(err: Exception, *, quantize: str = "none") -> ExportError:
    """An ExportError naming the TensorFlow ops the converter could not express as builtins."""
    ops = sorted(set(re.findall(r"'?tf\.(\w+)'?", str(err))))
    first = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
    if not ops:
        return ExportError(f"TFLite conversion (quantize={quantize!r}) failed: {first}")
    return ExportError(
        f"the model needs TensorFlow ops that TFLite builtins do not provide (ops: {', '.join(ops)}); "
        f"a plugin in the pipeline must be rewritten with builtin-convertible ops. Converter said: {first}"
    )


def _run(converter: tf.lite.TFLiteConverter, *, quantize: str = "none") -> bytes:
    try:
        return converter.convert()
    except Exception as err:  # the converter raises ConverterError with the op list in text
        raise _conversion_error(err, quantize=quantize) from err


def in_quantized_scope(name: str) -> bool:
    """Whether a TFLite tensor name belongs to the classifier sub-model.

    Tensor names are the TensorFlow name scopes of the traced model
    (``dsplug/classifier/mobilenetv2_1.00_224/block_1_expand/Conv2D``); fused ops join several
    names with ``;``.
    """
    return any(QUANTIZED_SCOPE in part.split("/") for part in name.split(";"))


def _check_scope(model: tf_keras.Model, quantize: str) -> None:
    names = [layer.name for layer in model.layers]
    if QUANTIZED_SCOPE not in names:
        raise ExportError(
            f"quantize={quantize!r} quantises only the sub-model named {QUANTIZED_SCOPE!r} (the "
            f"front-end must stay float32), but model {model.name!r} has layers {names}; export a "
            "model built by dsplug.model.build_pipeline (its end_to_end model)"
        )


def _representative(representative: np.ndarray | None, *, samples: int) -> np.ndarray:
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


def convert(
    model: tf_keras.Model,
    *,
    samples: int,
    quantize: Quantize = "none",
    representative: np.ndarray | None = None,
    float_reference: bytes | None = None,
    float_threshold: float | None = INT8_FLOAT_THRESHOLD,
) -> bytes:
    """Convert an audio-in Keras model to a TFLite flatbuffer (batch 1, builtin ops only).

    Input and output stay float32 in every mode: the model takes a raw chunk and returns
    probabilities, whatever happens inside.

    Notes
    -----
    ``none``
        float32 throughout.
    ``float16``
        Weights stored as float16 (half the size), dequantised to float32 when the model is
        loaded; computation in float32. Parity with Keras is within float16 rounding.
    ``dynamic``
        Dynamic-range quantisation: the classifier's Conv2D / DepthwiseConv2D / FullyConnected
        weights are int8 (per channel) and run with hybrid kernels that quantise activations on
        the fly; depthwise filters stay float32 (see :data:`DYNAMIC_FLOAT_OPS`). The front-end's
        Mel projection (a FULLY_CONNECTED on the power spectrum) is put
        back to float32 weights taken from the float32 conversion: a hybrid kernel quantises its
        input per frame to 8 bits, which zeroes every Mel bin more than ~48 dB below the frame's
        peak and ruins the dB image (measured: pixel errors up to 190 of 255, top-1 agreement
        0.39 on the demo). TFLite's converter has no op or node deny-list for dynamic range,
        hence the edit of the flatbuffer (``tensorflow.lite.tools.flatbuffer_utils``).
    ``int8``
        Post-training integer quantisation of the classifier (int8 weights and
        activations), calibrated on ``representative`` chunks (real training audio). The
        front-end stays float32: RFFT2D, FLOOR, CAST have no int8 kernel, and quantising the
        others is wrong for audio (an int8 waveform keeps ~48 dB of the 80 dB the image shows;
        the power spectrum spans ~13 orders of magnitude). With ``supported_ops =
        [TFLITE_BUILTINS_INT8, TFLITE_BUILTINS]`` the converter alone keeps only RFFT2D, REAL,
        IMAG, FLOOR, MINIMUM and CAST float and quantises the rest of the front-end (waveform,
        power spectrum, Mel, LOG; measured: top-1 agreement 0.42 with Keras on the demo's devel
        chunks). So the front-end's nodes are deny-listed with
        ``tf.lite.experimental.QuantizationDebugger`` (TensorFlow's documented selective
        quantisation): every node outside the ``classifier`` sub-model stays float32, one
        QUANTIZE op enters the classifier and one DEQUANTIZE leaves it (measured on the
        from-scratch demo's devel chunks: top-1 agreement 0.95-0.98, max |diff| 0.06-0.10).
        Then the debugger measures every classifier op's quantisation error on the first
        :data:`INT8_DEBUG_CHUNKS` representative chunks, and the ops whose error exceeds
        ``float_threshold`` quantisation steps stay float32 as well (the documented selective
        quantisation; :func:`classifier_float_layers` lists them afterwards). On the ImageNet
        EfficientNet-Lite0 demo these are the stem convolution and the first depthwise
        convolution (errors of 2.6 and 3.7 steps; 0.2-0.7 elsewhere); keeping them float cut
        the mean probability difference to Keras from 0.030 to 0.018 on the test chunks (test
        UAR 0.425 -> 0.454; Keras 0.450) at the same size.
    ``qat``
        ``model`` comes from :func:`dsplug.compress.quantization_aware_finetune`: its
        classifier carries learned fake-quantisation ranges, so the converter makes it int8
        (weights and activations) without calibration data. Weights the converter quantises
        outside the classifier (the front-end's Mel projection) are put back to float32 as
        for ``dynamic``.

    Parameters
    ----------
    model : tf_keras.Model
        Maps (batch, samples) float32 audio to outputs. ``dynamic``, ``int8`` and ``qat`` need
        the pipeline's end-to-end model (a sub-model named ``classifier``); ``qat`` one whose
        classifier is fake-quantised (:attr:`dsplug.compress.QatResult.model`).
    samples : int
        Chunk length in samples (the model's fixed input length).
    quantize : {"none", "dynamic", "float16", "int8", "qat"}
        The quantisation mode.
    representative : np.ndarray [shape=(n, samples), dtype=float32], optional
        Real audio chunks in [-1, 1] for the ``int8`` calibration (100-500 is typical).
    float_reference : bytes, optional
        The ``none`` conversion of the same model (or, for ``qat``, of the model it was
        fine-tuned from), if already at hand: ``dynamic`` and ``qat`` take the front-end's
        float32 weights from it instead of converting a second time.
    float_threshold : float or None
        ``int8``: classifier ops whose quantisation error exceeds this many quantisation steps
        (root-mean-square) stay float32; ``None`` quantises every classifier op (a
        full-integer classifier, e.g. for integer-only accelerators).

    Returns
    -------
    bytes
        The .tflite flatbuffer.

    Raises
    ------
    ExportError
        Unknown mode; missing or malformed representative chunks; a model without a
        ``classifier`` for ``dynamic``/``int8``/``qat``, or without fake-quantisation for
        ``qat``; the graph needs an op outside TFLite's
        builtins (the op is named).
    """
    if quantize not in QUANTIZE_MODES:
        raise ExportError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}")
    if quantize in ("dynamic", "int8", "qat"):
        _check_scope(model, quantize)
    if quantize == "qat" and not _fake_quantised(model):
        raise ExportError(
            f"quantize='qat' needs a quantization-aware fine-tuned model, but the classifier of "
            f"{model.name!r} has no fake-quantisation; pass QatResult.model from "
            "dsplug.compress.quantization_aware_finetune (or use quantize='int8')"
        )
    data = _representative(representative, samples=samples) if quantize == "int8" else None
    converter = _converter(model, samples=samples)
    if quantize == "none":
        return _run(converter)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return _run(converter, quantize=quantize)
    if quantize in ("dynamic", "qat"):
        quantized = _run(converter, quantize=quantize)
        reference = float_reference if float_reference is not None else _run(_converter(model, samples=samples))
        keep_float = DYNAMIC_FLOAT_OPS if quantize == "dynamic" else ()
        return _float_outside_scope(quantized, reference=reference, keep_float=keep_float)
    assert data is not None
    return _int8_classifier(converter, data, float_threshold=float_threshold)


def _fake_quantised(model: tf_keras.Model) -> bool:
    """Whether the ``classifier`` sub-model of ``model`` holds tfmot quantisation wrappers."""
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_wrapper import QuantizeWrapper

    classifier = next(layer for layer in model.layers if layer.name == QUANTIZED_SCOPE)
    return any(isinstance(layer, QuantizeWrapper) for layer in classifier.submodules)


def _int8_classifier(converter: tf.lite.TFLiteConverter, data: np.ndarray, *, float_threshold: float | None) -> bytes:
    """Integer quantisation of the classifier only (the front-end's nodes deny-listed), keeping
    the classifier ops whose per-layer error exceeds ``float_threshold`` float32 too (none when
    ``float_threshold`` is None)."""
    from ai_edge_litert.interpreter import Interpreter

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.inference_input_type = tf.float32
    converter.inference_output_type = tf.float32
    converter.representative_dataset = lambda: ([chunk[None, :]] for chunk in data)
    debug = data[:INT8_DEBUG_CHUNKS]
    try:
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
    except ExportError:
        raise
    except Exception as err:
        raise _conversion_error(err, quantize="int8") from err


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


#: Ops whose weights ``dynamic`` keeps float32 inside the classifier too: XNNPACK (the CPU
#: delegate LiteRT applies by default) has no dynamic-range depthwise kernel, so an int8
#: depthwise filter splits the delegated graph (MobileNetV2: 18 partitions, 2x slower than
#: float32); depthwise filters hold ~1 % of such a network's weights.
DYNAMIC_FLOAT_OPS = ("DEPTHWISE_CONV_2D",)


def _float_outside_scope(flatbuffer: bytes, *, reference: bytes, keep_float: Sequence[str] = DYNAMIC_FLOAT_OPS) -> bytes:
    """Put back the float32 weights of quantised ops outside the classifier (and of the
    ``keep_float`` ops everywhere).

    Parameters
    ----------
    flatbuffer : bytes
        A dynamic-range (or QAT) quantised model.
    reference : bytes
        The float32 conversion of the same model (tensor names match).
    keep_float : sequence of str
        TFLite builtin op names whose weights stay float32 inside the classifier too.
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


def _graph(model: str | Path | bytes) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """The ops (in execution order) and the tensors (by index) of a .tflite model, as written
    (an interpreter without delegates)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs: dict[str, Any] = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    interpreter = Interpreter(**kwargs, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return interpreter._get_ops_details(), tensors  # noqa: SLF001 - the documented way to list ops


def inspect_tflite(model: str | Path | bytes) -> dict[str, Any]:
    """Ops and tensor types of a .tflite model (as written, without delegates).

    Parameters
    ----------
    model : path or bytes
        The .tflite file or its content.

    Returns
    -------
    dict
        ``ops`` (op name -> count), ``float_ops`` / ``int8_ops`` (op name -> count of ops whose
        outputs are float32 / int8), ``custom_ops`` (sorted names of custom or Flex ops: empty for
        a builtin-only model), ``weight_dtypes`` (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED ->
        dtype name of the op's filter input -> count; a float16 model's filters are the float32
        outputs of DEQUANTIZE ops), ``tensor_dtypes`` (dtype name -> count of all tensors).
    """
    from tensorflow.lite.python import schema_py_generated as schema

    builtin = {name for name in vars(schema.BuiltinOperator) if name.isupper() and name != "CUSTOM"}
    graph_ops, tensors = _graph(model)
    ops: Counter[str] = Counter()
    float_ops: Counter[str] = Counter()
    int8_ops: Counter[str] = Counter()
    weights: dict[str, Counter[str]] = {}
    custom: set[str] = set()
    for op in graph_ops:
        name = op["op_name"]
        ops[name] += 1
        out_types = {np.dtype(tensors[i]["dtype"]).name for i in op["outputs"] if i >= 0}
        if "float32" in out_types:
            float_ops[name] += 1
        if "int8" in out_types:
            int8_ops[name] += 1
        if name not in builtin:
            custom.add(name)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op["inputs"]) > 1:
            weights.setdefault(name, Counter())[np.dtype(tensors[op["inputs"][1]]["dtype"]).name] += 1
    return {
        "ops": dict(ops),
        "float_ops": dict(float_ops),
        "int8_ops": dict(int8_ops),
        "custom_ops": sorted(custom),
        "weight_dtypes": {name: dict(count) for name, count in weights.items()},
        "tensor_dtypes": dict(Counter(np.dtype(t["dtype"]).name for t in tensors.values())),
    }


def classifier_float_layers(model: str | Path | bytes) -> list[str]:
    """The classifier layers that compute in float32 in a quantised model, in graph order.

    Read from the flatbuffer: ops inside the classifier (:func:`in_quantized_scope`) whose
    outputs are float32, QUANTIZE and DEQUANTIZE excepted. Meant for ``int8`` and ``qat``
    models, where it lists the ops kept float (in a float32 model every layer is).

    Returns
    -------
    list of str
        Layer paths inside the classifier: ``sub-model/layer`` (e.g.
        ``["efficientnet_lite0/stem_conv"]``), or ``layer`` in a flattened (QAT) classifier.
    """
    graph_ops, tensors = _graph(model)
    layers: list[str] = []
    for op in graph_ops:
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        for index in op["outputs"]:
            tensor = tensors.get(index)
            if tensor is None or np.dtype(tensor["dtype"]) != np.float32:
                continue
            parts = [part.split("/") for part in tensor["name"].split(";") if in_quantized_scope(part)]
            if not parts:
                continue
            path = parts[-1]  # a fused op's last name is its first TensorFlow op (the Conv2D)
            # without the op's own name, and without the ``quant_`` of tfmot's QuantizeWrapper
            layer = "/".join(part.removeprefix("quant_") for part in path[path.index(QUANTIZED_SCOPE) + 1:-1])
            if layer not in layers:
                layers.append(layer)
    return layers


def metadata(
    *,
    recipe: Any,
    classes: list[str],
    recipe_hash: str,
    samples: int,
    quantize: Quantize = "none",
    pruning: Mapping[str, Any] | None = None,
    qat: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The sidecar metadata of an exported model.

    ``quantize`` names the mode; ``pruning`` is ``None`` or ``{"target_sparsity",
    "sparsity", ...}`` (see :class:`dsplug.compress.PruneResult`); ``qat`` is ``None`` or the
    :meth:`dsplug.compress.QatResult.summary` of a ``qat`` model.
    """
    data = recipe.data
    return {
        "format": "dsplug-tflite",
        "dsplug_version": __version__,
        "recipe_hash": recipe_hash,
        "task": data.task,
        "classes": classes,
        "sample_rate": data.sample_rate,
        "chunk_seconds": data.chunk_seconds,
        "hop_seconds": data.hop_seconds or data.chunk_seconds,
        "pad_mode": data.pad_mode,
        "input": {"name": "audio", "shape": [1, samples], "dtype": "float32"},
        "output": {"shape": [1, max(len(classes), 1)], "meaning": "probabilities" if data.task != "regression" else "values"},
        "backbone": recipe.model.backbone.name,
        "quantize": quantize,
        "pruning": dict(pruning) if pruning is not None else None,
        "qat": dict(qat) if qat is not None else None,
    }


def export_model(
    model: tf_keras.Model,
    *,
    path: str | Path,
    meta: dict[str, Any],
    representative: np.ndarray | None = None,
    float_reference: bytes | None = None,
    float_threshold: float | None = INT8_FLOAT_THRESHOLD,
) -> dict[str, Any]:
    """Write ``path`` (.tflite) and its sidecar ``path.with_suffix('.json')``.

    The mode is ``meta["quantize"]`` (default ``none``); ``int8`` needs ``representative``
    chunks and takes ``float_threshold``, ``dynamic`` can reuse the float32 flatbuffer (see
    :func:`convert`). For ``int8`` and ``qat`` the sidecar also lists the classifier layers
    that compute in float32 (``"float_layers"``, :func:`classifier_float_layers`). The
    flatbuffer is written to a temporary file first and renamed, so a failed export leaves no
    half-written model.

    Returns
    -------
    dict
        ``{"path", "bytes", "gzip_bytes", "metadata"}``.
    """
    path = Path(path)
    flatbuffer = convert(
        model,
        samples=int(meta["input"]["shape"][1]),
        quantize=meta.get("quantize", "none"),
        representative=representative,
        float_reference=float_reference,
        float_threshold=float_threshold,
    )
    if meta.get("quantize") in ("int8", "qat"):
        meta = {**meta, "float_layers": classifier_float_layers(flatbuffer)}
    tmp = path.with_suffix(".tflite.part")
    tmp.write_bytes(flatbuffer)
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    logger.info("exported %s (%.2f MB, quantize=%s)", path, len(flatbuffer) / 1e6, meta.get("quantize", "none"))
    return {"path": str(path), "bytes": len(flatbuffer), "gzip_bytes": gzip_size(flatbuffer), "metadata": meta}


def gzip_size(content: bytes) -> int:
    """Bytes of ``content`` compressed with gzip (level 9): what a download or app bundle costs."""
    return len(gzip.compress(content, compresslevel=9, mtime=0))


def tflite_outputs(path: str | Path, audio: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """Run an exported model on chunks with ai-edge-litert.

    Parameters
    ----------
    path : path
        The .tflite model (float32 input (1, samples)).
    audio : np.ndarray [shape=(n_chunks, samples), dtype=float32]
        Chunks.
    threads : int, optional
        Interpreter threads (default: the runtime's choice).

    Returns
    -------
    np.ndarray [shape=(n_chunks, outputs), dtype=float32]
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    results = []
    for chunk in audio:
        interpreter.set_tensor(inp["index"], chunk.reshape(1, -1).astype(np.float32))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(results) if results else np.zeros((0, out["shape"][-1]), np.float32)



# --------------------------------------------------------------------------------------------
# parity
# --------------------------------------------------------------------------------------------


def _file_predictions(outputs: np.ndarray, *, file_index: np.ndarray, file_targets: np.ndarray, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(class of each file, mean chunk probabilities of each file); None unless single-label."""
    from dsplug.evaluate import aggregate_chunks

    if not classes or np.asarray(file_targets).ndim != 1 or len(outputs) == 0:
        return None
    order, probs = aggregate_chunks(file_ids=[str(i) for i in file_index], probs=outputs, method="mean")
    files = np.array([int(i) for i in order])
    return np.asarray(file_targets)[files], probs


def _file_metrics(predictions: tuple[np.ndarray, np.ndarray] | None, *, classes: Sequence[str]) -> dict[str, float] | None:
    """File-level UAR and accuracy of :func:`_file_predictions`; None without predictions."""
    from dsplug.evaluate import classification_metrics

    if predictions is None:
        return None
    truth, probs = predictions
    metrics = classification_metrics(y_true=truth, probs=probs, labels=list(classes))
    return {"uar": metrics["uar"], "accuracy": metrics["accuracy"]}


def parity_report(
    *,
    keras_model: tf_keras.Model,
    tflite_paths: Mapping[str, str | Path],
    audio: np.ndarray,
    file_index: np.ndarray,
    file_targets: np.ndarray,
    classes: Sequence[str],
    batch_size: int = 32,
) -> dict[str, Any]:
    """Compare TFLite models with the Keras model they were converted from, on real chunks.

    Parameters
    ----------
    keras_model : tf_keras.Model
        The float32 reference (audio -> outputs).
    tflite_paths : mapping of str to path
        Label (e.g. the quantisation mode) -> .tflite file.
    audio : np.ndarray [shape=(n_chunks, samples), dtype=float32]
        Chunks (e.g. the devel partition's).
    file_index : np.ndarray [shape=(n_chunks,), dtype=int]
        File of each chunk (index into ``file_targets``).
    file_targets : np.ndarray [shape=(n_files,), dtype=int]
        Class index of each file (other shapes: no UAR is computed).
    classes : sequence of str
        Class names (empty for regression: no UAR).
    batch_size : int
        Keras inference batch size.

    Returns
    -------
    dict
        ``chunks``, ``files``, ``keras`` (``{"uar", "accuracy"}`` or None) and ``models``:
        label -> ``{"file", "bytes", "gzip_bytes", "max_abs_diff", "mean_abs_diff",
        "top1_agreement", "uar", "accuracy", "uar_change", "uar_change_ci95"}`` (differences
        against ``keras_model``; UAR and accuracy at file level, None when not single-label;
        ``uar_change`` is the model's UAR minus Keras', ``uar_change_ci95`` its paired
        bootstrap interval, :func:`dsplug.evaluate.paired_uar_difference`).
    """
    from dsplug.evaluate import paired_uar_difference
    from dsplug.model import predict_batches as predict

    audio = np.asarray(audio, dtype=np.float32)
    reference = predict(keras_model, audio, batch_size=batch_size)
    reference_files = _file_predictions(reference, file_index=file_index, file_targets=file_targets, classes=classes)
    report: dict[str, Any] = {
        "chunks": int(len(audio)),
        "files": int(len(np.unique(file_index))),
        "keras": _file_metrics(reference_files, classes=classes),
        "models": {},
    }
    for label, path in tflite_paths.items():
        content = Path(path).read_bytes()
        outputs = tflite_outputs(path, audio)
        diff = np.abs(outputs - reference)
        row: dict[str, Any] = {
            "file": Path(path).name,
            "bytes": len(content),
            "gzip_bytes": gzip_size(content),
            "max_abs_diff": float(diff.max()) if diff.size else 0.0,
            "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
            "top1_agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))) if len(audio) else 1.0,
        }
        files = _file_predictions(outputs, file_index=file_index, file_targets=file_targets, classes=classes)
        row.update(_file_metrics(files, classes=classes) or {"uar": None, "accuracy": None})
        row.update(uar_change=None, uar_change_ci95=None)
        if files is not None and reference_files is not None:
            change = paired_uar_difference(
                y_true=files[0], pred_a=reference_files[1].argmax(1), pred_b=files[1].argmax(1), n_classes=len(classes)
            )
            row.update(uar_change=change["difference"], uar_change_ci95=change["ci95"])
        report["models"][label] = row
    return report


def format_parity(report: Mapping[str, Any], *, title: str = "Keras (float32)") -> str:
    """A Markdown table of a :func:`parity_report`: one row for Keras, one per TFLite model."""

    def number(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    keras = report.get("keras") or {}
    lines = [
        f"Parity on {report['chunks']} chunks of {report['files']} files (UAR and accuracy at file "
        "level; UAR change in points against Keras, with the 95 % interval of a paired bootstrap "
        "over the files).",
        "",
        "| model | file | size (MB) | gzip (MB) | max abs diff | mean abs diff | top-1 agreement | UAR | UAR change (points) | accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {title} | – | – | – | – | – | – | {number(keras.get('uar'))} | – | {number(keras.get('accuracy'))} |",
    ]
    for label, row in report["models"].items():
        lines.append(
            f"| {label} | `{row['file']}` | {row['bytes'] / 1e6:.2f} | {row['gzip_bytes'] / 1e6:.2f} | "
            f"{row['max_abs_diff']:.2e} | {row['mean_abs_diff']:.2e} | {row['top1_agreement']:.3f} | "
            f"{number(row['uar'])} | {_points(row.get('uar_change'), row.get('uar_change_ci95'))} | {number(row['accuracy'])} |"
        )
    return "\n".join(lines)


def _points(change: float | None, interval: Sequence[float | None] | None) -> str:
    """``+4.0 (-1.6 to +10.5)``: a UAR change and its interval in points; ``–`` when absent."""
    if change is None:
        return "–"
    text = f"{100 * change:+.1f}"
    if interval and None not in interval:
        low, high = interval
        text += f" ({100 * low:+.1f} to {100 * high:+.1f})"  # type: ignore[operator]
    return text


# --------------------------------------------------------------------------------------------
# a finished run directory
# --------------------------------------------------------------------------------------------


def _progress(progress: Any, *, total: int, description: str) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    return progress(total=total, description=description) if progress else contextlib.nullcontext(lambda done: None)


def model_file_name(quantize: str, *, pruned: bool) -> str:
    """``model.tflite``, ``model-int8.tflite``, ``model-pruned.tflite``, ``model-pruned-int8.tflite``..."""
    parts = ["model"] + (["pruned"] if pruned else []) + ([quantize] if quantize != "none" else [])
    return "-".join(parts) + ".tflite"


@dataclasses.dataclass
class RunModel:
    """A finished run directory's recipe point, data manifest and rebuilt, trained pipeline."""

    point: Any
    manifest: Any
    pipeline: Any
    classes: list[str]
    samples: int


def load_run(run_dir: str | Path) -> RunModel:
    """Rebuild a finished run's pipeline and load its trained weights (``model.keras``).

    The pipeline is built from ``run_dir/recipe.yaml`` with ``model.backbone.weights`` set to
    ``none`` (the trained weights replace any initialisation, and no pretrained file is
    needed), then the weights of ``model.keras`` are loaded into it.

    Raises
    ------
    ExportError
        ``run_dir`` lacks ``recipe.yaml`` or ``model.keras``, or the weights do not fit.
    """
    from dsplug import data as data_stage
    from dsplug.model import build_pipeline, chunk_samples
    from dsplug.recipe.loader import load_recipe

    run_dir = Path(run_dir)
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise ExportError(
            f"{run_dir} is not a finished dsplug run directory (missing {', '.join(missing)}); run "
            "`dsplug run RECIPE --out DIR` first and export DIR"
        )
    [point] = load_recipe(run_dir / "recipe.yaml")
    recipe = point.recipe
    manifest = data_stage.load_manifest(
        recipe.data.manifest, task=recipe.data.task, classes=recipe.data.classes,
        split=(recipe.data.split.devel, recipe.data.split.test), seed=recipe.seed,
    )
    build_recipe = recipe.model_copy(deep=True)
    build_recipe.model.backbone.weights = "none"
    pipeline = build_pipeline(build_recipe, num_outputs=max(len(manifest.classes), 1))
    try:
        pipeline.end_to_end.load_weights(str(run_dir / "model.keras"))
    except Exception as err:
        raise ExportError(
            f"{run_dir / 'model.keras'} does not fit the model of {run_dir / 'recipe.yaml'} ({err}); "
            "was the run directory's recipe edited after training? Re-run `dsplug run`"
        ) from err
    return RunModel(point=point, manifest=manifest, pipeline=pipeline, classes=list(manifest.classes), samples=chunk_samples(recipe))


def _decode(items: Sequence[Any], recipe: Any, progress: Any, description: str) -> Any:
    from dsplug import data as data_stage

    data = recipe.data
    with _progress(progress, total=len(items), description=description) as update:
        return data_stage.decode_chunks(
            items, sample_rate=data.sample_rate, chunk_seconds=data.chunk_seconds,
            hop_seconds=data.hop_seconds or data.chunk_seconds, pad_mode=data.pad_mode,
            on_bad_file="skip", progress=update,
        )


def representative_chunks(chunks: np.ndarray, *, size: int, seed: int) -> np.ndarray:
    """A seeded random subset of ``size`` chunks (all of them if fewer), in their original order."""
    if len(chunks) <= size:
        return chunks
    rng = np.random.default_rng(seed)
    return chunks[np.sort(rng.choice(len(chunks), size=size, replace=False))]


def export_run(
    run_dir: str | Path,
    *,
    quantize: Sequence[str] = ("none",),
    prune: float | None = None,
    representative_size: int = 200,
    prune_epochs: int = 6,
    prune_lr: float = 1e-4,
    qat_epochs: int = 3,
    qat_lr: float = 1e-5,
    int8_float_threshold: float | None = INT8_FLOAT_THRESHOLD,
    progress: Any = None,
) -> dict[str, Any]:
    """Export a finished run: quantised (and optionally pruned) TFLite models with a parity report.

    Writes into ``run_dir``: ``model.tflite`` (float32) and ``model-<mode>.tflite`` for each
    other requested mode, each with its sidecar ``.json`` (``"quantize"`` names the mode);
    with ``prune``: ``model-pruned.keras``, ``model-pruned.tflite`` and
    ``model-pruned-<mode>.tflite`` too; ``export.json`` (files, sizes, parity, pruning, QAT)
    and ``export.md`` (the parity tables). Everything is written to a temporary folder inside
    ``run_dir`` and moved into place only when all of it succeeded.

    ``int8`` is calibrated on ``representative_size`` chunks drawn (seeded) from the train
    partition, and keeps the classifier ops whose quantisation error exceeds
    ``int8_float_threshold`` float32 (see :func:`convert`); ``prune`` and ``qat`` fine-tune on the whole train partition (``qat`` of the
    pruned model keeps its zeros); parity is measured on the devel partition (test where there
    is no devel), every model against the float32 Keras model it came from.

    Parameters
    ----------
    run_dir : path
        A directory written by ``dsplug run`` (``recipe.yaml``, ``model.keras``).
    quantize : sequence of {"none", "dynamic", "float16", "int8", "qat"}
        Modes to export; ``none`` (float32) is always exported.
    prune : float, optional
        Target sparsity in (0, 1) of the classifier's kernels.
    representative_size : int
        Calibration chunks for ``int8``.
    prune_epochs, qat_epochs : int
        Fine-tuning epochs while pruning / of quantization-aware training.
    prune_lr, qat_lr : float
        Adam learning rates of those fine-tunes.
    int8_float_threshold : float or None
        ``int8``: error limit in quantisation steps above which a classifier op stays float32;
        ``None`` for a full-integer classifier.
    progress : callable, optional
        ``progress(total=, description=)`` -> context manager yielding ``update(done)``.

    Returns
    -------
    dict
        The content of ``export.json``.

    Raises
    ------
    ExportError
        Not a finished run directory; unknown mode; bad sparsity or epochs; conversion failures.
    """
    modes = ["none"] + [m for m in QUANTIZE_MODES[1:] if m in quantize]
    unknown = [m for m in quantize if m not in QUANTIZE_MODES]
    if unknown:
        raise ExportError(f"unknown quantize mode(s) {unknown}; choose from {', '.join(QUANTIZE_MODES)}")
    if prune is not None and not 0.0 < prune < 1.0:
        raise ExportError(f"--prune must be a sparsity in (0, 1), got {prune!r}; e.g. --prune 0.5")
    if representative_size < 1:
        raise ExportError(f"representative_size must be >= 1, got {representative_size}")
    if int8_float_threshold is not None and not int8_float_threshold > 0:
        raise ExportError(
            f"--int8-float-threshold must be > 0 quantisation steps, got {int8_float_threshold!r}; e.g. "
            f"{INT8_FLOAT_THRESHOLD} (the default), or --full-integer to quantise every classifier layer"
        )
    if "qat" in modes and qat_epochs < 1:
        raise ExportError(f"quantize 'qat' needs qat_epochs >= 1, got {qat_epochs}; e.g. --qat-epochs 3")
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    recipe, manifest, pipeline = run.point.recipe, run.manifest, run.pipeline
    integer = [m for m in modes if m in ("int8", "qat")]
    if integer and pipeline.input_kind == "audio":
        raise ExportError(
            f"--quantize {integer[0]}: full-integer conversion of the raw-audio backbone "
            f"{recipe.model.backbone.name!r} crashes TensorFlow 2.21's converter; use --quantize dynamic "
            "(int8 weights) or float16"
        )
    fine_tune = prune is not None or "qat" in modes
    train_items = manifest.partition("train")
    parity_name = "devel" if manifest.partition("devel") else "test"
    parity_chunks = _decode(manifest.partition(parity_name), recipe, progress, f"decoding {parity_name}")
    if not fine_tune:
        rng = np.random.default_rng(recipe.seed)
        picked = rng.permutation(len(train_items))[:representative_size]
        train_items = [train_items[i] for i in sorted(picked)]
    train_chunks = _decode(train_items, recipe, progress, "decoding train")
    representative = representative_chunks(train_chunks.audio, size=representative_size, seed=recipe.seed)
    file_targets = manifest.targets(parity_chunks.files)

    fit: dict[str, Any] = {}
    if fine_tune:
        from dsplug.data import Split

        targets = manifest.targets(train_chunks.files)
        if recipe.data.task == "classification":
            targets = np.eye(len(manifest.classes), dtype=np.float32)[targets]
        devel = None
        if parity_name == "devel":
            devel = Split(
                audio=parity_chunks.audio, targets=np.zeros((len(parity_chunks.audio), 1), np.float32),
                file_index=parity_chunks.file_index, file_targets=file_targets,
            )
        fit = dict(
            audio=train_chunks.audio, targets=targets[train_chunks.file_index], task=recipe.data.task,
            batch_size=recipe.train.batch_size, seed=recipe.seed, devel=devel,
        )

    # (pruned?, float32 Keras model, pruning facts, QAT result)
    sources: list[tuple[bool, tf_keras.Model, dict[str, Any] | None, QatResult | None]] = []
    pruned: PruneResult | None = None
    with _progress(progress, total=(prune is not None) + (1 + (prune is not None)) * ("qat" in modes), description="fine-tuning") as update:
        done = 0
        qat = None
        if "qat" in modes:
            qat = compress.quantization_aware_finetune(pipeline, epochs=qat_epochs, lr=qat_lr, **fit)
            done += 1
            update(done)
        sources.append((False, pipeline.end_to_end, None, qat))
        if prune is not None:
            pruned = compress.prune(pipeline, sparsity=prune, epochs=prune_epochs, lr=prune_lr, **fit)
            done += 1
            update(done)
            pruned_qat = None
            if "qat" in modes:
                pruned_qat = compress.quantization_aware_finetune(
                    pipeline, classifier=pruned.classifier, prune_preserving=True, epochs=qat_epochs, lr=qat_lr, **fit
                )
                done += 1
                update(done)
            sources.append((True, pruned.model, pruned.summary(), pruned_qat))

    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=run_dir))
    try:
        written: dict[str, dict[str, Any]] = {}
        reports: dict[str, Any] = {}
        with _progress(progress, total=len(sources) * len(modes), description="converting") as update:
            for is_pruned, model, pruning, qat_result in sources:
                paths: dict[str, Path] = {}
                for mode in modes:
                    name = model_file_name(mode, pruned=is_pruned)
                    qat_facts = qat_result.summary() if mode == "qat" and qat_result is not None else None
                    meta = metadata(
                        recipe=recipe, classes=run.classes, recipe_hash=run.point.hash, samples=run.samples,
                        quantize=mode, pruning=pruning, qat=qat_facts,  # type: ignore[arg-type]
                    )
                    written[name] = export_model(
                        qat_result.model if mode == "qat" and qat_result is not None else model,
                        path=tmp / name, meta=meta, representative=representative,
                        float_reference=paths["none"].read_bytes() if "none" in paths else None,
                        float_threshold=int8_float_threshold,
                    )
                    paths[mode] = tmp / name
                    update(len(written))
                reports["pruned" if is_pruned else "original"] = parity_report(
                    keras_model=model, tflite_paths=paths, audio=parity_chunks.audio,
                    file_index=parity_chunks.file_index, file_targets=file_targets, classes=run.classes,
                    batch_size=recipe.train.batch_size,
                )
        if pruned is not None:
            pruned.model.save(tmp / "model-pruned.keras")
        qat_summaries = {
            ("pruned" if is_pruned else "original"): qat_result.summary()
            for is_pruned, _, _, qat_result in sources if qat_result is not None
        }
        result = _export_summary(
            run_dir, written=written, reports=reports, parity_name=parity_name, pruned=pruned,
            representative=len(representative), qat=qat_summaries or None,
            int8_float_threshold=int8_float_threshold,
        )
        (tmp / "export.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        (tmp / "export.md").write_text(_export_markdown(result), encoding="utf-8")
        for item in sorted(tmp.iterdir()):
            if not item.name.endswith(".part"):
                item.replace(run_dir / item.name)
    except DsplugError:
        raise
    except Exception as err:
        raise ExportError(f"export of {run_dir} failed: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported %d model(s) into %s", len(written), run_dir)
    return result


def _export_summary(run_dir: Path, *, written: dict[str, dict[str, Any]], reports: dict[str, Any], parity_name: str, pruned: PruneResult | None, representative: int, qat: dict[str, Any] | None, int8_float_threshold: float | None) -> dict[str, Any]:
    """export.json: the float32 model first (keys of ``dsplug run``'s export.json), then all models."""
    fp32 = written["model.tflite"]
    fp32_row = reports["original"]["models"]["none"]
    return {
        "path": str(run_dir / "model.tflite"),
        "bytes": fp32["bytes"],
        "metadata": fp32["metadata"],
        "parity_fp32": {
            "chunks": reports["original"]["chunks"],
            "max_abs_diff": fp32_row["max_abs_diff"],
            "top1_agreement": fp32_row["top1_agreement"],
        },
        "models": {
            name: {
                "path": str(run_dir / name),
                "quantize": info["metadata"]["quantize"],
                "pruned": info["metadata"]["pruning"] is not None,
                "bytes": info["bytes"],
                "gzip_bytes": info["gzip_bytes"],
                "float_layers": info["metadata"].get("float_layers"),
            }
            for name, info in written.items()
        },
        "parity": {"partition": parity_name, **reports},
        "representative_chunks": representative,
        "int8_float_threshold": int8_float_threshold,
        "pruning": pruned.summary() if pruned is not None else None,
        "qat": qat,
    }


def _export_markdown(result: Mapping[str, Any]) -> str:
    parity = result["parity"]
    lines = ["# Export", "", f"Parity against Keras on the {parity['partition']} partition.", ""]
    lines += ["## Trained model", "", format_parity(parity["original"]), ""]
    for name, model in result["models"].items():
        if model["quantize"] != "int8":
            continue
        threshold = result.get("int8_float_threshold")
        floats = ", ".join(f"`{layer}`" for layer in model.get("float_layers") or []) or "none"
        rule = (
            f"classifier layers whose quantisation error exceeded {threshold:g} steps stay float32"
            if threshold is not None else "full-integer classifier"
        )
        lines += [f"`{name}`: {rule}; float32 layers: {floats}.", ""]
    for source, facts in (result.get("qat") or {}).items():
        floats = ", ".join(f"`{name}`" for name in facts["float_layers"]) or "none"
        lines += [
            f"QAT ({source}): quantization-aware fine-tuning kept epoch {facts['epoch']} of "
            f"{len(facts['losses'])}; layers computed in float32: {floats}.",
            "",
        ]
    if "pruned" in parity:
        p = result["pruning"]
        lines += [
            f"## Pruned to {p['sparsity']:.1%} sparsity (target {p['target_sparsity']:.0%}, "
            f"{p['pruned_layers']} layers, {p['pruned_weights']:,} weights)",
            "",
            "Differences are against the pruned Keras model (`model-pruned.keras`).",
            "",
            format_parity(parity["pruned"], title="Keras pruned (float32)"),
            "",
        ]
    return "\n".join(lines)
