"""Labelled chunks: one partition's chunks (in memory or on disk) and its files' targets.

This is what training and evaluation read. Targets are kept per file, never per chunk: a chunk's
target is its file's row (``file_rows[file_index[i]]``), gathered batch by batch (inside tf.data
while training). Per chunk, FSD50K's 200 multi-hot classes would take 620 MB as float32 for its
0.8 M chunks; per file they take 40 MB.

Examples
--------
>>> train = LabelledChunks.of(decode_for(manifest.partition("train"), config=recipe.data), manifest=manifest)  # doctest: +SKIP
>>> train.targets_of([0, 5])  # the rows of chunks 0 and 5, e.g. one-hot  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from dsplug.data.chunks import ChunkSet
from dsplug.data.manifest import Item, Manifest
from dsplug.data.shards import ShardSet
from dsplug.data.source import combine_sources


@dataclasses.dataclass(frozen=True)
class LabelledChunks:
    """The chunks of one partition and the targets of their files.

    Attributes
    ----------
    source : ChunkSet or ShardSet
        The chunks (a :class:`~dsplug.data.source.ChunkSource`).
    file_targets : np.ndarray
        ``manifest.targets(source.files)``: class indices ``(n_files,)`` (classification),
        multi-hot ``(n_files, k)`` (multi-label) or values ``(n_files,)`` (regression).
    file_rows : np.ndarray [shape=(n_files, k), dtype=float32]
        What the loss compares a chunk's outputs with, per file: one-hot, multi-hot, or the value
        (``k = 1``).
    """

    source: ChunkSet | ShardSet
    file_targets: np.ndarray
    file_rows: np.ndarray

    @classmethod
    def of(cls, source: ChunkSet | ShardSet, *, manifest: Manifest) -> LabelledChunks:
        """The chunks of ``source`` with their files' targets from ``manifest`` (its task and classes)."""
        file_targets = manifest.targets(source.files)
        rows = manifest.task.target_rows(file_targets, n_classes=len(manifest.classes))
        return cls(source=source, file_targets=file_targets, file_rows=rows)

    def __len__(self) -> int:
        return len(self.source)

    @property
    def files(self) -> list[Item]:
        """The decoded files."""
        return self.source.files

    @property
    def file_index(self) -> np.ndarray:
        """Index into ``files`` of each chunk, ``(n_chunks,)`` int64."""
        return self.source.file_index

    def targets_of(self, index: np.ndarray | Sequence[int]) -> np.ndarray:
        """Target rows of the chunks ``index``: float32 ``(len(index), k)``."""
        return self.file_rows[self.file_index[np.asarray(index, dtype=np.int64)]]

    @property
    def targets(self) -> np.ndarray:
        """Target rows of every chunk, float32 ``(n_chunks, k)`` (evaluation sets; training gathers per batch)."""
        return self.file_rows[self.file_index]

    def chunks_per_file(self) -> np.ndarray:
        """Number of chunks of each file, ``(n_files,)`` int64."""
        return np.bincount(self.file_index, minlength=len(self.files))


def combine(first: LabelledChunks, second: LabelledChunks) -> LabelledChunks:
    """Two partitions as one, ``first``'s chunks then ``second``'s (the final fit on train + devel).

    Nothing is copied on disk: the combined source lists both partitions' shard files.
    """
    return LabelledChunks(
        source=combine_sources(first.source, second.source),
        file_targets=np.concatenate([first.file_targets, second.file_targets]),
        file_rows=np.concatenate([first.file_rows, second.file_rows]),
    )
