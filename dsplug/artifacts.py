"""What dsplug writes and later commands read: the run directory and the exported model's description.

Two owners, one definition each:

* :class:`RunDir` owns a run directory: its file names, reading and writing its records (recipe,
  data summary, metrics, predictions), the lock that keeps one run per directory, and the rule
  that a finished run is a record a later command never rewrites.
* :class:`ModelMetadata` describes an exported model (labels, audio format, task, provenance).
  The exporter writes it and the runtime reads it; it is TensorFlow-free.

Every file a later command reads is written atomically (:func:`write_atomic`: a temporary file in
the same folder, flushed, then renamed over the target), so an interrupted command leaves either
the old file or the new one, never half of one.

Examples
--------
>>> run = RunDir("runs/demo")  # doctest: +SKIP
>>> run.metrics()["test"]["uar"]  # doctest: +SKIP
0.62
>>> meta = ModelMetadata.from_json_file("runs/demo/model.json")  # doctest: +SKIP
>>> meta.classes, meta.sample_rate  # doctest: +SKIP
(['T1', 'T2', 'T3', 'T4', 'T5_neutral'], 16000)
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dsplug import __version__
from dsplug.errors import DataError, DsplugError, ExportError, RunError

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Task = Literal["classification", "multilabel", "regression"]
Quantize = Literal["none", "dynamic", "float16", "int8", "qat"]

#: Threshold above which a class is "on" in a multi-label prediction.
MULTILABEL_THRESHOLD = 0.5


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------


def write_atomic(path: PathLike, content: str | bytes) -> Path:
    """Write ``content`` to ``path`` atomically (temporary file in the same folder, then rename).

    Parent folders are created. A reader sees the old file or the complete new one, never a
    partial write, also when the writing process is killed.

    Parameters
    ----------
    path : str or os.PathLike
        The target file.
    content : str or bytes
        Text (written as UTF-8, newlines unchanged) or bytes.

    Returns
    -------
    Path
        ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def to_jsonable(value: Any, *, where: str = "value") -> Any:
    """Convert NumPy values (and nested containers of them) to JSON types.

    Non-finite floats become ``None`` (JSON has no NaN).

    Raises
    ------
    DataError
        A value JSON cannot hold (the message names where it is).
    """
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item, where=f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), where=where)
    if isinstance(value, list | tuple):
        return [to_jsonable(item, where=f"{where}[{i}]") for i, item in enumerate(value)]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, Path):
        return str(value)
    raise DataError(
        f"{where} has type {type(value).__name__}, which JSON cannot hold; use numbers, strings, "
        "lists or dicts"
    )


def write_json(path: PathLike, document: Any) -> Path:
    """Write ``document`` as indented JSON, atomically (NumPy values converted, NaN -> null)."""
    text = json.dumps(to_jsonable(document, where=Path(path).name), indent=2, allow_nan=False)
    return write_atomic(path, text + "\n")


def read_json(path: PathLike, *, error: type[DsplugError] = RunError, fix: str) -> Any:
    """Read a JSON file dsplug wrote; a missing, unreadable or damaged file raises ``error``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    error : type of DsplugError
        The error class to raise.
    fix : str
        What the user should do, appended to the message.
    """
    file = Path(path)
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise error(f"{file} does not exist; {fix}") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{file} is damaged or unreadable ({type(err).__name__}: {err}); {fix}") from err


# --------------------------------------------------------------------------------------------
# the exported model's description
# --------------------------------------------------------------------------------------------


class TensorInfo(BaseModel):
    """Shape and type of the model's input tensor."""

    model_config = ConfigDict(extra="ignore")

    name: str = "audio"
    shape: list[int] = Field(min_length=2, max_length=2)
    dtype: Literal["float32"] = "float32"


class OutputInfo(BaseModel):
    """Shape and meaning of the model's output tensor."""

    model_config = ConfigDict(extra="ignore")

    shape: list[int] = Field(min_length=2, max_length=2)
    meaning: Literal["probabilities", "values"] = "probabilities"


