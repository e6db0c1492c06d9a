"""Manifest -> partitions -> decoded chunks -> tf.data.

The manifest is a CSV with columns ``path`` (absolute, or relative to the CSV's folder),
``label`` (class name; ``;``-separated names for multi-label; a number for regression),
optional ``partition`` (``train``/``devel``/``test``) and optional ``group`` (speaker or session).

Examples
--------
>>> manifest = load_manifest("data/tones/manifest.csv", task="classification")  # doctest: +SKIP
>>> summary = summarize(manifest)  # doctest: +SKIP
"""

from __future__ import annotations

from dsplug.data.chunks import ChunkSet, Split, check_decoded, decode_chunks, decode_for, skipped_csv
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
from dsplug.data.summary import durations, format_summary, summarize, with_skipped

__all__ = [
    "PARTITIONS",
    "ChunkSet",
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
    "skipped_csv",
    "split_labels",
    "summarize",
    "with_skipped",
]
