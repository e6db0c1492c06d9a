"""Phase-1 feature cache: frozen-backbone features of every chunk, computed once per batch and kept.

For chunks in memory the features are one array in memory, as before. For chunks in shards the
features of each chunk shard go to a feature file of the same records in the same order
(shard-aligned), written atomically batch by batch, so memory stays at one batch and a resumed
run computes only the shards it has not finished. The result is a chunk source of features: the
trainer reads it like the audio (``read``, ``batches``, ``dataset``).

Examples
--------
>>> features = cached_features(train, extract=lambda audio: backbone(frontend(audio)).numpy(),
...                            folder=run_dir / "features", batch_size=32)  # doctest: +SKIP
>>> features.record_shape  # doctest: +SKIP
(7, 7, 1024)
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dsplug.data.cache import RecordWriter, Shard, read_shard
from dsplug.data.chunks import ChunkSet
from dsplug.data.shards import ShardSet
from dsplug.data.source import MEMORY_LIMIT
from dsplug.errors import DataError

logger = logging.getLogger(__name__)


def cached_features(
    source: ChunkSet | ShardSet,
    *,
    extract: Callable[[np.ndarray], np.ndarray],
    folder: str | os.PathLike[str],
    batch_size: int,
    dtype: str = "float32",
    progress: Callable[[int], None] | None = None,
    memory_limit: int = MEMORY_LIMIT,
) -> ChunkSet | ShardSet:
    """Features of every chunk of ``source``: in memory for a ChunkSet, shard-aligned files for a ShardSet.

    Parameters
    ----------
    source : ChunkSet or ShardSet
        The chunks.
    extract : callable
        ``extract(audio)`` with audio ``(b, chunk_samples)`` float32 returns features
        ``(b, *feature_shape)`` (e.g. the frozen backbone on the front-end's images).
    folder : path
        Where feature files go (ShardSet only). Use one folder per extractor: the run directory
        (``RUN/features``), or a folder named after a hash of everything the features depend on
        (backbone, weights, front-end); files there are taken as this extractor's.
    batch_size : int
        Chunks per ``extract`` call.
    dtype : {"float32", "float16"}
        Storage type of feature files.
    progress : callable, optional
        Called with the number of chunks done so far.
    memory_limit : int
        Bytes of float32 features (those of a ShardSet) up to which the features, once written,
        are read into memory and returned as a ChunkSet (the limit of ``data.storage: auto``);
        larger ones are streamed from their files.

    Returns
    -------
    ChunkSet or ShardSet
        The same files, ``file_index`` and ``starts``; records are the features (in memory for a
        ChunkSet, or for a ShardSet whose features fit ``memory_limit``).
    """
    if isinstance(source, ChunkSet):
        parts = []
        for batch in source.batches(batch_size=batch_size):
            parts.append(np.asarray(extract(batch), dtype=np.float32))
            if progress is not None:
                progress(min(len(parts) * batch_size, len(source)))
        return dataclasses.replace(source, audio=np.concatenate(parts))
    target = Path(folder).expanduser()
    shape = _feature_shape(source, extract=extract)
    shards, done = [], 0
    for shard in source.shards:
        path = target / f"{shard.name}.bin"
        existing = read_shard(path, dtype=dtype, record_shape=shape)
        if existing is None or existing.files != shard.files:
            existing = _write(source, shard, extract=extract, folder=target, dtype=dtype, shape=shape, batch_size=batch_size)
        shards.append(dataclasses.replace(existing, offset=shard.offset))
        done += shard.records
        if progress is not None:
            progress(done)
    features = dataclasses.replace(source, shards=shards, dtype=dtype, record_shape=shape)
    size = len(source) * int(np.prod(shape)) * 4
    if size <= memory_limit:  # reading small features from memory is faster; memory stays bounded by the limit
        logger.info("phase-1 features %s x %s (%.1f MiB <= %g GiB): read into memory from %s", len(source), shape,
                    size / 2**20, memory_limit / 2**30, target)
        audio = features.read(np.arange(len(source)))
        return ChunkSet(audio=audio, file_index=source.file_index, starts=source.starts, files=source.files, skipped=source.skipped)
    logger.info("phase-1 features %s x %s in %d shard-aligned file(s) in %s", len(source), shape, len(shards), target)
    return features


def _feature_shape(source: ShardSet, *, extract: Callable[[np.ndarray], np.ndarray]) -> tuple[int, ...]:
    """Shape of one chunk's features (``extract`` on the first chunk)."""
    sample = np.asarray(extract(source.read([0])))
    if sample.ndim < 1 or len(sample) != 1:
        raise DataError(f"the feature extractor returned shape {sample.shape} for 1 chunk; it must return (batch, ...)")
    return tuple(int(n) for n in sample.shape[1:])


def _write(
    source: ShardSet, shard: Shard, *, extract: Callable[[np.ndarray], np.ndarray], folder: Path, dtype: str,
    shape: tuple[int, ...], batch_size: int,
) -> Shard:
    """Features of one chunk shard, batch by batch into a temporary file, committed at the end."""
    writer = RecordWriter(folder, dtype=dtype, record_shape=shape)
    try:
        for first in range(0, shard.records, batch_size):
            index = np.arange(first, min(first + batch_size, shard.records)) + shard.offset
            features = np.asarray(extract(source.read(index)))
            if features.shape != (len(index), *shape):
                raise DataError(f"the feature extractor returned shape {features.shape} for {len(index)} chunks, expected {(len(index), *shape)}")
            writer.append(features)
        writer.files = list(shard.files)  # the feature file describes the same audio files
        return writer.finish(shard.name)
    except BaseException:
        writer.abandon()
        raise