class ModelMetadata(BaseModel):
    """The description of an exported model: one definition for the writer and the runtime.

    The model takes one chunk of mono audio, float32 in [-1, 1], shape ``(1, samples)`` with
    ``samples = round(chunk_seconds * sample_rate)``, and gives ``(1, k)`` outputs: class
    probabilities (softmax for ``classification``, independent sigmoids for ``multilabel``) or
    regression values.

    Attributes
    ----------
    name, description : str
        Human-readable model name (the recipe's ``name``) and one-line description.
    dsplug_version : str
        The dsplug version that exported the model.
    recipe_hash : str
        sha256 prefix of the resolved recipe the model was trained from.
    task : {"classification", "multilabel", "regression"}
    classes : list of str
        Output names in order (may be empty for regression).
    sample_rate : int
        Hz.
    chunk_seconds, hop_seconds : float
        Chunk length, and the hop between chunks used for files and streams (seconds).
    pad_mode : {"zero", "repeat"}
        How a chunk shorter than the input is filled.
    backbone : str
        The backbone plugin's name.
    quantize : {"none", "dynamic", "float16", "int8", "qat"}
    pruning, qat : dict or None
        Pruning / quantization-aware-training summaries of the model, if any.
    float_layers : list of str or None
        int8 models: the classifier layers that compute in float32.
    """

    model_config = ConfigDict(extra="ignore")

    format: Literal["dsplug-tflite"] = "dsplug-tflite"
    name: str = "dsplug model"
    description: str = ""
    dsplug_version: str = __version__
    recipe_hash: str = ""
    task: Task
    classes: list[str]
    sample_rate: int = Field(gt=0)
    chunk_seconds: float = Field(gt=0)
    hop_seconds: float = Field(gt=0)
    pad_mode: Literal["zero", "repeat"] = "zero"
    input: TensorInfo
    output: OutputInfo
    backbone: str = ""
    quantize: Quantize = "none"
    pruning: dict[str, Any] | None = None
    qat: dict[str, Any] | None = None
    float_layers: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelMetadata:
        expected = round(self.chunk_seconds * self.sample_rate)
        if self.input.shape != [1, expected]:
            raise ValueError(
                f"input shape {self.input.shape} does not hold chunk_seconds={self.chunk_seconds} at "
                f"{self.sample_rate} Hz ([1, {expected}])"
            )
        if self.task != "regression" and self.output.shape[-1] != len(self.classes):
            raise ValueError(f"{self.output.shape[-1]} outputs but {len(self.classes)} classes")
        return self

    @property
    def samples(self) -> int:
        """Samples in one input chunk."""
        return int(self.input.shape[1])

    @property
    def n_outputs(self) -> int:
        """Outputs per chunk."""
        return int(self.output.shape[-1])

    @classmethod
    def for_model(
        cls,
        *,
        name: str,
        task: Task,
        classes: Sequence[str],
        sample_rate: int,
        chunk_seconds: float,
        hop_seconds: float | None,
        pad_mode: Literal["zero", "repeat"],
        backbone: str,
        recipe_hash: str,
        quantize: Quantize = "none",
        pruning: Mapping[str, Any] | None = None,
        qat: Mapping[str, Any] | None = None,
    ) -> ModelMetadata:
        """The metadata of a model trained from a recipe (shapes derived from the audio settings)."""
        samples = round(chunk_seconds * sample_rate)
        what = {"classification": "classifies", "multilabel": "tags", "regression": "rates"}[task]
        return cls(
            name=name,
            description=(
                f"dsplug {__version__}: {what} {chunk_seconds:g} s chunks of mono {sample_rate} Hz audio"
                + (f" into {', '.join(classes)}" if task != "regression" else "")
                + f" ({backbone}, recipe {recipe_hash})"
            ),
            recipe_hash=recipe_hash,
            task=task,
            classes=list(classes),
            sample_rate=sample_rate,
            chunk_seconds=chunk_seconds,
            hop_seconds=hop_seconds or chunk_seconds,
            pad_mode=pad_mode,
            input=TensorInfo(shape=[1, samples]),
            output=OutputInfo(
                shape=[1, max(len(classes), 1)],
                meaning="values" if task == "regression" else "probabilities",
            ),
            backbone=backbone,
            quantize=quantize,
            pruning=dict(pruning) if pruning is not None else None,
            qat=dict(qat) if qat is not None else None,
        )

    @classmethod
    def parse(cls, document: Any, *, source: str) -> ModelMetadata:
        """Validate metadata read from ``source`` (a file name, for messages).

        Raises
        ------
        ExportError
            Not dsplug metadata, or a field is missing or invalid (each problem is named).
        """
        if not isinstance(document, dict) or document.get("format") != "dsplug-tflite":
            got = document.get("format") if isinstance(document, dict) else type(document).__name__
            raise ExportError(
                f"{source}: not dsplug model metadata (format {got!r}, expected 'dsplug-tflite'); "
                "re-export the model with `dsplug export RUN_DIR`"
            )
        try:
            return cls.model_validate(document)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'metadata'}: {e['msg']}" for e in err.errors()
            )
            raise ExportError(
                f"{source}: invalid model metadata: {problems}; re-export the model with "
                "`dsplug export RUN_DIR`"
            ) from err

    @classmethod
    def from_json_file(cls, path: PathLike) -> ModelMetadata:
        """Read a ``model.json`` sidecar.

        Raises
        ------
        ExportError
            The file is missing, unreadable or invalid.
        """
        document = read_json(path, error=ExportError, fix="re-export the model with `dsplug export RUN_DIR`")
        return cls.parse(document, source=str(path))

    def to_json(self) -> str:
        """The metadata as indented JSON text."""
        return json.dumps(to_jsonable(self.model_dump(mode="json")), indent=2) + "\n"

    def check_tensors(self, *, input_shape: Sequence[int], output_shape: Sequence[int], model: str) -> None:
        """Refuse metadata that does not belong to a model with these tensor shapes.

        Raises
        ------
        ExportError
            The input is not ``(1, samples)`` or the output width differs from the classes.
        """
        shape = [int(s) for s in input_shape]
        if shape != self.input.shape:
            raise ExportError(
                f"the metadata does not belong to {model}: the model's input shape is {shape}, but the "
                f"metadata declares {self.input.shape} (chunk_seconds={self.chunk_seconds} at "
                f"{self.sample_rate} Hz); keep each model with the metadata exported with it "
                "(`dsplug export RUN_DIR` writes both)"
            )
        n_out = int(output_shape[-1])
        if n_out != self.n_outputs:
            declared = (
                f"declares {self.n_outputs}" if self.task == "regression" else f"lists {len(self.classes)} classes"
            )
            raise ExportError(
                f"the metadata does not belong to {model}: the model has {n_out} outputs but the "
                f"metadata {declared}; keep each model with the metadata exported with it "
                "(`dsplug export RUN_DIR` writes both)"
            )


