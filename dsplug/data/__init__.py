"""Manifest (CSV or folder) -> partitions -> decoded chunks (in memory or in on-disk shards) -> tf.data.

The manifest is a CSV with columns ``path`` (absolute, or relative to the CSV's folder),
``label`` (class name; ``;``-separated names for multi-label; a number for regression),
optional ``partition`` (``train``/``devel``/``test``) and optional ``group`` (speaker or session),
or a folder with one subfolder of audio files per class (:mod:`dsplug.data.folders`). Without
partitions, a stratified group split makes them (:mod:`dsplug.data.split`).

Decoded chunks are a :class:`ChunkSource`: a :class:`ChunkSet` in memory, or a :class:`ShardSet`
of shard files in the chunk cache, reused by later runs (:mod:`dsplug.data.shards`);
:func:`choose_storage` picks one and :func:`decode_for` decodes into it.

Examples
--------
>>> manifest = load_manifest("data/tones/manifest.csv", task="classification")  # doctest: +SKIP
>>> summary = summarize(manifest)  # doctest: +SKIP
>>> choice = choose_storage(manifest.items, config=recipe.data)  # doctest: +SKIP
>>> train = decode_for(manifest.partition("train"), config=recipe.data, storage=choice.storage)  # doctest: +SKIP
"""

from __future__ import annotations

from dsplug.data.cache import cache_root
from dsplug.data.chunks import ChunkSet, Split, check_decoded, decode_chunks, indexed_dataset, skipped_csv
from dsplug.data.features import cached_features
from dsplug.data.folders import AUDIO_EXTENSIONS, FolderManifest, scan_folder, write_folder_manifest
from dsplug.data.labelled import LabelledChunks, combine
from dsplug.data.manifest import (
    PARTITIONS,
    Item,
    Manifest,
    check_evaluable,
    load_manifest,
    manifest_for,
)
from dsplug.data.shards import ShardSet, shard_chunks
from dsplug.data.source import MEMORY_LIMIT, ChunkSource, StorageChoice, choose_storage, combine_sources, decode_for
from dsplug.data.split import stratified_group_split
from dsplug.data.summary import durations, format_summary, summarize, with_skipped

__all__ = [
    "AUDIO_EXTENSIONS",
    "MEMORY_LIMIT",
    "PARTITIONS",
    "ChunkSet",
    "ChunkSource",
    "FolderManifest",
    "Item",
    "LabelledChunks",
    "Manifest",
    "ShardSet",
    "Split",
    "StorageChoice",
    "cache_root",
    "cached_features",
    "check_decoded",
    "check_evaluable",
    "choose_storage",
    "combine",
    "combine_sources",
    "decode_chunks",
    "decode_for",
    "durations",
    "format_summary",
    "indexed_dataset",
    "load_manifest",
    "manifest_for",
    "scan_folder",
    "shard_chunks",
    "skipped_csv",
    "stratified_group_split",
    "summarize",
    "with_skipped",
    "write_folder_manifest",
]
