"""Conversion of an audio-in Keras model to TFLite with builtin ops only, and writing it.

The model's input is one raw mono chunk, float32, shape (1, samples) at the recipe's sample
rate; its output the class probabilities (1, n_classes), in every quantisation mode. Every
written model carries its :class:`~dsplug.artifacts.ModelMetadata` inside, as standard TFLite
Model Metadata (what MediaPipe Tasks reads), so the ``.tflite`` alone runs anywhere; the sidecar
JSON next to it (``model.json``, ``model-int8.json``, ...) is the same description, for people
and older tools.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from dsplug.artifacts import ModelMetadata, Quantize, tflite_metadata, write_atomic
from dsplug.deploy.inspect import classifier_float_layers
from dsplug.deploy.quantize import (
    DYNAMIC_FLOAT_OPS,
    INT8_FLOAT_THRESHOLD,
    QUANTIZE_MODES,
    check_scope,
    float_outside_scope,
    int8_classifier,
    is_fake_quantised,
    representative_audio,
)
from dsplug.errors import ExportError
from dsplug.recipe.spec import PipelineSpec

logger = logging.getLogger(__name__)


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
        the fly; depthwise filters stay float32 (see
        :data:`dsplug.deploy.quantize.DYNAMIC_FLOAT_OPS`). The front-end's Mel projection (a
        FULLY_CONNECTED on the power spectrum) is put back to float32 weights taken from the
        float32 conversion: a hybrid kernel quantises its input per frame to 8 bits, which
        zeroes every Mel bin more than ~48 dB below the frame's peak and ruins the dB image; see
        :func:`dsplug.deploy.quantize.float_outside_scope`.
    ``int8``
        Post-training integer quantisation of the classifier (int8 weights and
        activations), calibrated on ``representative`` chunks (real training audio). The
        front-end stays float32: RFFT2D, FLOOR, CAST have no int8 kernel, and quantising the
        others is wrong for audio (an int8 waveform keeps ~48 dB of the 80 dB the image shows;
        the power spectrum spans ~13 orders of magnitude). With ``supported_ops =
        [TFLITE_BUILTINS_INT8, TFLITE_BUILTINS]`` the converter alone keeps only RFFT2D, REAL,
        IMAG, FLOOR, MINIMUM and CAST float and quantises the rest of the front-end (waveform,
        power spectrum, Mel, LOG), which loses the image. So the front-end's nodes are
        deny-listed with ``tf.lite.experimental.QuantizationDebugger`` (TensorFlow's documented
        selective quantisation): every node outside the ``classifier`` sub-model stays float32,
        one QUANTIZE op enters the classifier and one DEQUANTIZE leaves it. Then the debugger
        measures every classifier op's quantisation error on the first
        :data:`~dsplug.deploy.quantize.INT8_DEBUG_CHUNKS` representative chunks, and the ops
        whose error exceeds ``float_threshold`` quantisation steps stay float32 as well
        (:func:`dsplug.deploy.quantize.int8_classifier`;
        :func:`dsplug.deploy.inspect.classifier_float_layers` lists them afterwards; what that
        keeps float, and its effect, is measured in docs/benchmarks.md).
    ``qat``
        ``model`` comes from :func:`dsplug.deploy.qat.quantization_aware_finetune`: its
        classifier carries learned fake-quantisation ranges, so the converter makes it int8
        (weights and activations) without calibration data. Weights the converter quantises
        outside the classifier (the front-end's Mel projection) are put back to float32 as
        for ``dynamic``.

    Parameters
    ----------
    model : tf_keras.Model
        Maps (batch, samples) float32 audio to outputs. ``dynamic``, ``int8`` and ``qat`` need
        the pipeline's end-to-end model (a sub-model named ``classifier``); ``qat`` one whose
        classifier is fake-quantised (:attr:`dsplug.deploy.qat.QatResult.model`).
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
        ``qat``; the graph needs an op outside TFLite's builtins (the op is named).
    """
    if quantize not in QUANTIZE_MODES:
        raise ExportError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}")
    if quantize in ("dynamic", "int8", "qat"):
        check_scope(model, quantize)
    if quantize == "qat" and not is_fake_quantised(model):
        raise ExportError(
            f"quantize='qat' needs a quantization-aware fine-tuned model, but the classifier of "
            f"{model.name!r} has no fake-quantisation; pass QatResult.model from "
            "dsplug.deploy.qat.quantization_aware_finetune (or use quantize='int8')"
        )
    data = representative_audio(representative, samples=samples) if quantize == "int8" else None
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
        return float_outside_scope(quantized, reference=reference, keep_float=keep_float)
    assert data is not None
    try:
        return int8_classifier(converter, data, float_threshold=float_threshold)
    except ExportError:
        raise
    except Exception as err:  # the converter and the debugger raise their own types
        raise _conversion_error(err, quantize="int8") from err


