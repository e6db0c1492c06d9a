"""Chunk- and file-level predictions for audio files and folders, and their CSV / JSON output.

The predictions CSV is the one format of :func:`dsplug.artifacts.predictions_csv` (also written
by evaluation): ``file, level, start, end, label, predicted`` and one column per output. The
true class (``label``) is not known here, so it is empty; ``predicted`` is the model's decision.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import soundfile as sf

from dsplug.artifacts import decide, output_columns, predictions_csv, write_atomic
from dsplug.audio import chunk_signal, load_audio, prepare_signal
from dsplug.errors import AudioError, DataError, ExportError

if TYPE_CHECKING:  # pragma: no cover - typing only (model.py imports this module)
    from dsplug.runtime.model import Model

logger = logging.getLogger(__name__)

__all__ = [
    "AUDIO_EXTENSIONS",
    "FilePrediction",
    "collect_audio_files",
    "file_notes",
    "predict_files",
    "predict_signal",
    "predictions_json",
    "write_predictions_csv",
]

#: File extensions (lower case) collected from folders: the formats libsndfile decodes. A file
#: named explicitly is decoded whatever its extension.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")


@dataclasses.dataclass(frozen=True)
class FilePrediction:
    """Predictions for one audio file.

    Attributes
    ----------
    file : str
        The file path as given (or as found in a folder).
    duration : float
        Length of the decoded audio in seconds.
    starts, ends : np.ndarray [shape=(n_chunks,), dtype=float64]
        Start and end of each chunk in seconds; an end is clipped to ``duration`` (the padding
        of a last or only chunk is not audio). The chunks cover ``[0, duration]``.
    chunk_probabilities : np.ndarray [shape=(n_chunks, k), dtype=float32]
        Model outputs per chunk.
    probabilities : np.ndarray [shape=(k,), dtype=float64]
        File-level outputs: the mean of the chunk rows (or the vote fractions).
    label : str
        The predicted label: arg-max class; for multi-label the classes above 0.5 joined by
        ";" (empty if none); for regression the value.
    chunk_labels : tuple of str
        The predicted label of each chunk, decided the same way.
    notes : tuple of str
        What was done to the audio (resampled, mixed to mono, padded).
    classes : tuple of str
        Class names of the outputs.
    task : str
        The model's task.
    """

    file: str
    duration: float
    starts: np.ndarray
    ends: np.ndarray
    chunk_probabilities: np.ndarray
    probabilities: np.ndarray
    label: str
    chunk_labels: tuple[str, ...]
    notes: tuple[str, ...]
    classes: tuple[str, ...]
    task: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON): outputs keyed by column name."""
        names = _columns(self)
        return {
            "file": self.file,
            "duration": round(self.duration, 6),
            "label": self.label,
            "outputs": {n: float(p) for n, p in zip(names, self.probabilities)},
            "notes": list(self.notes),
            "chunks": [
                {
                    "start": round(float(s), 6),
                    "end": round(float(e), 6),
                    "label": lab,
                    "outputs": {n: float(p) for n, p in zip(names, row)},
                }
                for s, e, lab, row in zip(self.starts, self.ends, self.chunk_labels, self.chunk_probabilities)
            ],
        }


def collect_audio_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders into a list of audio files.

    A folder contributes every file below it (recursively) whose extension is in
    :data:`AUDIO_EXTENSIONS` (case-insensitive), sorted by path; hidden files (names starting
    with ".") are skipped. A file named explicitly is kept whatever its extension. Duplicates
    are dropped, first occurrence kept.

    Raises
    ------
    DataError
        ``paths`` is empty.
    AudioError
        A path does not exist, or a folder holds no audio file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise DataError("no audio given: pass one or more audio files or folders")
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
            )
            if not found:
                raise AudioError(
                    f"folder {str(path)!r} holds no audio files (looked recursively for "
                    f"{', '.join(AUDIO_EXTENSIONS)}); pass a folder with audio or the files themselves"
                )
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise AudioError(f"audio file or folder {str(path)!r} does not exist; check the path")
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def file_notes(path: Path, *, model: Model, samples: int) -> list[str]:
    """Notes on what loading ``path`` for ``model`` did to it (resampling, down-mixing, padding).

    Parameters
    ----------
    path : Path
        The audio file.
    model : Model
        The model it was loaded for.
    samples : int
        Samples of the decoded, resampled signal.
    """
    notes = []
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        info = None  # decoded by the fallback decoder; its original rate is not known cheaply
    if info is not None:
        if info.samplerate != model.sample_rate:
            notes.append(f"resampled from {info.samplerate} Hz to {model.sample_rate} Hz")
        if info.channels > 1:
            notes.append(f"{info.channels} channels mixed down to mono")
    return notes + _padding_note(model, samples=samples)