# --------------------------------------------------------------------------------------------
# predictions
# --------------------------------------------------------------------------------------------


def output_columns(classes: Sequence[str], *, task: str, k: int) -> list[str]:
    """Output column names: ``prob_<class>``, or ``value`` / ``value_<name>`` for regression."""
    if task != "regression":
        return [f"prob_{c}" for c in classes]
    if len(classes) == k:
        return [f"value_{c}" for c in classes] if k > 1 else ["value"]
    return ["value"] if k == 1 else [f"value_{i}" for i in range(k)]


def decide(outputs: np.ndarray, *, classes: Sequence[str], task: str) -> str:
    """The label of one output row: arg-max class, the classes above 0.5 (";"-joined), or the value(s)."""
    if task == "classification":
        return classes[int(np.argmax(outputs))]
    if task == "multilabel":
        return ";".join(c for c, p in zip(classes, outputs) if p > MULTILABEL_THRESHOLD)
    return ";".join(f"{float(v):.6g}" for v in outputs)


PREDICTION_COLUMNS = ("file", "level", "start", "end", "label", "predicted")


def predictions_csv(rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str]) -> str:
    """CSV text of prediction rows: ``file, level, start, end, label, predicted`` + output columns.

    One format for evaluation and inference: ``label`` is the true class (empty when unknown),
    ``predicted`` the model's decision, ``level`` ``file`` or ``chunk``, times in seconds (empty
    for file rows of evaluation), then one column per output.

    Parameters
    ----------
    rows : sequence of mapping
        Each with the keys of :data:`PREDICTION_COLUMNS` (missing ones are empty) and
        ``outputs``: the row's values, one per output column.
    columns : sequence of str
        The output column names (:func:`output_columns`).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*PREDICTION_COLUMNS, *columns])
    for row in rows:
        values = [float(v) for v in row["outputs"]]
        if len(values) != len(columns):
            raise DataError(f"a prediction row has {len(values)} outputs, the header {len(columns)}")
        cells = []
        for key in PREDICTION_COLUMNS:
            value = row.get(key)
            cells.append(f"{value:.3f}" if isinstance(value, float) else "" if value is None else str(value))
        writer.writerow([*cells, *(f"{v:.6g}" for v in values)])
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# the run directory
# --------------------------------------------------------------------------------------------


class RunDir:
    """A run directory: its files, its records and its lock.

    ``dsplug run`` writes, in order: ``run.json`` (the recipe hash; the directory's identity),
    ``recipe.yaml`` (the resolved recipe), ``data.json``, ``checkpoints/``, ``history.csv``,
    ``training.png``, ``metrics.json``, ``predictions*.csv``, ``confusion.png``, ``model.keras``,
    ``model*.tflite`` (+ ``model*.json``), ``export.json`` / ``export.md`` and ``report.md`` /
    ``report.html``; ``run.json`` is marked finished last.

    Parameters
    ----------
    path : str or os.PathLike
        The directory (it need not exist yet).
    """

    RUN = "run.json"
    RECIPE = "recipe.yaml"
    DATA = "data.json"
    SKIPPED = "skipped_files.csv"
    HISTORY = "history.csv"
    TRAINING_PLOT = "training.png"
    METRICS = "metrics.json"
    PREDICTIONS = "predictions.csv"
    CONFUSION_PLOT = "confusion.png"
    EXAMPLES_PLOT = "examples.png"
    KERAS_MODEL = "model.keras"
    TFLITE_MODEL = "model.tflite"
    EXPORT = "export.json"
    EXPORT_REPORT = "export.md"
    REPORT = "report.md"
    REPORT_HTML = "report.html"
    CHECKPOINTS = "checkpoints"
    LOCK = ".dsplug.lock"

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ names
    @staticmethod
    def model_file(quantize: str = "none", *, pruned: bool = False) -> str:
        """``model.tflite``, ``model-int8.tflite``, ``model-pruned.tflite``, ``model-pruned-int8.tflite``..."""
        parts = ["model"] + (["pruned"] if pruned else []) + ([quantize] if quantize != "none" else [])
        return "-".join(parts) + ".tflite"

    def predictions_file(self, partition: str, *, last: bool) -> Path:
        """``predictions.csv`` for the last evaluated partition, ``predictions_<partition>.csv`` else."""
        return self.path / (self.PREDICTIONS if last else f"predictions_{partition}.csv")

    def tflite_models(self) -> list[Path]:
        """The exported ``model*.tflite`` files, sorted by name."""
        return sorted(self.path.glob("model*.tflite"))

    # ------------------------------------------------------------------ state
    def info(self) -> dict[str, Any] | None:
        """``run.json`` (``{"recipe_hash", "name", "dsplug_version", "finished"}``), None if absent.

        Raises
        ------
        RunError
            ``run.json`` is damaged.
        """
        if not (self.path / self.RUN).is_file():
            return None
        info = read_json(self.path / self.RUN, fix=f"delete {self.path} or choose another --out")
        if not isinstance(info, dict) or not isinstance(info.get("recipe_hash"), str):
            raise RunError(f"{self.path / self.RUN} is not a dsplug run record; delete {self.path} or choose another --out")
        return info

    @property
    def finished(self) -> bool:
        """True once a run finished here (its records are then never rewritten)."""
        info = self.info()
        return bool(info and info.get("finished"))

    def missing(self, names: Sequence[str]) -> list[str]:
        """Which of ``names`` do not exist in the directory."""
        return [name for name in names if not (self.path / name).exists()]

    def require(self, names: Sequence[str], *, command: str) -> None:
        """Raise unless the directory exists and holds ``names``.

        Raises
        ------
        RunError
            Naming the directory, the missing files and how to make them.
        """
        if not self.path.is_dir():
            raise RunError(
                f"run directory {str(self.path)!r} does not exist; pass a folder written by "
                f"`dsplug run RECIPE --out DIR` to `dsplug {command}`"
            )
        missing = self.missing(names)
        if missing:
            raise RunError(
                f"{self.path} is not a finished dsplug run directory (missing {', '.join(missing)}); "
                f"run `dsplug run RECIPE --out DIR` to the end, then `dsplug {command} DIR`"
            )

    def check_writable(self) -> None:
        """Refuse a path that cannot become a run directory (a file, an unwritable place).

        Raises
        ------
        RunError
            The path is a file, or the directory cannot be created or written.
        """
        check_writable_dir(self.path, what="run directory")

    def begin(self, *, recipe_hash: str, name: str, recipe_yaml: str) -> bool:
        """Claim the directory for a run of ``recipe_hash`` and write its recipe (first time only).

        Nothing is written before the checks: a directory holding a run of another recipe, or
        damaged records, is refused and left as it is.

        Returns
        -------
        bool
            True if this recipe's run already finished here (nothing was written).

        Raises
        ------
        RunError
            The directory holds a run of a different recipe, or files that are not a dsplug run.
        """
        self.check_writable()
        info = self.info()
        if info is None and self.path.is_dir() and (self.path / self.RECIPE).is_file():
            raise RunError(
                f"{self.path} holds a run without a run record ({self.RUN}), written by an older "
                "dsplug or damaged; choose another --out or delete the folder"
            )
        if info is not None and info["recipe_hash"] != recipe_hash:
            raise RunError(
                f"{self.path} holds a run of a different recipe ({info.get('name', '?')!r}, hash "
                f"{info['recipe_hash']}; this recipe's hash is {recipe_hash}); a run directory is a "
                "record: choose another --out (or another recipe name), or delete the folder"
            )
        if info is not None:
            return bool(info.get("finished"))
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / self.RUN, {"recipe_hash": recipe_hash, "name": name, "dsplug_version": __version__, "finished": False})
        write_atomic(self.path / self.RECIPE, recipe_yaml)
        return False

    def finish(self) -> None:
        """Mark the run finished: from now on its records are never rewritten."""
        info = self.info() or {}
        write_json(self.path / self.RUN, {**info, "finished": True})

    @contextlib.contextmanager
    def lock(self, *, command: str = "dsplug run") -> Iterator[None]:
        """Hold the directory's lock file for the block: one command writes a directory at a time.

        The lock file names its holder (host and process id). A lock left by a process that no
        longer runs on this host is taken over.

        Raises
        ------
        RunError
            Another live process holds the lock (its host and pid are named).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / self.LOCK
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "command": command}
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = _read_lock(lock)
                if other is None and _age_seconds(lock) < 10:  # being written by its holder right now
                    other = {"command": "another dsplug command", "pid": "?", "host": "?"}
                if other is not None and not _stale(other):
                    raise RunError(
                        f"{self.path} is in use by {other.get('command', 'another dsplug command')} "
                        f"(pid {other.get('pid')} on {other.get('host')}); wait for it to finish or "
                        f"choose another --out (remove {lock} if that process is gone)"
                    ) from None
                lock.unlink(missing_ok=True)  # left by a process that died
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(holder, handle)
            break
        else:  # pragma: no cover - another process took over the stale lock in between
            raise RunError(f"{self.path} is in use by another dsplug command; try again")
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    # ------------------------------------------------------------------ records
    def recipe_text(self) -> str:
        """The resolved recipe (``recipe.yaml``) as text."""
        self.require([self.RECIPE], command="export")
        return (self.path / self.RECIPE).read_text(encoding="utf-8")

    def write_data_summary(self, summary: Mapping[str, Any]) -> None:
        """Write ``data.json``."""
        write_json(self.path / self.DATA, summary)

    def data_summary(self) -> dict[str, Any]:
        """``data.json``."""
        return read_json(self.path / self.DATA, fix="re-run `dsplug run` into a new directory")

    def write_metrics(self, metrics: Mapping[str, Mapping[str, Any]]) -> None:
        """Write ``metrics.json`` (per evaluated partition)."""
        write_json(self.path / self.METRICS, dict(metrics))

    def metrics(self) -> dict[str, Any]:
        """``metrics.json``: per-partition metrics."""
        return read_json(self.path / self.METRICS, fix="re-run `dsplug run` into a new directory")

    def write_export_summary(self, summary: Mapping[str, Any]) -> None:
        """Write ``export.json``."""
        write_json(self.path / self.EXPORT, summary)

    def export_summary(self) -> dict[str, Any]:
        """``export.json``; ``{}`` if no export summary was written."""
        if not (self.path / self.EXPORT).is_file():
            return {}
        return read_json(self.path / self.EXPORT, fix="re-export with `dsplug export RUN_DIR`")

    def model_metadata(self, model: str = TFLITE_MODEL) -> ModelMetadata:
        """The metadata of an exported model of the run (its ``.json`` sidecar)."""
        return ModelMetadata.from_json_file((self.path / model).with_suffix(".json"))


def check_writable_dir(path: PathLike, *, what: str) -> None:
    """Refuse a folder path that is a file or cannot be created or written (before any work).

    Raises
    ------
    RunError
        Naming the path and the problem.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{what} {str(folder)!r} is a file, not a folder; choose another path")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(f"cannot write the {what} {str(folder)!r}: {existing} is not writable; choose another path")


def check_writable_file(path: PathLike, *, what: str) -> None:
    """Refuse an output file path that is a folder or whose folder cannot be written (before any work).

    Raises
    ------
    RunError
        Naming the path and the problem.
    """
    file = Path(path)
    if file.is_dir():
        raise RunError(f"{what} {str(file)!r} is a folder; give a file name")
    if file.exists() and not os.access(file, os.W_OK):
        raise RunError(f"cannot write the {what} {str(file)!r}: the file is not writable; choose another path")
    check_writable_dir(file.parent if str(file.parent) else Path("."), what=f"folder of the {what}")


def _read_lock(lock: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # being written, or damaged
    return holder if isinstance(holder, dict) else None


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return math.inf


def _stale(holder: Mapping[str, Any]) -> bool:
    """True if the lock's process is gone (only decidable on the same host)."""
    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
