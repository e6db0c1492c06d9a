"""Manifest (CSV or folder) -> partitions -> decoded chunks -> tf.data.

The manifest is a CSV with columns ``path`` (absolute, or relative to the CSV's folder),
``label`` (class name; ``;``-separated names for multi-label; a number for regression),
optional ``partition`` (``train``/``devel``/``test``) and optional ``group`` (speaker or session),
or a folder with one subfolder of audio files per class (:mod:`dsplug.data.folders`). Without
partitions, a stratified group split makes them (:mod:`dsplug.data.split`).

Examples
--------
>>> manifest = load_manifest("data/tones/manifest.csv", task="classification")  # doctest: +SKIP
>>> summary = summarize(manifest)  # doctest: +SKIP
"""

from __future__ import annotations

from dsplug.data.chunks import ChunkSet, Split, check_decoded, decode_chunks, decode_for, skipped_csv
from dsplug.data.folders import AUDIO_EXTENSIONS, FolderManifest, scan_folder, write_folder_manifest
from dsplug.data.manifest import (
    PARTITIONS,
    Item,
    Manifest,
    check_evaluable,
    item_labels,
    load_manifest,
    manifest_for,
    split_labels,
)
from dsplug.data.split import stratified_group_split
from dsplug.data.summary import durations, format_summary, summarize, with_skipped

__all__ = [
    "AUDIO_EXTENSIONS",
    "PARTITIONS",
    "ChunkSet",
    "FolderManifest",
    "Item",
    "Manifest",
    "Split",
    "check_decoded",
    "check_evaluable",
    "decode_chunks",
    "decode_for",
    "durations",
    "format_summary",
    "item_labels",
    "load_manifest",
    "manifest_for",
    "scan_folder",
    "skipped_csv",
    "split_labels",
    "stratified_group_split",
    "summarize",
    "with_skipped",
    "write_folder_manifest",
]
