"""Chunk sources: what training and evaluation read chunks from, in memory or on disk, chosen automatically.

A :class:`ChunkSource` is a :class:`~dsplug.data.chunks.ChunkSet` (all chunks in one array) or a
:class:`~dsplug.data.shards.ShardSet` (chunks in shard files, streamed). :func:`choose_storage`
picks one for a run (``data.storage``; ``auto`` keeps sets up to :data:`MEMORY_LIMIT` bytes of
decoded float32 chunks in memory, where nothing is faster, and streams larger ones from disk so
memory does not grow with the hours of audio) and logs why; :func:`decode_for` decodes into it.

Examples
--------
>>> choice = choose_storage(manifest.items, config=recipe.data)  # doctest: +SKIP
>>> train = decode_for(manifest.partition("train"), config=recipe.data, storage=choice.storage)  # doctest: +SKIP
>>> for index, audio in train.dataset(batch_size=32, shuffle=True, seed=0, epoch=1):  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Protocol

import numpy as np

from dsplug.audio import HOST_PAD_MODE
from dsplug.data.chunks import ChunkSet, decode_chunks
from dsplug.data.manifest import Item
from dsplug.data.shards import ShardSet, shard_chunks
from dsplug.data.summary import durations
from dsplug.errors import DataError
from dsplug.recipe.schema import DataConfig

logger = logging.getLogger(__name__)

#: ``data.storage: auto`` keeps up to this many bytes of decoded float32 chunks in memory.
MEMORY_LIMIT = 2**30

Storage = Literal["memory", "disk"]


class ChunkSource(Protocol):
    """Chunks of a list of files and where each comes from; in memory or on disk.

    Attributes
    ----------
    files : list[Item]
        The decoded files (skipped files removed); targets are ``manifest.targets(files)``.
    skipped : list[tuple[Item, str]]
        Files that could not be decoded, with the reason.
    file_index : np.ndarray [shape=(n_chunks,), dtype=int64]
        Index into ``files`` of each chunk.
    starts : np.ndarray [shape=(n_chunks,), dtype=float64]
        Start of each chunk in its file, in seconds.
    in_memory : bool
        All records are in one array.
    """

    files: list[Item]
    skipped: list[tuple[Item, str]]
    file_index: np.ndarray
    starts: np.ndarray
    in_memory: bool

    def __len__(self) -> int:
        """Number of chunks."""

    @property
    def record_shape(self) -> tuple[int, ...]:
        """Shape of one record (``(chunk_samples,)`` for audio)."""

    @property
    def file_ids(self) -> list[str]:
        """File path (as text) of each chunk."""

    def read(self, index: np.ndarray | Sequence[int]) -> np.ndarray:
        """Records by chunk index: float32 ``(len(index), *record_shape)``."""

    def batches(self, *, batch_size: int) -> Iterator[np.ndarray]:
        """All records in chunk order, ``batch_size`` at a time."""

    def dataset(
        self, *, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0,
        shuffle_buffer: int = 1024, drop_remainder: bool = False,
    ) -> Any:
        """A ``tf.data.Dataset`` of ``(index int64 [b], records float32 [b, *record_shape])``."""


@dataclasses.dataclass(frozen=True)
class StorageChoice:
    """Where a run keeps its decoded chunks, and why.

    Attributes
    ----------
    storage : {"memory", "disk"}
        In one array, or in shard files.
    decoded_bytes : int
        Estimated bytes of all chunks as float32 (from the files' headers).
    reason : str
        One line for the log and the run's report.
    """

    storage: Storage
    decoded_bytes: int
    reason: str


def decoded_bytes(items: Sequence[Item], *, config: DataConfig) -> int:
    """Estimated bytes of the decoded float32 chunks of ``items`` (durations from file headers).

    A file whose header cannot be read counts as one chunk.
    """
    rate = config.sample_rate
    length = round(config.chunk_seconds * rate)
    hop = round((config.hop_seconds or config.chunk_seconds) * rate)
    seconds = durations(items)
    samples = np.nan_to_num(seconds * rate, nan=0.0)
    chunks = 1 + np.ceil(np.maximum(0.0, samples - length) / hop)
    return int(chunks.sum()) * length * 4


def choose_storage(items: Sequence[Item], *, config: DataConfig, limit: int = MEMORY_LIMIT) -> StorageChoice:
    """Memory or disk for the chunks of ``items`` (all partitions of a run), as ``data.storage`` says.

    Parameters
    ----------
    items : sequence of Item
        Every file the run decodes.
    config : DataConfig
        ``storage``: ``memory``, ``disk``, or ``auto`` (memory up to ``limit`` bytes).
    limit : int
        Bytes of decoded float32 chunks ``auto`` keeps in memory.
    """
    size = decoded_bytes(items, config=config)
    gigabytes = (f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB") + " of decoded chunks"
    if config.storage != "auto":
        choice = StorageChoice(config.storage, size, f"{gigabytes}; data.storage: {config.storage}")
    elif size <= limit:
        choice = StorageChoice("memory", size, f"{gigabytes} <= {limit / 2**30:g} GiB: in memory (data.storage: auto)")
    else:
        choice = StorageChoice("disk", size, f"{gigabytes} > {limit / 2**30:g} GiB: shards on disk, streamed (data.storage: auto)")
    logger.info("data storage: %s", choice.reason)
    return choice


def decode_for(
    items: Sequence[Item],
    *,
    config: DataConfig,
    storage: Storage = "memory",
    on_bad_file: Literal["error", "skip"] | None = None,
    progress: Any = None,
    description: str = "decoding",
) -> ChunkSet | ShardSet:
    """Decode ``items`` as a recipe's ``data`` section cuts them (rate, chunk, hop, padding).

    Parameters
    ----------
    items : sequence of Item
        Files to decode.
    config : DataConfig
        The recipe's ``data`` section.
    storage : {"memory", "disk"}
        Into one array (:class:`ChunkSet`), or into shards in the chunk cache, reused by later
        runs (:class:`ShardSet`); :func:`choose_storage` picks it for a run.
    on_bad_file : {"error", "skip"}, optional
        Default: the recipe's ``data.on_bad_file``.
    progress : callable, optional
        ``progress(total=, description=)`` returning a context manager that yields
        ``update(done)`` (the CLI's progress bars); None: no progress.
    description : str
        The progress bar's label.
    """
    context = progress(total=len(items), description=description) if progress else contextlib.nullcontext(None)
    with context as update:
        if storage == "disk":
            return shard_chunks(items, config=config, on_bad_file=on_bad_file, progress=update)
        return decode_chunks(
            items,
            sample_rate=config.sample_rate,
            chunk_seconds=config.chunk_seconds,
            hop_seconds=config.hop_seconds or config.chunk_seconds,
            pad_mode=HOST_PAD_MODE,  # the model repeats, if its recipe says so
            on_bad_file=on_bad_file or config.on_bad_file,
            progress=update,
        )


def combine_sources(first: ChunkSet | ShardSet, second: ChunkSet | ShardSet) -> ChunkSet | ShardSet:
    """The chunks of two sources as one source: ``first``'s chunks, then ``second``'s.

    In memory the arrays are concatenated; on disk the shard lists are (no file is copied).
    ``file_index`` of the second source's chunks is shifted past the first's files.

    Raises
    ------
    DataError
        The sources are stored differently (memory and disk, other dtype or record shape).
    """
    if type(first) is not type(second) or first.record_shape != second.record_shape or getattr(first, "dtype", None) != getattr(second, "dtype", None):
        raise DataError(
            f"cannot combine chunks stored as {type(first).__name__} {first.record_shape} and "
            f"{type(second).__name__} {second.record_shape}; decode both with the same data settings and storage"
        )
    joined = {
        "file_index": np.concatenate([first.file_index, second.file_index + len(first.files)]),
        "starts": np.concatenate([first.starts, second.starts]),
        "files": [*first.files, *second.files],
        "skipped": [*first.skipped, *second.skipped],
    }
    if isinstance(first, ChunkSet):
        return ChunkSet(audio=np.concatenate([first.audio, second.audio]), **joined)
    assert isinstance(second, ShardSet)
    shards = [*first.shards, *(dataclasses.replace(s, offset=s.offset + len(first)) for s in second.shards)]
    return dataclasses.replace(first, shards=shards, stats={}, **joined)
