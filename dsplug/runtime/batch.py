"""Predictions for many files at once: files decoded and run in parallel, bad files skipped.

:func:`predict_batch` is what ``dsplug predict`` runs. It gives each worker thread a model of
its own (:meth:`dsplug.runtime.Model.replica`: a LiteRT interpreter is not thread-safe, and it
releases the GIL while it runs, as libsndfile and soxr do while they decode and resample), so
``jobs`` files are decoded and run at once. The results are in input order and equal to those of
one thread (``jobs=1``) to the last bit: every file is computed the same way, only elsewhere.

A file that cannot be decoded (damaged, empty, not audio) is skipped and reported as a
:class:`SkippedFile`, as are the files of a folder whose extension is not an audio format
(:data:`dsplug.runtime.AUDIO_EXTENSIONS`). What was done to the audio is summarised in one note
per kind (``"resampled 624 files from 44.1 kHz to 16 kHz"``), not one per file.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

from dsplug.errors import AudioError, DataError
from dsplug.runtime.predict import AUDIO_EXTENSIONS, FilePrediction, check_aggregate, find_audio_files, predict_file

if TYPE_CHECKING:  # pragma: no cover - typing only
    from dsplug.runtime.model import Model

logger = logging.getLogger(__name__)

__all__ = ["BatchPrediction", "SkippedFile", "default_jobs", "group_notes", "predict_batch"]

#: ``progress(total=, description=)``: a context yielding ``update(done)`` (the CLI draws a bar).
Progress = Callable[..., contextlib.AbstractContextManager[Callable[[int], None]]]


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file that was not predicted.

    Attributes
    ----------
    file : str
        The path as given or found in a folder.
    reason : {"undecodable", "extension"}
        It could not be decoded (damaged, empty, not audio), or a folder held it with an
        extension that is not an audio format dsplug reads.
    message : str
        Why, in words (the decoder's error names the file).
    """

    file: str
    reason: Literal["undecodable", "extension"]
    message: str


@dataclasses.dataclass(frozen=True)
class BatchPrediction:
    """Predictions for many files.

    Attributes
    ----------
    predictions : tuple of FilePrediction
        One per predicted file, in input order (each folder sorted by path).
    skipped : tuple of SkippedFile
        The files that were not predicted, in input order.
    notes : tuple of str
        What was done to the audio, one line per kind (:func:`group_notes`).
    seconds : float
        Wall time of decoding and inference, in seconds.
    jobs : int
        Files decoded and run at once.
    """

    predictions: tuple[FilePrediction, ...]
    skipped: tuple[SkippedFile, ...]
    notes: tuple[str, ...]
    seconds: float
    jobs: int

    @property
    def files_per_second(self) -> float:
        """Files predicted per second of wall time."""
        return len(self.predictions) / max(self.seconds, 1e-9)


def default_jobs(*, threads: int | None = None) -> int:
    """Files to run at once by default: the usable CPU cores divided by the interpreter threads.

    Parameters
    ----------
    threads : int, optional
        Threads of each interpreter (None: one).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, threads or 1))


def predict_batch(
    model: Model,
    paths: Sequence[str | os.PathLike[str]],
    *,
    aggregate: Literal["mean", "vote"] = "mean",
    hop_seconds: float | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> BatchPrediction:
    """Chunk- and file-level predictions for many files, several at once, bad files skipped.

    Every file is predicted as :func:`dsplug.runtime.predict_files` does it; the outputs are
    the same whatever ``jobs`` is.

    Parameters
    ----------
    model : Model
        From :func:`dsplug.runtime.load_model`. It runs in one worker; the others get
        replicas (:meth:`Model.replica`). Do not use it elsewhere while this runs.
    paths : sequence of path
        Audio files and/or folders (searched recursively, see
        :func:`dsplug.runtime.find_audio_files`).
    aggregate : {"mean", "vote"}
        Chunk outputs to file outputs (see :func:`dsplug.runtime.predict_files`).
    hop_seconds : float, optional
        Hop between chunks in seconds; default the model's.
    jobs : int, optional
        Files decoded and run at once (>= 1); default :func:`default_jobs` for the model's
        interpreter threads. ``1`` runs everything in the calling thread.
    progress : callable, optional
        ``progress(total=, description=)`` -> context manager yielding ``update(done)``, called
        as files finish (with more than one file).

    Returns
    -------
    BatchPrediction

    Raises
    ------
    DataError
        No input, an unknown ``aggregate``, or ``jobs`` not a positive whole number.
    AudioError
        A path is missing or a folder holds no audio (before any file is decoded); no file
        could be decoded (one file: its own error).
    """
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise DataError(f"jobs must be a positive whole number, got {jobs!r}; leave it out to use every core")
    check_aggregate(aggregate, model=model)
    files, others = find_audio_files(paths)
    workers = min(len(files), jobs or default_jobs(threads=model.threads))

    def work(replica: Model, path: Path) -> FilePrediction | AudioError:
        try:
            return predict_file(replica, path, aggregate=aggregate, hop_seconds=hop_seconds)
        except AudioError as err:
            logger.debug("skipping %s: %s", path, err)
            return err

    start = time.perf_counter()
    with _progress(progress, total=len(files) if len(files) > 1 else 0) as update:
        outcomes = _run(model, files, work=work, jobs=workers, update=update)
    seconds = time.perf_counter() - start
    predictions = tuple(o for o in outcomes if isinstance(o, FilePrediction))
    errors = [(path, o) for path, o in zip(files, outcomes) if isinstance(o, AudioError)]
    if not predictions:
        _raise_nothing_decoded(errors)
    skipped = [SkippedFile(file=str(path), reason="undecodable", message=str(err)) for path, err in errors] + [
        SkippedFile(file=str(path), reason="extension", message=_extension_message(path)) for path in others
    ]
    logger.debug("predicted %d files in %.2f s with %d jobs; skipped %d", len(predictions), seconds, workers, len(skipped))
    return BatchPrediction(
        predictions=predictions, skipped=tuple(skipped), notes=tuple(group_notes(predictions, model=model)),
        seconds=seconds, jobs=workers,
    )


def _extension_message(path: Path) -> str:
    what = f"extension {path.suffix}" if path.suffix else "no extension"
    return f"{path} has {what}, not an audio format dsplug reads ({', '.join(AUDIO_EXTENSIONS)}); name it to predict it anyway"


def _raise_nothing_decoded(errors: Sequence[tuple[Path, AudioError]]) -> NoReturn:
    """No file was predicted: one file's own error, or the first of several."""
    path, first = errors[0]
    if len(errors) == 1:
        raise AudioError(str(first)) from first
    raise AudioError(
        f"none of the {len(errors)} audio files could be decoded; the first, {str(path)!r}: {first}"
    ) from first