def _padding_note(model: Model, *, samples: int) -> list[str]:
    if samples >= model.chunk_samples:
        return []
    how = "with zeros" if model.pad_mode == "zero" else "by repeating it"
    return [f"shorter than one chunk ({samples / model.sample_rate:.3f} s < {model.chunk_seconds:g} s): padded {how}"]


def predict_files(
    model: Model,
    paths: Sequence[str | os.PathLike[str]],
    *,
    aggregate: Literal["mean", "vote"] = "mean",
    hop_seconds: float | None = None,
) -> list[FilePrediction]:
    """Chunk- and file-level predictions for audio files and folders.

    Each file is decoded, mixed to mono and resampled to the model's rate
    (:func:`dsplug.audio.load_audio`), cut into chunks of the model's length every
    ``hop_seconds`` (the last, or only, chunk padded as the metadata says) and run chunk by
    chunk. Every input is checked (existence, folders not empty) before any file is decoded.

    Parameters
    ----------
    model : Model
        From :func:`dsplug.runtime.load_model`.
    paths : sequence of path
        Audio files and/or folders (searched recursively, see :func:`collect_audio_files`).
    aggregate : {"mean", "vote"}
        File-level outputs: the mean of the chunk rows, or (classification only) the fraction
        of chunks voting for each class.
    hop_seconds : float, optional
        Hop between chunks in seconds; default the model's (``model.hop_seconds``).

    Returns
    -------
    list of FilePrediction
        One per file, in input order (folders sorted).

    Raises
    ------
    DataError
        No input, or an unknown ``aggregate``.
    AudioError
        A path is missing, a folder holds no audio, or a file cannot be decoded (the file is
        named).
    """
    _check_aggregate(aggregate, model=model)
    files = collect_audio_files(paths)
    results = []
    for path in files:
        signal = load_audio(path, sample_rate=model.sample_rate)
        results.append(
            _predict(model, signal, source=str(path), notes=file_notes(path, model=model, samples=signal.size),
                     hop_seconds=hop_seconds, aggregate=aggregate)
        )
    return results


def predict_signal(
    model: Model,
    samples: np.ndarray,
    *,
    sample_rate: int,
    hop_seconds: float | None = None,
    aggregate: Literal["mean", "vote"] = "mean",
    source: str = "<array>",
) -> FilePrediction:
    """Chunk- and file-level predictions for samples in memory (what :func:`predict_files` does to a file).

    Parameters
    ----------
    model : Model
    samples : np.ndarray [shape=(n,) or (n, channels)]
        Float samples in [-1, 1] or integer PCM; channels are averaged to mono.
    sample_rate : int
        Their rate in Hz; resampled to the model's with soxr (high quality) when it differs.
    hop_seconds : float, optional
        Hop between chunks; default the model's.
    aggregate : {"mean", "vote"}
        See :func:`predict_files`.
    source : str
        The name in the result's ``file`` field and in messages.

    Returns
    -------
    FilePrediction

    Raises
    ------
    AudioError
        Empty, non-finite or badly shaped samples; a rate that is not a positive whole number.
    """
    _check_aggregate(aggregate, model=model)
    signal = prepare_signal(samples, rate=sample_rate, sample_rate=model.sample_rate, source=source)
    notes = [f"resampled from {sample_rate} Hz to {model.sample_rate} Hz"] if sample_rate != model.sample_rate else []
    if np.ndim(samples) == 2 and np.shape(samples)[1] > 1:
        notes.append(f"{np.shape(samples)[1]} channels mixed down to mono")
    notes += _padding_note(model, samples=signal.size)
    return _predict(model, signal, source=source, notes=notes, hop_seconds=hop_seconds, aggregate=aggregate)


def _check_aggregate(aggregate: str, *, model: Model) -> None:
    if aggregate not in ("mean", "vote"):
        raise DataError(f"aggregate must be 'mean' or 'vote', got {aggregate!r}")
    if aggregate == "vote" and model.task != "classification":
        raise DataError(f"aggregate='vote' needs a classification model; this one is {model.task}: use 'mean'")


