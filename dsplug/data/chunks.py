"""Decoded chunks: audio files to fixed-length chunks (once per run), skipped files, ready-to-train splits.

:class:`ChunkSet` holds every chunk in one array (the in-memory storage); :class:`~dsplug.data.shards.ShardSet`
holds them in files on disk. Both are :class:`~dsplug.data.source.ChunkSource` objects: the same
``files``, ``file_index``, ``starts``, ``skipped``, and ``read`` / ``batches`` / ``dataset``.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import numpy as np

from dsplug.audio import Chunks, chunk_signal, load_audio
from dsplug.data.manifest import Item, Manifest
from dsplug.errors import AudioError, DataError

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclasses.dataclass
class Split:
    """Chunks of one partition as arrays in memory (the export's pruning and QAT fine-tunes).

    A run's training and evaluation read :class:`~dsplug.data.labelled.LabelledChunks` instead,
    whose chunks may be on disk and whose targets are kept per file.

    Attributes
    ----------
    audio : np.ndarray [shape=(n_chunks, samples), dtype=float32]
    targets : np.ndarray
        ``(n_chunks, k)`` float32 one-hot / multi-hot, or ``(n_chunks, 1)`` values.
    file_index : np.ndarray [shape=(n_chunks,), dtype=int64]
        File of each chunk (index into ``file_targets``).
    file_targets : np.ndarray
        Per-file class indices ``(n_files,)`` (classification) or targets.
    """

    audio: np.ndarray
    targets: np.ndarray
    file_index: np.ndarray
    file_targets: np.ndarray


@dataclasses.dataclass(frozen=True)
class ChunkSet:
    """All chunks of a list of files, decoded once and held in memory (a ChunkSource).

    Attributes
    ----------
    audio : np.ndarray [shape=(n_chunks, chunk_samples), dtype=float32]
        Chunk samples in [-1, 1] at the recipe's sample rate (or other records of the chunks,
        e.g. features from :func:`dsplug.data.cached_features`, shape ``(n_chunks, ...)``).
    file_index : np.ndarray [shape=(n_chunks,), dtype=int64]
        Index into ``files`` of each chunk's file.
    starts : np.ndarray [shape=(n_chunks,), dtype=float64]
        Start time of each chunk in seconds.
    files : list[Item]
        The decoded files (skipped files removed).
    skipped : list[tuple[Item, str]]
        Files skipped with ``on_bad_file: skip``, with the reason.
    """

    audio: np.ndarray
    file_index: np.ndarray
    starts: np.ndarray
    files: list[Item]
    skipped: list[tuple[Item, str]]

    #: The chunks are in memory (a ShardSet's are on disk).
    in_memory = True

    @property
    def file_ids(self) -> list[str]:
        """File path (as text) of each chunk."""
        return [str(self.files[i].path) for i in self.file_index]

    def __len__(self) -> int:
        return len(self.audio)

    @property
    def record_shape(self) -> tuple[int, ...]:
        """Shape of one record: ``(chunk_samples,)`` for audio."""
        return tuple(self.audio.shape[1:])

    def read(self, index: np.ndarray | Sequence[int]) -> np.ndarray:
        """Records by chunk index, float32, shape ``(len(index), *record_shape)``."""
        return np.asarray(self.audio[np.asarray(index, dtype=np.int64)], dtype=np.float32)

    def batches(self, *, batch_size: int) -> Iterator[np.ndarray]:
        """All records in chunk order, ``batch_size`` at a time (the last batch may be smaller)."""
        for first in range(0, len(self.audio), batch_size):
            yield self.audio[first : first + batch_size]

    def dataset(
        self, *, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0,
        shuffle_buffer: int = 0, drop_remainder: bool = False,
    ) -> Any:
        """Batches ``(index, records)`` as a ``tf.data.Dataset`` (see :meth:`ShardSet.dataset`).

        In memory the shuffle is a full permutation seeded by ``(seed, epoch)``
        (``shuffle_buffer`` is ignored); the dataset is split between workers by batches (DATA
        auto-sharding).
        """
        n = len(self.audio)
        order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
        return indexed_dataset(self, order[: n - n % batch_size] if drop_remainder else order, batch_size=batch_size)


def indexed_dataset(source: Any, order: np.ndarray, *, batch_size: int) -> Any:
    """Batches ``(index, records)`` of a chunk source in a given chunk order, as a ``tf.data.Dataset``.

    The records are read (``source.read``) in a background generator, batch by batch, so memory
    holds a few batches whether the chunks are in memory or on disk; any order works (a
    permutation, an oversampled draw with repeats). The dataset is split between workers by
    batches (DATA auto-sharding): every worker runs the generator and keeps its share.

    Parameters
    ----------
    source : ChunkSet or ShardSet
        Where the records are.
    order : np.ndarray [shape=(m,), dtype=int]
        Chunk indices in the order they are read, repeats allowed.
    batch_size : int
        Chunks per batch (the last batch may be smaller).

    Returns
    -------
    tf.data.Dataset
        Elements ``(index int64 [b], records float32 [b, *record_shape])``.
    """
    import tensorflow as tf

    order = np.asarray(order, dtype=np.int64)

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for first in range(0, len(order), batch_size):
            index = order[first : first + batch_size]
            yield index, source.read(index)

    signature = (
        tf.TensorSpec((None,), tf.int64),
        tf.TensorSpec((None, *source.record_shape), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def ordered_map(function: Callable[[T], R], values: Iterable[T], *, workers: int, ahead: int | None = None) -> Iterator[R]:
    """``map(function, values)`` on ``workers`` threads, results in order, at most ``ahead`` pending.

    Unlike ``ThreadPoolExecutor.map`` it does not submit every value at once, so the results
    waiting for a slow one stay bounded (memory stays flat however many values there are).
    """
    pending: collections.deque[Future[R]] = collections.deque()
    limit = ahead or 2 * workers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for value in values:
            pending.append(pool.submit(function, value))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def decode_file(
    item: Item, *, sample_rate: int, chunk_seconds: float, hop_seconds: float, pad_mode: Literal["zero", "repeat"]
) -> tuple[Chunks, float] | AudioError:
    """Decode, resample and chunk one file; a file that cannot be decoded gives its error.

    Returns
    -------
    (Chunks, float) or AudioError
        The chunks and the decoded duration in seconds, or why the file is bad (returned, not
        raised, so a caller decoding many files decides; see :func:`bad_file_error`).
    """
    try:
        signal = load_audio(item.path, sample_rate=sample_rate)
        chunks = chunk_signal(
            signal, sample_rate=sample_rate, chunk_seconds=chunk_seconds, hop_seconds=hop_seconds,
            pad_mode=pad_mode, source=str(item.path),
        )
        return chunks, signal.size / sample_rate
    except AudioError as err:
        return err
    except Exception as err:  # noqa: BLE001  any decoder failure is this file's problem
        return AudioError(f"cannot decode audio file {str(item.path)!r}: {type(err).__name__}: {err}")


def bad_file_error(item: Item, error: AudioError | str) -> AudioError:
    """The error that stops a run on a bad file (``data.on_bad_file: error``), naming its manifest line."""
    return AudioError(f"{error} (manifest line {item.row}; set data.on_bad_file: skip to skip bad files)")


def no_audio_error(skipped: Sequence[tuple[Item, str]]) -> DataError:
    """The error when no file of a list could be decoded."""
    if not skipped:
        return DataError("no audio files to decode")
    parts = sorted({item.partition for item, _ in skipped if item.partition})
    which = f"{' + '.join(parts)} " if parts else ""
    return DataError(
        f"no {which}audio could be decoded: all {len(skipped)} {which}file(s) were skipped (first: "
        f"{skipped[0][0].path}: {skipped[0][1]})"
        + (f"; {parts[0]} needs at least one readable file" if len(parts) == 1 else "")
    )


def decode_chunks(
    items: Sequence[Item],
    *,
    sample_rate: int,
    chunk_seconds: float,
    hop_seconds: float,
    pad_mode: Literal["zero", "repeat"],
    on_bad_file: Literal["error", "skip"] = "error",
    workers: int = 4,
    progress: Any = None,
) -> ChunkSet:
    """Decode, resample and chunk files in parallel (once per run).

    Parameters
    ----------
    items : sequence of Item
        Files to decode.
    sample_rate, chunk_seconds, hop_seconds, pad_mode
        See :func:`dsplug.audio.chunk_signal`.
    on_bad_file : {"error", "skip"}
        Raise on the first bad file, or skip it and record why.
    workers : int
        Decoding threads.
    progress : callable, optional
        Called with the number of files finished so far (for a progress bar).

    Raises
    ------
    AudioError
        A file cannot be decoded and ``on_bad_file`` is ``error``.
    """
    def one(item: Item) -> tuple[Item, tuple[Chunks, float] | AudioError]:
        return item, decode_file(
            item, sample_rate=sample_rate, chunk_seconds=chunk_seconds, hop_seconds=hop_seconds, pad_mode=pad_mode
        )

    files: list[Item] = []
    skipped: list[tuple[Item, str]] = []
    audio: list[np.ndarray] = []
    index: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    for done, (item, result) in enumerate(ordered_map(one, items, workers=workers), start=1):
        if progress is not None:
            progress(done)
        if isinstance(result, AudioError):
            if on_bad_file == "error":
                raise bad_file_error(item, result) from result
            logger.warning("skipping %s: %s", item.path, result)
            skipped.append((item, str(result)))
            continue
        chunks = result[0]
        index.append(np.full(len(chunks.frames), len(files), dtype=np.int64))
        files.append(item)
        audio.append(chunks.frames)
        starts.append(np.asarray(chunks.starts, dtype=np.float64))
    if not files:
        raise no_audio_error(skipped)
    return ChunkSet(
        audio=np.concatenate(audio).astype(np.float32, copy=False),
        file_index=np.concatenate(index),
        starts=np.concatenate(starts),
        files=files,
        skipped=skipped,
    )


def skipped_csv(skipped: Sequence[tuple[Item, str]]) -> str:
    """CSV text recording skipped files and why (path, manifest_line, partition, reason)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "manifest_line", "partition", "reason"])
    for item, reason in skipped:
        writer.writerow([str(item.path), item.row, item.partition, reason])
    return buffer.getvalue()


def check_decoded(manifest: Manifest, train: ChunkSet) -> None:
    """After skipping bad files, every class must still have training audio.

    Raises
    ------
    DataError
        Naming the classes left without training files and how many files of each were skipped.
    """
    if not manifest.task.has_classes:
        return
    counts = Counter(lab for item in train.files for lab in manifest.task.labels_of(item.label))
    empty = [name for name in manifest.classes if counts[name] == 0]
    if empty:
        lost = Counter(lab for item, _ in train.skipped for lab in manifest.task.labels_of(item.label))
        raise DataError(
            f"manifest {manifest.source}: after skipping undecodable files, class(es) "
            + ", ".join(f"{name!r} ({lost[name]} skipped)" for name in empty)
            + " have no training audio; fix or replace those files (see skipped_files.csv)"
        )