@contextlib.contextmanager
def _progress(progress: Progress | None, *, total: int) -> Iterator[Callable[[int], None]]:
    if progress is None or total == 0:
        yield lambda done: None
    else:
        with progress(total=total, description="predicting") as update:
            yield update


_Work = Callable[["Model", Path], "FilePrediction | AudioError"]


def _run(model: Model, files: Sequence[Path], *, work: _Work, jobs: int, update: Callable[[int], None]) -> list[FilePrediction | AudioError]:
    """``work(model, file)`` for every file, ``jobs`` at once, results in the order of ``files``."""
    if jobs == 1:
        outcomes = []
        for path in files:
            outcomes.append(work(model, path))
            update(len(outcomes))
        return outcomes
    models = _Replicas(model)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dsplug-predict") as pool:
        futures = [pool.submit(lambda p: work(models.get(), p), path) for path in files]
        try:
            for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
                future.result()  # an unexpected error stops the batch at once
                update(done)
        except BaseException:  # Ctrl-C included: the files not started are not started
            for future in futures:
                future.cancel()
            raise
        return [future.result() for future in futures]


class _Replicas:
    """A model per worker thread: the given one for the first thread, replicas for the others."""

    def __init__(self, model: Model) -> None:
        self._model = model
        self._spare = [model]
        self._lock = threading.Lock()
        self._local = threading.local()

    def get(self) -> Model:
        model: Model | None = getattr(self._local, "model", None)
        if model is None:
            with self._lock:
                model = self._spare.pop() if self._spare else None
            if model is None:
                model = self._model.replica()
            self._local.model = model
        return model


def group_notes(predictions: Sequence[FilePrediction], *, model: Model) -> list[str]:
    """What was done to the audio of many files, one line per kind of adjustment.

    Parameters
    ----------
    predictions : sequence of FilePrediction
        Predictions made with ``model``.
    model : Model

    Returns
    -------
    list of str
        At most three lines, e.g. ``"resampled 624 files from 44.1 kHz to 16 kHz"``, ``"mixed
        3 stereo files down to mono"``, ``"padded 5 files shorter than the chunk (0.5 s) with
        zeros"``.
    """
    by_kind: dict[str, collections.Counter[float]] = collections.defaultdict(collections.Counter)
    for p in predictions:
        for adjustment in p.adjustments:
            by_kind[adjustment.kind][adjustment.value] += 1
    notes = []
    if rates := _most_common(by_kind.get("resampled")):
        total, to = sum(n for _, n in rates), _khz(model.sample_rate)
        if len(rates) == 1:
            notes.append(f"resampled {_files(total)} from {_khz(rates[0][0])} to {to}")
        else:
            notes.append(f"resampled {_files(total)} to {to}: {', '.join(f'{n} from {_khz(r)}' for r, n in rates)}")
    if channels := _most_common(by_kind.get("mixed")):
        total = sum(n for _, n in channels)
        if len(channels) == 1:
            notes.append(f"mixed {_files(total, _channels(channels[0][0]))} down to mono")
        else:
            notes.append(f"mixed {_files(total)} down to mono: {', '.join(f'{n} {_channels(c)}' for c, n in channels)}")
    if padded := by_kind.get("padded"):
        how = "with zeros" if model.pad_mode == "zero" else "by repeating them"
        notes.append(f"padded {_files(sum(padded.values()))} shorter than the chunk ({model.chunk_seconds:g} s) {how}")
    return notes


def _most_common(counts: collections.Counter[float] | None) -> list[tuple[float, int]]:
    """(value, files), most frequent first; ties by value (deterministic)."""
    return sorted((counts or {}).items(), key=lambda item: (-item[1], item[0]))


def _files(n: int, what: str = "") -> str:
    return f"{n} {what + ' ' if what else ''}file{'' if n == 1 else 's'}"


def _khz(rate: float) -> str:
    return f"{rate / 1000:g} kHz"


def _channels(n: float) -> str:
    return "stereo" if n == 2 else f"{int(n)}-channel"
