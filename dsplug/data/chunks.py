"""Decoded chunks: audio files to fixed-length chunks (once per run), skipped files, ready-to-train splits."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from dsplug.audio import chunk_signal, load_audio
from dsplug.data.manifest import Item, Manifest, item_labels
from dsplug.recipe.schema import DataConfig
from dsplug.errors import AudioError, DataError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Split:
    """Chunks of one partition ready for training or evaluation.

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
    """All chunks of a list of files, decoded once and held in memory.

    Attributes
    ----------
    audio : np.ndarray [shape=(n_chunks, chunk_samples), dtype=float32]
        Chunk samples in [-1, 1] at the recipe's sample rate.
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

    @property
    def file_ids(self) -> list[str]:
        """File path (as text) of each chunk."""
        return [str(self.files[i].path) for i in self.file_index]


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
    def one(item: Item) -> tuple[Item, Any]:
        try:
            signal = load_audio(item.path, sample_rate=sample_rate)
            chunks = chunk_signal(
                signal,
                sample_rate=sample_rate,
                chunk_seconds=chunk_seconds,
                hop_seconds=hop_seconds,
                pad_mode=pad_mode,
                source=str(item.path),
            )
            return item, chunks
        except AudioError as err:
            return item, err
        except Exception as err:  # noqa: BLE001  any decoder failure is this file's problem
            return item, AudioError(f"cannot decode audio file {str(item.path)!r}: {type(err).__name__}: {err}")

    files: list[Item] = []
    skipped: list[tuple[Item, str]] = []
    audio: list[np.ndarray] = []
    index: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, (item, result) in enumerate(pool.map(one, items), start=1):
            if progress is not None:
                progress(done)
            if isinstance(result, AudioError):
                if on_bad_file == "error":
                    raise AudioError(
                        f"{result} (manifest line {item.row}; set data.on_bad_file: skip to skip "
                        "bad files)"
                    ) from result
                logger.warning("skipping %s: %s", item.path, result)
                skipped.append((item, str(result)))
                continue
            index.append(np.full(len(result.frames), len(files), dtype=np.int64))
            files.append(item)
            audio.append(result.frames)
            starts.append(np.asarray(result.starts, dtype=np.float64))
    if not files:
        raise DataError(
            f"no audio could be decoded: all {len(skipped)} file(s) were skipped (first: "
            f"{skipped[0][0].path}: {skipped[0][1]})" if skipped else "no audio files to decode"
        )
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
    if manifest.task == "regression":
        return
    counts = Counter(lab for item in train.files for lab in item_labels(item, manifest.task))
    empty = [name for name in manifest.classes if counts[name] == 0]
    if empty:
        lost = Counter(lab for item, _ in train.skipped for lab in item_labels(item, manifest.task))
        raise DataError(
            f"manifest {manifest.source}: after skipping undecodable files, class(es) "
            + ", ".join(f"{name!r} ({lost[name]} skipped)" for name in empty)
            + " have no training audio; fix or replace those files (see skipped_files.csv)"
        )


def decode_for(
    items: Sequence[Item],
    *,
    config: DataConfig,
    on_bad_file: Literal["error", "skip"] | None = None,
    progress: Any = None,
    description: str = "decoding",
) -> ChunkSet:
    """Decode ``items`` as a recipe's ``data`` section cuts them (rate, chunk, hop, padding).

    Parameters
    ----------
    items : sequence of Item
        Files to decode.
    config : DataConfig
        The recipe's ``data`` section.
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
        return decode_chunks(
            items,
            sample_rate=config.sample_rate,
            chunk_seconds=config.chunk_seconds,
            hop_seconds=config.hop_seconds or config.chunk_seconds,
            pad_mode=config.pad_mode,
            on_bad_file=on_bad_file or config.on_bad_file,
            progress=update,
        )
