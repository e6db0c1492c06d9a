"""The deploy stage: a trained pipeline to TFLite (prune -> quantize -> TFLite), with parity.

The whole pipeline is exported, audio chunk in, outputs out, with TFLite builtin ops only; the
spectrogram front-end always stays float32 and only the ``classifier`` sub-model is quantised.

Modules
-------
:mod:`~dsplug.deploy.convert`
    :func:`~dsplug.deploy.convert.convert` (a Keras model to a flatbuffer in one of
    :data:`QUANTIZE_MODES`: ``none``, ``dynamic``, ``float16``, ``int8``, ``qat``),
    :func:`export_model` (a ``.tflite`` with its :class:`~dsplug.artifacts.ModelMetadata`
    inside, and the same as a sidecar), :func:`tflite_outputs`, :func:`gzip_size`.
:mod:`~dsplug.deploy.quantize`
    The int8 scope (:func:`in_quantized_scope`), selective int8 with TensorFlow's
    QuantizationDebugger (ops above :data:`INT8_FLOAT_THRESHOLD` quantisation steps stay
    float32), float32 weights outside the scope.
:mod:`~dsplug.deploy.inspect`
    :func:`inspect_tflite` (ops and tensor types), :func:`classifier_float_layers`.
:mod:`~dsplug.deploy.prune`, :mod:`~dsplug.deploy.qat`
    :func:`~dsplug.deploy.prune.prune` (magnitude pruning during a short fine-tune) and
    :func:`quantization_aware_finetune` (QAT of the classifier).
:mod:`~dsplug.deploy.parity`
    :func:`parity_report` and :func:`format_parity`: every exported model against Keras.
:mod:`~dsplug.deploy.export`
    :func:`export_run` on a finished :class:`~dsplug.artifacts.RunDir` (``dsplug export``),
    with the settings :func:`export_config` builds from the run's recipe and the options.
:mod:`~dsplug.deploy.web`
    :func:`~dsplug.deploy.web.write_web_app`: the static page of ``dsplug export --web DIR``
    (MediaPipe's audio task in the browser; page files in ``dsplug/deploy/webapp``).
:mod:`~dsplug.deploy.mediapipe`
    :func:`~dsplug.deploy.mediapipe.mediapipe_parity`: exported models in MediaPipe's Python
    ``AudioClassifier`` (run in its own venv by :mod:`~dsplug.deploy.mediapipe_worker`) against
    ``dsplug predict``.

Every written ``.tflite`` carries its :class:`~dsplug.artifacts.ModelMetadata` as standard
TFLite Model Metadata (:meth:`~dsplug.artifacts.ModelMetadata.to_tflite`).

``convert`` and ``prune`` are both a module and its main function: import the function from
its module (``from dsplug.deploy.convert import convert``).

Examples
--------
>>> from dsplug.artifacts import RunDir  # doctest: +SKIP
>>> run = RunDir("runs/demo")  # doctest: +SKIP
>>> result = export_run(run, config=export_config(run, quantize=["int8"]))  # doctest: +SKIP
>>> result["models"]["model-int8.tflite"]["bytes"]  # doctest: +SKIP
"""

from dsplug.deploy.convert import export_model, gzip_size, model_metadata, tflite_outputs
from dsplug.deploy.export import export_config, export_run, representative_chunks
from dsplug.deploy.inspect import classifier_float_layers, inspect_tflite
from dsplug.deploy.parity import format_parity, parity_report
from dsplug.deploy.prune import PruneResult, kernel_sparsity
from dsplug.deploy.qat import QatResult, flatten, quantization_aware_finetune
from dsplug.deploy.quantize import INT8_FLOAT_THRESHOLD, QUANTIZE_MODES, in_quantized_scope

__all__ = [
    "INT8_FLOAT_THRESHOLD",
    "QUANTIZE_MODES",
    "PruneResult",
    "QatResult",
    "classifier_float_layers",
    "export_config",
    "export_model",
    "export_run",
    "flatten",
    "format_parity",
    "gzip_size",
    "in_quantized_scope",
    "inspect_tflite",
    "kernel_sparsity",
    "model_metadata",
    "parity_report",
    "quantization_aware_finetune",
    "representative_chunks",
    "tflite_outputs",
]
