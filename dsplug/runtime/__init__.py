"""The on-device runtime: run an exported model on files, folders, streams and the microphone; benchmark it.

An exported model is one ``.tflite`` file that describes itself: labels, sample rate, chunk and
hop length and provenance are inside it as standard TFLite Model Metadata
(:class:`dsplug.artifacts.ModelMetadata`); a ``model.json`` sidecar beside it is optional. The model takes one raw mono chunk and returns class
probabilities (or values); the whole front-end runs inside it, so the runtime only decodes,
resamples and cuts audio. It imports neither TensorFlow nor librosa nor any training code:
numpy, soundfile, ai-edge-litert, :mod:`dsplug.audio` and :mod:`dsplug.artifacts` suffice.

Examples
--------
>>> from dsplug.runtime import bench, load_model, predict_batch, predict_files, stream_file
>>> model = load_model("runs/demo/model.tflite")  # doctest: +SKIP
>>> [p] = predict_files(model, ["data/tones/audio/spk5_0001_T3.ogg"])  # doctest: +SKIP
>>> p.label, p.probabilities.round(2)  # doctest: +SKIP
('T3', array([0.04, 0.1 , 0.71, 0.1 , 0.05]))
>>> batch = predict_batch(model, ["data/tones/audio"])  # every core; bad files skipped  # doctest: +SKIP
>>> len(batch.predictions), batch.notes  # doctest: +SKIP
(624, ('resampled 624 files from 44.1 kHz to 16 kHz',))
>>> summary = stream_file(model, "data/drums/audio/kick_soft01.ogg", realtime=False)  # doctest: +SKIP
>>> bench("runs/demo/model.tflite", threads=1)["latency_ms"]  # doctest: +SKIP

The package exports what an application uses (:data:`__all__`); the command line's formatters
are in :mod:`dsplug.runtime.output` (tables, CSV, JSON), :mod:`dsplug.runtime.stream` and
:mod:`dsplug.runtime.bench`.
"""

import importlib
import warnings
from typing import Any

from dsplug.runtime.batch import BatchPrediction, SkippedFile, predict_batch
from dsplug.runtime.bench import bench
from dsplug.runtime.model import Model, load_model
from dsplug.runtime.predict import AUDIO_EXTENSIONS, FilePrediction, collect_audio_files, predict_files, predict_signal
from dsplug.runtime.stream import StreamResult, StreamSummary, Streamer, stream_file, stream_microphone

__all__ = [
    "AUDIO_EXTENSIONS",
    "BatchPrediction",
    "FilePrediction",
    "Model",
    "SkippedFile",
    "StreamResult",
    "StreamSummary",
    "Streamer",
    "bench",
    "collect_audio_files",
    "load_model",
    "predict_batch",
    "predict_files",
    "predict_signal",
    "stream_file",
    "stream_microphone",
]

#: Names this package exported before it kept to :data:`__all__`, and the module that has them.
MOVED = {
    "check_top_k": "output", "format_batch_summary": "output", "format_class_counts": "output",
    "format_predictions": "output", "format_skipped": "output", "predictions_json": "output",
    "top_labels": "output", "write_predictions_csv": "output", "default_jobs": "batch",
    "count_parameters": "bench", "format_bench": "bench", "Adjustment": "predict",
    "find_audio_files": "predict", "predict_file": "predict", "format_stream_result": "stream",
    "format_stream_summary": "stream",
}


def __getattr__(name: str) -> Any:
    """An old name still works, with a DeprecationWarning that says where it is now."""
    if name in MOVED:
        module = f"dsplug.runtime.{MOVED[name]}"
        warnings.warn(f"dsplug.runtime.{name} is {module}.{name} now", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'dsplug.runtime' has no attribute {name!r}")
