"""On-disk chunk shards: decode once, stream from disk, memory flat in the hours of audio.

:func:`shard_chunks` decodes a list of files into shards in the chunk cache (see
:mod:`dsplug.data.cache`) and returns a :class:`ShardSet`. Files are streamed one at a time
(a few decode ahead on threads) into shard files of up to :data:`SHARD_BYTES`, so memory while
writing is bounded by the longest file, not the total. Shards are keyed by the files' content
hashes and the data settings: a second run (or sweep point) over the same files decodes nothing,
a file already in another set's shards is copied from there instead of decoded, and a changed
setting (rate, chunking, padding, storage type, decoder version) decodes again.

Inside a set the files are ordered by content hash (a fixed pseudo-random order), so every shard
mixes classes and a shuffle buffer over a few interleaved shards is a good shuffle.

Examples
--------
>>> shards = shard_chunks(manifest.partition("train"), config=recipe.data)  # doctest: +SKIP
>>> for index, audio in shards.dataset(batch_size=32, shuffle=True, seed=0, epoch=1):  # doctest: +SKIP
...     targets = tf.gather(file_targets, tf.gather(shards.file_index, index))
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dsplug.audio import Chunks
from dsplug.data.cache import (
    RecordWriter,
    Shard,
    cache_root,
    chunk_settings,
    content_hash,
    digest,
    locked,
    read_records,
    read_set,
    record_bytes,
    settings_folder,
    shard_index,
    write_set,
)
from dsplug.data.chunks import bad_file_error, decode_file, no_audio_error, ordered_map
from dsplug.data.manifest import Item
from dsplug.errors import AudioError
from dsplug.recipe.schema import DataConfig

logger = logging.getLogger(__name__)

#: A shard is closed once it holds this many bytes ...
SHARD_BYTES = 32 * 2**20
#: ... or 1/MIN_SHARDS of the files, so small sets still give workers several files to share.
MIN_SHARDS = 16
#: Shards read at once by :meth:`ShardSet.dataset` when shuffling.
CYCLE = 8


@dataclasses.dataclass(frozen=True)
class ShardSet:
    """Chunks of a list of files in shard files on disk (a ChunkSource, like :class:`ChunkSet`).

    Attributes
    ----------
    shards : list[Shard]
        The record files in chunk order (``offset`` is each one's first chunk index).
    dtype : str
        Storage type of the records (``float16`` or ``float32``); reads give float32.
    record_shape : tuple of int
        ``(chunk_samples,)`` for audio (other shapes for cached features).
    file_index : np.ndarray [shape=(n_chunks,), dtype=int64]
        Index into ``files`` of each chunk's file.
    starts : np.ndarray [shape=(n_chunks,), dtype=float64]
        Start time of each chunk in its file, in seconds.
    files : list[Item]
        The decoded files in the order given (skipped files removed).
    skipped : list[tuple[Item, str]]
        Files that could not be decoded (``on_bad_file: skip``), with the reason.
    stats : dict
        How the set was made: ``decoded``, ``copied`` and ``reused`` file counts, ``audio_seconds``
        decoded, ``seconds`` taken, ``folder``.
    """

    shards: list[Shard]
    dtype: str
    record_shape: tuple[int, ...]
    file_index: np.ndarray
    starts: np.ndarray
    files: list[Item]
    skipped: list[tuple[Item, str]]
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)

    #: The chunks are on disk (a ChunkSet's are in memory).
    in_memory = False

    def __len__(self) -> int:
        return len(self.file_index)

    @property
    def file_ids(self) -> list[str]:
        """File path (as text) of each chunk."""
        return [str(self.files[i].path) for i in self.file_index]

    @property
    def nbytes(self) -> int:
        """Bytes of all records on disk."""
        return len(self) * record_bytes(self.record_shape, self.dtype)

    def read(self, index: np.ndarray | Sequence[int]) -> np.ndarray:
        """Records by chunk index, read from disk (``pread``, no memory map), float32.

        Parameters
        ----------
        index : array of int [shape=(m,)]
            Chunk indices in ``[0, len(self))``, any order, repeats allowed.

        Returns
        -------
        np.ndarray [shape=(m, *record_shape), dtype=float32]
        """
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        out = np.empty((len(index), *self.record_shape), dtype=np.float32)
        if not len(index):
            return out
        if index.min() < 0 or index.max() >= len(self):
            raise IndexError(f"chunk index out of range 0..{len(self) - 1}")
        offsets = np.array([s.offset for s in self.shards])
        size = record_bytes(self.record_shape, self.dtype)
        stored = np.dtype(self.dtype).newbyteorder("<")
        order = np.argsort(index, kind="stable")
        sorted_index = index[order]
        runs = np.flatnonzero(np.diff(sorted_index) != 1) + 1  # contiguous runs: one read each
        for run in np.split(np.arange(len(index)), runs):
            first, count = int(sorted_index[run[0]]), int(sorted_index[run[-1]] - sorted_index[run[0]] + 1)
            position = 0
            while position < count:  # a run may cross shard boundaries
                shard = self.shards[int(np.searchsorted(offsets, first + position, side="right")) - 1]
                local = first + position - shard.offset
                take = min(count - position, shard.records - local)
                data = np.frombuffer(read_records(shard.path, first=local, count=take, size=size), dtype=stored)
                out[order[run[position : position + take]]] = data.reshape(take, *self.record_shape)
                position += take
        return out

    def batches(self, *, batch_size: int) -> Iterator[np.ndarray]:
        """All records in chunk order, ``batch_size`` at a time (the last batch may be smaller)."""
        for first in range(0, len(self), batch_size):
            yield self.read(np.arange(first, min(first + batch_size, len(self))))

    def dataset(
        self, *, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0,
        shuffle_buffer: int = 1024, drop_remainder: bool = False,
    ) -> Any:
        """Batches ``(index, records)`` streamed from the shard files as a ``tf.data.Dataset``.

        Without ``shuffle`` the chunks come in order. With it, the shard files are permuted, read
        :data:`CYCLE` at a time (interleaved) through a shuffle buffer of ``shuffle_buffer``
        chunks; the order depends only on ``(seed, epoch)``. The source is the list of shard
        files and the dataset is marked for FILE auto-sharding: under ``multiworker`` each worker
        reads only its share of the files (all workers must use the same seed and epoch).

        Parameters
        ----------
        batch_size : int
            Chunks per batch.
        shuffle : bool
            Shuffle (training) or keep the chunk order (evaluation).
        seed, epoch : int
            Seed the order of one epoch.
        shuffle_buffer : int
            Chunks in the shuffle buffer (memory: ``shuffle_buffer x record bytes``).
        drop_remainder : bool
            Drop a last, smaller batch.

        Returns
        -------
        tf.data.Dataset
            Elements ``(index int64 [b], records float32 [b, *record_shape])``; ``index`` selects
            targets, e.g. ``tf.gather(file_targets, tf.gather(file_index, index))``.
        """
        import tensorflow as tf

        order = self._shard_order(shuffle=shuffle, seed=seed, epoch=epoch)
        paths = [str(self.shards[i].path) for i in order]
        firsts = np.array([self.shards[i].offset for i in order], dtype=np.int64)
        size = record_bytes(self.record_shape, self.dtype)
        stored = {"float16": tf.float16, "float32": tf.float32}[self.dtype]
        shape = list(self.record_shape)

        def records(path: Any, first: Any) -> Any:
            return tf.data.FixedLengthRecordDataset(path, record_bytes=size).enumerate().map(lambda i, raw: (first + i, raw))

        def decode(index: Any, raw: Any) -> Any:
            values = tf.io.decode_raw(raw, stored, little_endian=True)
            return index, tf.cast(tf.reshape(values, [-1, *shape]), tf.float32)

        files = tf.data.Dataset.from_tensor_slices((paths, firsts))
        cycle = min(CYCLE, len(paths)) if shuffle else 1
        chunks = files.interleave(records, cycle_length=cycle, num_parallel_calls=cycle, deterministic=True)
        if shuffle:
            chunks = chunks.shuffle(shuffle_buffer, seed=int(np.random.default_rng([seed, epoch, 1]).integers(2**31)), reshuffle_each_iteration=False)
        batched = chunks.batch(batch_size, drop_remainder=drop_remainder).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
        return batched.prefetch(tf.data.AUTOTUNE).with_options(options)


    def _shard_order(self, *, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
        """Positions in ``shards`` in the order :meth:`dataset` lists the shard files."""
        return np.random.default_rng([seed, epoch]).permutation(len(self.shards)) if shuffle else np.arange(len(self.shards))

    def worker_shards(self, *, workers: int, index: int, shuffle: bool = True, seed: int = 0, epoch: int = 0) -> list[Shard]:
        """The shard files worker ``index`` of ``workers`` reads from :meth:`dataset` (FILE auto-sharding).

        tf.data gives worker ``i`` every ``workers``-th file of the dataset's file list, from the
        ``i``-th on; the list is the shards in the order of ``(shuffle, seed, epoch)``. The shares
        of two workers differ by at most one file.

        Parameters
        ----------
        workers : int
            Input pipelines (workers) of the cluster.
        index : int
            This worker's input pipeline (0 is the chief).
        shuffle, seed, epoch
            As given to :meth:`dataset`.
        """
        order = self._shard_order(shuffle=shuffle, seed=seed, epoch=epoch)
        return [self.shards[i] for i in order[index::workers]]


def shard_chunks(
    items: Sequence[Item],
    *,
    config: DataConfig,
    on_bad_file: Literal["error", "skip"] | None = None,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> ShardSet:
    """Decode ``items`` into shards in the chunk cache (or reuse them) as the recipe cuts them.

    Parameters
    ----------
    items : sequence of Item
        Files to decode.
    config : DataConfig
        The recipe's ``data`` section: rate, chunk, hop, padding, ``cache_dir``, ``shard_dtype``.
    on_bad_file : {"error", "skip"}, optional
        Default: ``config.on_bad_file``. A file that failed before is not decoded again (its
        reason is cached with the set) but reported again.
    workers : int
        Decoding threads.
    progress : callable, optional
        Called with the number of files finished so far.

    Raises
    ------
    AudioError
        A file cannot be read or decoded and ``on_bad_file`` is ``error``.
    DataError
        No file could be decoded.
    """
    on_bad_file = on_bad_file or config.on_bad_file
    started = time.perf_counter()
    settings = chunk_settings(config)
    folder = settings_folder(cache_root(config.cache_dir), settings)
    shape, dtype = (settings["chunk_samples"],), settings["dtype"]
    hashes = list(ordered_map(_hash_or_error, items, workers=workers))
    unreadable = {i: h for i, h in enumerate(hashes) if isinstance(h, AudioError)}
    if unreadable and on_bad_file == "error":
        first = min(unreadable)
        raise bad_file_error(items[first], unreadable[first]) from unreadable[first]
    keys = sorted((h, i) for i, h in enumerate(hashes) if isinstance(h, str))
    set_path = folder / "sets" / f"{digest([h for h, _ in keys])}.json"
    stats: dict[str, Any] = {"decoded": 0, "copied": 0, "reused": 0, "audio_seconds": 0.0, "folder": str(folder)}
    with locked(set_path.with_suffix(".lock")):
        recorded = read_set(set_path, dtype=dtype, record_shape=shape)
        if recorded is None:
            recorded = _write(items, keys, folder=folder, settings=settings, on_bad_file=on_bad_file, workers=workers, progress=progress, stats=stats)
            write_set(set_path, shards=recorded[0], failed=recorded[1])
        else:
            stats["reused"] = len(keys)
            if progress is not None:
                progress(len(items))
    shards, failed = recorded
    failures = {i: failed[h] for h, i in keys if h in failed} | {i: str(e) for i, e in unreadable.items()}
    if failures and on_bad_file == "error":
        first = min(failures)
        raise bad_file_error(items[first], failures[first])
    result = _assemble(items, keys, shards=shards, failures=failures, settings=settings, stats=stats)
    result.stats["seconds"] = time.perf_counter() - started
    _log(result)
    return result


def _hash_or_error(item: Item) -> str | AudioError:
    try:
        return content_hash(item.path)
    except OSError as err:
        return AudioError(f"cannot read audio file {str(item.path)!r}: {err}")


def _write(
    items: Sequence[Item], keys: list[tuple[str, int]], *, folder: Path, settings: dict[str, Any],
    on_bad_file: str, workers: int, progress: Callable[[int], None] | None, stats: dict[str, Any],
) -> tuple[list[Shard], dict[str, str]]:
    """Stream the files (in content-hash order) into new shards; returns them and the failures."""
    shards_dir = folder / "shards"
    shape, dtype = (settings["chunk_samples"],), settings["dtype"]
    size = record_bytes(shape, dtype)
    known = shard_index(shards_dir, dtype=dtype, record_shape=shape)
    per_shard = max(1, math.ceil(len(keys) / MIN_SHARDS))
    rate, hop, chunk = settings["sample_rate"], settings["hop_samples"], settings["chunk_samples"]

    def load(key: tuple[str, int]) -> bytes | tuple[Chunks, float] | AudioError:
        if key[0] in known:  # already decoded into another set's shard: copy its records
            shard, first, count = known[key[0]]
            return read_records(shard.path, first=first, count=count, size=size)
        return decode_file(items[key[1]], sample_rate=rate, chunk_seconds=chunk / rate, hop_seconds=hop / rate, pad_mode=settings["pad_mode"])

    shards: list[Shard] = []
    failed: dict[str, str] = {}
    writer: RecordWriter | None = None
    try:
        for done, (key, result) in enumerate(zip(keys, ordered_map(load, keys, workers=workers)), start=1):
            if isinstance(result, AudioError):
                if on_bad_file == "error":
                    raise bad_file_error(items[key[1]], result) from result
                logger.warning("skipping %s: %s", items[key[1]].path, result)
                failed[key[0]] = str(result)
            else:
                writer = writer or RecordWriter(shards_dir, dtype=dtype, record_shape=shape)
                if isinstance(result, bytes):
                    stats["copied"] += 1
                    writer.add(key[0], result)
                else:
                    stats["decoded"] += 1
                    stats["audio_seconds"] += result[1]
                    writer.add(key[0], result[0].frames)
                if writer.bytes >= SHARD_BYTES or len(writer.files) >= per_shard:
                    shards.append(writer.finish(digest([h for h, _ in writer.files], size=12)))
                    writer = None
            if progress is not None:
                progress(done)
        if writer is not None:
            shards.append(writer.finish(digest([h for h, _ in writer.files], size=12)))
            writer = None
    finally:
        if writer is not None:
            writer.abandon()
    offsets = np.cumsum([0] + [s.records for s in shards])
    return [dataclasses.replace(s, offset=int(o)) for s, o in zip(shards, offsets)], failed


def _assemble(
    items: Sequence[Item], keys: list[tuple[str, int]], *, shards: list[Shard], failures: dict[int, str],
    settings: dict[str, Any], stats: dict[str, Any],
) -> ShardSet:
    """The ShardSet of ``items``: which file each stored chunk belongs to, and when it starts."""
    pending: dict[str, list[int]] = {}
    for key, i in keys:
        if i not in failures:
            pending.setdefault(key, []).append(i)
    good = [i for i in range(len(items)) if i not in failures]
    position = {item_number: n for n, item_number in enumerate(good)}
    file_index, starts = [], []
    hop = settings["hop_samples"] / settings["sample_rate"]
    for shard in shards:
        for key, count in shard.files:
            number = pending[key].pop(0)  # duplicates of one file: one stored copy each
            file_index.append(np.full(count, position[number], dtype=np.int64))
            starts.append(np.arange(count, dtype=np.float64) * hop)
    skipped = [(items[i], failures[i]) for i in sorted(failures)]
    if not good:
        raise no_audio_error(skipped)
    return ShardSet(
        shards=shards, dtype=settings["dtype"], record_shape=(settings["chunk_samples"],),
        file_index=np.concatenate(file_index), starts=np.concatenate(starts),
        files=[items[i] for i in good], skipped=skipped, stats=stats,
    )


def _log(result: ShardSet) -> None:
    stats = result.stats
    rate = stats["audio_seconds"] / 3600 / max(stats["seconds"] / 60, 1e-9)
    logger.info(
        "chunk shards in %s: %d chunks in %d shard(s), %.2f GB; %d file(s) decoded (%.2f h of audio, %.1f audio "
        "hours/min), %d copied from other sets, %d reused; %.1f s",
        stats["folder"], len(result), len(result.shards), result.nbytes / 1e9, stats["decoded"],
        stats["audio_seconds"] / 3600, rate, stats["copied"], stats["reused"], stats["seconds"],
    )
