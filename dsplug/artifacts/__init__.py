"""What dsplug writes and later commands read: the run directory and the exported model's description.

Two owners, one definition each:

* :class:`RunDir` owns a run directory: its file names, reading and writing its records (recipe,
  data summary, metrics, predictions), the lock that keeps one run per directory, and the rule
  that a finished run is a record a later command never rewrites.
* :class:`ModelMetadata` describes an exported model (labels, audio format, task, provenance).
  The exporter embeds it in the ``.tflite`` as standard TFLite Model Metadata
  (:mod:`dsplug.artifacts.tflite_metadata`) and the runtime reads it; it is TensorFlow-free.

Every file a later command reads is written atomically (:func:`write_atomic`: a temporary file in
the same folder, flushed, then renamed over the target), so an interrupted command leaves either
the old file or the new one, never half of one.

Examples
--------
>>> run = RunDir("runs/demo")  # doctest: +SKIP
>>> run.metrics()["test"]["uar"]  # doctest: +SKIP
0.62
>>> meta = ModelMetadata.from_tflite(open("runs/demo/model.tflite", "rb").read())  # doctest: +SKIP
>>> meta.classes, meta.sample_rate  # doctest: +SKIP
(['T1', 'T2', 'T3', 'T4', 'T5_neutral'], 16000)
"""

from dsplug.artifacts.files import (
    PathLike,
    check_writable_dir,
    check_output_file,
    check_writable_file,
    csv_text,
    disk_full_message,
    disk_full_path,
    is_disk_full,
    read_json,
    to_jsonable,
    write_atomic,
    write_figure,
    write_json,
    writing,
)
from dsplug.artifacts.metadata import (
    CARD_FILE,
    PREDICTION_COLUMNS,
    ModelMetadata,
    OutputInfo,
    Quantize,
    TensorInfo,
    predictions_csv,
)
from dsplug.task import MULTILABEL_THRESHOLD, Task
from dsplug.artifacts.rundir import RunDir

__all__ = [
    "CARD_FILE",
    "MULTILABEL_THRESHOLD",
    "PREDICTION_COLUMNS",
    "ModelMetadata",
    "OutputInfo",
    "PathLike",
    "Quantize",
    "RunDir",
    "Task",
    "TensorInfo",
    "check_writable_dir",
    "check_output_file",
    "check_writable_file",
    "csv_text",
    "disk_full_message",
    "disk_full_path",
    "is_disk_full",
    "predictions_csv",
    "read_json",
    "to_jsonable",
    "write_atomic",
    "write_figure",
    "write_json",
    "writing",
]