def _predict(
    model: Model, signal: np.ndarray, *, source: str, notes: Sequence[str], hop_seconds: float | None,
    aggregate: str,
) -> FilePrediction:
    """Chunk a mono signal at the model's rate, run the chunks, aggregate them."""
    hop = model.hop_seconds if hop_seconds is None else hop_seconds
    chunks = chunk_signal(
        signal, sample_rate=model.sample_rate, chunk_seconds=model.chunk_seconds,
        hop_seconds=hop, pad_mode=model.pad_mode, source=source,
    )
    if chunks.frames.shape[1] != model.chunk_samples:  # rounding of chunk_seconds * rate
        raise ExportError(
            f"{model.path}: chunk_seconds {model.chunk_seconds} at {model.sample_rate} Hz gives "
            f"{chunks.frames.shape[1]} samples, the model takes {model.chunk_samples}"
        )
    outputs = model.predict_chunks(chunks.frames)
    if aggregate == "vote":
        votes = np.bincount(outputs.argmax(axis=1), minlength=outputs.shape[1])
        file_outputs = votes / votes.sum()
    else:
        file_outputs = outputs.mean(axis=0, dtype=np.float64)
    duration = signal.size / model.sample_rate
    result = FilePrediction(
        file=source,
        duration=duration,
        starts=chunks.starts,
        ends=np.minimum(chunks.starts + model.chunk_samples / model.sample_rate, duration),
        chunk_probabilities=outputs,
        probabilities=file_outputs,
        label=decide(file_outputs, classes=model.classes, task=model.task),
        chunk_labels=tuple(decide(row, classes=model.classes, task=model.task) for row in outputs),
        notes=tuple(notes),
        classes=model.classes,
        task=model.task,
    )
    logger.debug("%s: %d chunk(s), label %s", source, len(outputs), result.label)
    return result


def write_predictions_csv(path: str | os.PathLike[str], predictions: Sequence[FilePrediction]) -> Path:
    """Write chunk and file rows to a CSV file (atomically: nothing is left half-written).

    The format is :func:`dsplug.artifacts.predictions_csv`: columns ``file, level, start, end,
    label, predicted`` and one column per output (``prob_<class>``; ``value`` for regression).
    ``label`` (the true class) is empty, ``predicted`` holds the decision. For each file, its
    chunk rows (``level=chunk``) come first, then one ``level=file`` row spanning the whole
    file. Times are in seconds.

    Raises
    ------
    DataError
        ``predictions`` is empty or mixes models with different outputs.
    """
    columns = _shared_columns(predictions)
    rows = [row for p in predictions for row in _csv_rows(p)]
    return write_atomic(path, predictions_csv(rows, columns=columns))


def _columns(prediction: FilePrediction) -> list[str]:
    """Names of the outputs of ``prediction`` (:func:`dsplug.artifacts.output_columns`)."""
    return output_columns(prediction.classes, task=prediction.task, k=prediction.probabilities.size)


def _csv_rows(p: FilePrediction) -> list[dict[str, Any]]:
    """Rows of :func:`dsplug.artifacts.predictions_csv` for one file: its chunks, then the whole file."""
    rows: list[dict[str, Any]] = [
        {"file": p.file, "level": "chunk", "start": float(s), "end": float(e), "predicted": lab, "outputs": row}
        for s, e, lab, row in zip(p.starts, p.ends, p.chunk_labels, p.chunk_probabilities)
    ]
    rows.append({
        "file": p.file, "level": "file", "start": 0.0, "end": float(p.duration),
        "predicted": p.label, "outputs": p.probabilities,
    })
    return rows


def _shared_columns(predictions: Sequence[FilePrediction]) -> list[str]:
    if not predictions:
        raise DataError("no predictions to write")
    columns = {tuple(_columns(p)) for p in predictions}
    if len(columns) != 1:
        raise DataError("predictions come from models with different outputs; write them to separate files")
    return list(columns.pop())


def predictions_json(predictions: Sequence[FilePrediction]) -> str:
    """Predictions as JSON text: ``{"task", "classes", "files": [FilePrediction.as_dict(), ...]}``.

    Raises
    ------
    DataError
        ``predictions`` is empty or mixes models with different outputs.
    """
    _shared_columns(predictions)
    first = predictions[0]
    return json.dumps(
        {"task": first.task, "classes": list(first.classes), "files": [p.as_dict() for p in predictions]},
        indent=2,
    )
