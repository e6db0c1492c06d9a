"""Chunk- and file-level predictions for audio files, folders and samples in memory.

Each recording is decoded, mixed to mono, resampled to the model's rate and cut into chunks;
what was done to it is kept as :class:`Adjustment` records. Many files at once (in parallel,
undecodable ones skipped): :mod:`dsplug.runtime.batch`; CSV, JSON and tables:
:mod:`dsplug.runtime.output`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import soundfile as sf

from dsplug.audio import chunk_signal, load_audio, prepare_signal
from dsplug.errors import AudioError, DataError, ExportError
from dsplug.task import Task

if TYPE_CHECKING:  # pragma: no cover - typing only (model.py imports this module)
    from dsplug.runtime.model import Model

logger = logging.getLogger(__name__)

__all__ = [
    "AUDIO_EXTENSIONS",
    "Adjustment",
    "FilePrediction",
    "check_aggregate",
    "collect_audio_files",
    "file_adjustments",
    "file_notes",
    "find_audio_files",
    "predict_file",
    "predict_files",
    "predict_signal",
]

#: File extensions (lower case) collected from folders: the formats libsndfile decodes. A file
#: named explicitly is decoded whatever its extension.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")


@dataclasses.dataclass(frozen=True)
class Adjustment:
    """One thing done to a recording before the model saw it.

    Attributes
    ----------
    kind : {"resampled", "mixed", "padded"}
        Resampled to the model's rate, channels mixed down to mono, or padded to one chunk.
    value : float
        ``resampled``: the recording's rate in Hz; ``mixed``: its number of channels;
        ``padded``: its length in seconds.
    note : str
        The same in words, e.g. ``"resampled from 44100 Hz to 16000 Hz"``.
    """

    kind: Literal["resampled", "mixed", "padded"]
    value: float
    note: str


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
    adjustments : tuple of Adjustment
        What was done to the audio (resampled, mixed to mono, padded); :attr:`notes` in words.
    classes : tuple of str
        Class names of the outputs.
    task : Task
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
    adjustments: tuple[Adjustment, ...]
    classes: tuple[str, ...]
    task: Task

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))  # its name is accepted too

    @property
    def columns(self) -> list[str]:
        """Names of the outputs (:meth:`dsplug.task.Task.output_columns`): ``prob_<class>`` or ``value``."""
        return self.task.output_columns(self.classes, k=self.probabilities.size)

    @property
    def notes(self) -> tuple[str, ...]:
        """What was done to the audio, in words (one :attr:`Adjustment.note` each)."""
        return tuple(a.note for a in self.adjustments)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON): outputs keyed by column name."""
        names = self.columns
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


def find_audio_files(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[Path]]:
    """Expand files and folders into the audio files to predict, and the other files of the folders.

    A folder contributes every file below it (recursively) whose extension is in
    :data:`AUDIO_EXTENSIONS` (case-insensitive), sorted by path; its other files (a README, a
    labels CSV) are returned apart, so that a caller can say they were skipped. Hidden files
    (names starting with ".") are ignored, and so are the other files of hidden folders (a
    ``.git``). A file named explicitly is kept whatever its extension. Duplicates are dropped,
    first occurrence kept.

    Parameters
    ----------
    paths : sequence of path
        Audio files and/or folders.

    Returns
    -------
    audio : list of Path
        The files to decode, in input order (each folder's sorted).
    others : list of Path
        Files in the folders with an extension not in :data:`AUDIO_EXTENSIONS`, sorted.

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
    others: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            below = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            found = [p for p in below if p.suffix.lower() in AUDIO_EXTENSIONS]
            if not found:
                raise AudioError(
                    f"folder {str(path)!r} holds no audio files (looked recursively for "
                    f"{', '.join(AUDIO_EXTENSIONS)}); pass a folder with audio or the files themselves"
                )
            files += found
            others += [
                p for p in below
                if p.suffix.lower() not in AUDIO_EXTENSIONS and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ]
        elif path.is_file():
            files.append(path)
        else:
            raise AudioError(f"audio file or folder {str(path)!r} does not exist; check the path")
    named = {f.resolve() for f in files}
    return _unique(files), [p for p in _unique(others) if p.resolve() not in named]


def _unique(files: Sequence[Path]) -> list[Path]:
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def collect_audio_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders into a list of audio files: the first list of :func:`find_audio_files`
    (which says what it raises)."""
    return find_audio_files(paths)[0]


