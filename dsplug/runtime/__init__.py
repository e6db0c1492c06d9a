"""The on-device runtime: run an exported model on files, folders, streams and the microphone; benchmark it.

An exported model is one ``.tflite`` file that describes itself: labels, sample rate, chunk and
hop length and provenance are inside it as standard TFLite Model Metadata
(:class:`dsplug.artifacts.ModelMetadata`); a ``model.json`` sidecar beside it is optional. The model takes one raw mono chunk and returns class
probabilities (or values); the whole front-end runs inside it, so the runtime only decodes,
resamples and cuts audio. It imports neither TensorFlow nor librosa nor any training code:
numpy, soundfile, ai-edge-litert, :mod:`dsplug.audio` and :mod:`dsplug.artifacts` suffice.

Examples
--------
>>> from dsplug.runtime import bench, format_bench, load_model, predict_batch, predict_files, stream_file
>>> model = load_model("runs/demo/model.tflite")  # doctest: +SKIP
>>> [p] = predict_files(model, ["data/tones/audio/spk5_0001_T3.ogg"])  # doctest: +SKIP
>>> p.label, p.probabilities.round(2)  # doctest: +SKIP
('T3', array([0.04, 0.1 , 0.71, 0.1 , 0.05]))
>>> batch = predict_batch(model, ["data/tones/audio"])  # every core; bad files skipped  # doctest: +SKIP
>>> len(batch.predictions), batch.notes  # doctest: +SKIP
(624, ('resampled 624 files from 44.1 kHz to 16 kHz',))
>>> summary = stream_file(model, "data/drums/audio/kick_soft01.ogg", realtime=False)  # doctest: +SKIP
>>> print(format_bench(bench("runs/demo/model.tflite", threads=1)))  # doctest: +SKIP
"""

from dsplug.runtime.batch import BatchPrediction, SkippedFile, default_jobs, predict_batch
from dsplug.runtime.bench import bench, count_parameters, format_bench
from dsplug.runtime.model import Model, load_model
from dsplug.runtime.output import (
    check_top_k,
    format_batch_summary,
    format_class_counts,
    format_skipped,
    format_predictions,
    predictions_json,
    top_labels,
    write_predictions_csv,
)
from dsplug.runtime.predict import (
    AUDIO_EXTENSIONS,
    Adjustment,
    FilePrediction,
    collect_audio_files,
    find_audio_files,
    predict_file,
    predict_files,
    predict_signal,
)
from dsplug.runtime.stream import (
    StreamResult,
    StreamSummary,
    Streamer,
    format_stream_result,
    format_stream_summary,
    stream_file,
    stream_microphone,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "Adjustment",
    "BatchPrediction",
    "FilePrediction",
    "Model",
    "SkippedFile",
    "StreamResult",
    "StreamSummary",
    "Streamer",
    "bench",
    "check_top_k",
    "collect_audio_files",
    "count_parameters",
    "default_jobs",
    "find_audio_files",
    "format_batch_summary",
    "format_bench",
    "format_class_counts",
    "format_skipped",
    "format_stream_result",
    "format_stream_summary",
    "format_predictions",
    "load_model",
    "predict_batch",
    "predict_file",
    "predict_files",
    "predict_signal",
    "predictions_json",
    "stream_file",
    "stream_microphone",
    "top_labels",
    "write_predictions_csv",
]