def model_metadata(
    spec: PipelineSpec,
    *,
    classes: Sequence[str],
    recipe_hash: str,
    quantize: Quantize = "none",
    pruning: Mapping[str, Any] | None = None,
    qat: Mapping[str, Any] | None = None,
) -> ModelMetadata:
    """The metadata of a model built from ``spec`` (:attr:`dsplug.pipeline.Pipeline.spec`).

    ``quantize`` names the mode; ``pruning`` is ``None`` or
    :meth:`dsplug.deploy.prune.PruneResult.summary`; ``qat`` is ``None`` or the
    :meth:`dsplug.deploy.qat.QatResult.summary` of a ``qat`` model.
    """
    return ModelMetadata.for_model(
        name=spec.name, task=spec.task, classes=classes, sample_rate=spec.sample_rate,
        chunk_seconds=spec.chunk_seconds, hop_seconds=spec.hop_seconds, pad_mode=spec.pad_mode,
        backbone=spec.backbone_name, recipe_hash=recipe_hash, quantize=quantize, pruning=pruning, qat=qat,
    )


def export_model(
    model: tf_keras.Model,
    *,
    path: str | Path,
    meta: ModelMetadata,
    representative: np.ndarray | None = None,
    float_reference: bytes | None = None,
    float_threshold: float | None = INT8_FLOAT_THRESHOLD,
) -> dict[str, Any]:
    """Convert ``model`` and write ``path`` (.tflite, metadata inside) and its sidecar ``path.with_suffix('.json')``.

    The mode is ``meta.quantize``; ``int8`` needs ``representative`` chunks and takes
    ``float_threshold``, ``dynamic`` can reuse the float32 flatbuffer (see :func:`convert`).
    For ``int8`` and ``qat`` the metadata also lists the classifier layers that compute in
    float32 (``float_layers``, :func:`dsplug.deploy.inspect.classifier_float_layers`). The
    metadata is embedded (:meth:`dsplug.artifacts.ModelMetadata.to_tflite`) and the sidecar
    written from the same :class:`~dsplug.artifacts.ModelMetadata`. Both files are written
    atomically, so a failed export leaves no half-written model.

    Raises
    ------
    ExportError
        Conversion fails, or the converted model is one a runtime could not use (integer
        input or output, an output width other than the classes): nothing is written then.

    Returns
    -------
    dict
        ``{"path", "bytes", "gzip_bytes", "metadata"}`` (``metadata``: the sidecar's content).
    """
    path = Path(path)
    flatbuffer = convert(
        model, samples=meta.samples, quantize=meta.quantize, representative=representative,
        float_reference=float_reference, float_threshold=float_threshold,
    )
    if meta.quantize in ("int8", "qat"):
        meta = meta.model_copy(update={"float_layers": classifier_float_layers(flatbuffer)})
    source = f"{path.name} (quantize={meta.quantize})"
    meta = meta.model_copy(update={"weights_sha256": tflite_metadata.weights_digest(flatbuffer, source=source)})  # the sidecar records it too
    tagged = meta.to_tflite(flatbuffer, source=source)
    write_atomic(path, tagged)
    write_atomic(path.with_suffix(".json"), meta.to_json())
    logger.info("exported %s (%.2f MB, quantize=%s)", path, len(tagged) / 1e6, meta.quantize)
    return {
        "path": str(path), "bytes": len(tagged), "gzip_bytes": gzip_size(tagged),
        "metadata": meta.model_dump(mode="json"),
    }


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