def file_adjustments(path: Path, *, model: Model, samples: int) -> list[Adjustment]:
    """What loading ``path`` for ``model`` did to it (resampling, down-mixing, padding).

    Parameters
    ----------
    path : Path
        The audio file.
    model : Model
        The model it was loaded for.
    samples : int
        Samples of the decoded, resampled signal.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        info = None  # decoded by the fallback decoder; its original rate is not known cheaply
    if info is None:
        return _adjustments(model, rate=model.sample_rate, channels=1, samples=samples)
    return _adjustments(model, rate=int(info.samplerate), channels=int(info.channels), samples=samples)


def file_notes(path: Path, *, model: Model, samples: int) -> list[str]:
    """:func:`file_adjustments` in words, e.g. ``["resampled from 44100 Hz to 16000 Hz"]``."""
    return [a.note for a in file_adjustments(path, model=model, samples=samples)]


def _adjustments(model: Model, *, rate: int, channels: int, samples: int) -> list[Adjustment]:
    """Adjustments of a recording of ``rate`` Hz and ``channels`` that is ``samples`` long at the model's rate."""
    done = []
    if rate != model.sample_rate:
        done.append(Adjustment("resampled", rate, f"resampled from {rate} Hz to {model.sample_rate} Hz"))
    if channels > 1:
        done.append(Adjustment("mixed", channels, f"{channels} channels mixed down to mono"))
    if samples < model.chunk_samples:
        how = "with zeros" if model.pad_mode == "zero" else "by repeating it"
        seconds = samples / model.sample_rate
        done.append(Adjustment(
            "padded", seconds, f"shorter than one chunk ({seconds:.3f} s < {model.chunk_seconds:g} s): padded {how}",
        ))
    return done


def predict_file(
    model: Model,
    path: str | os.PathLike[str],
    *,
    aggregate: Literal["mean", "vote"] = "mean",
    hop_seconds: float | None = None,
) -> FilePrediction:
    """Chunk- and file-level predictions for one audio file (see :func:`predict_files`).

    Raises
    ------
    DataError
        An unknown ``aggregate``.
    AudioError
        The file is missing, empty or cannot be decoded (the message names it).
    """
    check_aggregate(aggregate, model=model)
    signal = load_audio(path, sample_rate=model.sample_rate)
    adjustments = file_adjustments(Path(path), model=model, samples=signal.size)
    return _predict(model, signal, source=str(path), adjustments=adjustments, hop_seconds=hop_seconds, aggregate=aggregate)


def predict_files(
    model: Model,
    paths: Sequence[str | os.PathLike[str]],
    *,
    aggregate: Literal["mean", "vote"] = "mean",
    hop_seconds: float | None = None,
) -> list[FilePrediction]:
    """Chunk- and file-level predictions for audio files and folders, one file after the other.

    Each file is decoded, mixed to mono and resampled to the model's rate
    (:func:`dsplug.audio.load_audio`), cut into chunks of the model's length every
    ``hop_seconds`` (the last, or only, chunk padded as the metadata says) and run chunk by
    chunk. Every input is checked (existence, folders not empty) before any file is decoded.
    The first file that cannot be decoded stops it: :func:`dsplug.runtime.predict_batch`
    skips such files instead, and runs several files at once.

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
    check_aggregate(aggregate, model=model)
    return [
        predict_file(model, path, aggregate=aggregate, hop_seconds=hop_seconds)
        for path in collect_audio_files(paths)
    ]


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
    check_aggregate(aggregate, model=model)
    signal = prepare_signal(samples, rate=sample_rate, sample_rate=model.sample_rate, source=source)
    channels = int(np.shape(samples)[1]) if np.ndim(samples) == 2 else 1
    adjustments = _adjustments(model, rate=sample_rate, channels=channels, samples=signal.size)
    return _predict(model, signal, source=source, adjustments=adjustments, hop_seconds=hop_seconds, aggregate=aggregate)


def check_aggregate(aggregate: str, *, model: Model) -> None:
    """Refuse an ``aggregate`` other than ``"mean"`` or ``"vote"`` (a vote needs a classifier).

    Raises
    ------
    DataError
        The value and the choices.
    """
    if aggregate not in ("mean", "vote"):
        raise DataError(f"aggregate must be 'mean' or 'vote', got {aggregate!r}")
    if aggregate == "vote" and model.task.aggregation("vote") != "vote":
        raise DataError(f"aggregate='vote' needs a classification model; this one is {model.task}: use 'mean'")


def _predict(
    model: Model, signal: np.ndarray, *, source: str, adjustments: Sequence[Adjustment], hop_seconds: float | None,
    aggregate: str,
) -> FilePrediction:
    """Chunk a mono signal at the model's rate, run the chunks, aggregate them."""
    hop = model.hop_seconds if hop_seconds is None else hop_seconds
    chunks = chunk_signal(
        signal, sample_rate=model.sample_rate, chunk_seconds=model.chunk_seconds,
        hop_seconds=hop, pad_mode=model.host_pad_mode, source=source,
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
        label=model.task.decide(file_outputs, classes=model.classes),
        chunk_labels=tuple(model.task.decide(row, classes=model.classes) for row in outputs),
        adjustments=tuple(adjustments),
        classes=model.classes,
        task=model.task,
    )
    logger.debug("%s: %d chunk(s), label %s", source, len(outputs), result.label)
    return result
