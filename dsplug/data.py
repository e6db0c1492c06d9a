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

import csv
import dataclasses
import io
import logging
import math
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dsplug.errors import AudioError, DataError

logger = logging.getLogger(__name__)

PARTITIONS = ("train", "devel", "test")
Task = Literal["classification", "multilabel", "regression"]


@dataclasses.dataclass(frozen=True)
class Item:
    """One manifest row.

    Attributes
    ----------
    path : Path
        Absolute audio file path.
    label : str
        The raw label text (class name, ``;``-separated names, or a number).
    partition : str
        ``train``, ``devel`` or ``test``.
    group : str
        Speaker/session id ("" if none).
    row : int
        Line number in the manifest (for messages).
    """

    path: Path
    label: str
    partition: str
    group: str
    row: int


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A validated manifest with its partitions and class list.

    Attributes
    ----------
    source : Path
        The CSV file.
    items : list[Item]
        All rows, each with its partition.
    classes : list[str]
        Class names in output order (empty for regression).
    task : str
        ``classification``, ``multilabel`` or ``regression``.
    split_from : str
        ``column`` if partitions came from the manifest, ``seeded split`` otherwise.
    """

    source: Path
    items: list[Item]
    classes: list[str]
    task: Task
    split_from: str
    warnings: list[str] = dataclasses.field(default_factory=list)

    def partition(self, name: str) -> list[Item]:
        """Items of one partition, in manifest order."""
        return [item for item in self.items if item.partition == name]

    def targets(self, items: Sequence[Item]) -> np.ndarray:
        """Targets of items.

        Returns
        -------
        np.ndarray
            ``(n,) int64`` class indices (classification), ``(n, k) float32`` multi-hot
            (multilabel), or ``(n,) float32`` values (regression).
        """
        if self.task == "regression":
            return np.array([float(item.label) for item in items], dtype=np.float32)
        index = {name: i for i, name in enumerate(self.classes)}
        if self.task == "classification":
            return np.array([index[item.label] for item in items], dtype=np.int64)
        hot = np.zeros((len(items), len(self.classes)), dtype=np.float32)
        for row, item in enumerate(items):
            for label in split_labels(item.label):
                hot[row, index[label]] = 1.0
        return hot


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



def split_labels(label: str) -> list[str]:
    """Split a multi-label cell (``"dog; bark"`` -> ``["dog", "bark"]``)."""
    return [part.strip() for part in label.split(";") if part.strip()]


def load_manifest(
    path: str | Path,
    *,
    task: Task = "classification",
    classes: Sequence[str] | None = None,
    split: tuple[float, float] = (0.15, 0.15),
    seed: int = 0,
    check_files: bool = True,
) -> Manifest:
    """Read and validate a manifest CSV.

    Parameters
    ----------
    path : path
        The manifest CSV.
    task : {"classification", "multilabel", "regression"}
        How labels are read.
    classes : sequence of str, optional
        Class names in output order; default: the sorted labels found in the data. A label not
        in this list is an error.
    split : (float, float)
        Fractions of groups for devel and test when the manifest has no ``partition`` column.
    seed : int
        Seed of that split.
    check_files : bool
        Check that every audio file exists.

    Problems that make a run meaningless are errors; doubtful rows are kept and reported in
    :attr:`Manifest.warnings` (also logged, and recorded in ``data.json``).

    Raises
    ------
    DataError
        Missing file or columns, a row with more fields than the header, empty manifest, unknown
        partition, label not in ``classes``, missing audio files, one file in two partitions,
        fewer than two classes, empty class or partition, nothing to evaluate on.
    """
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise DataError(f"manifest {str(path)!r} does not exist; set data.manifest in the recipe or pass -o data.manifest=PATH")
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [_row(row, columns=columns, source=source, line=reader.line_num) for row in reader]
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"manifest {source}: not a readable CSV file ({err}); save it as UTF-8 CSV") from err
    except OSError as err:
        raise DataError(f"manifest {source}: cannot be read ({err})") from err
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        raise DataError(
            f"manifest {source}: missing column(s) {', '.join(missing)}; found columns "
            f"{', '.join(columns) or 'none'}. Required: path, label; optional: partition, group"
        )
    if not rows:
        raise DataError(f"manifest {source}: no rows; add one line per audio file")

    has_partition = "partition" in columns
    items: list[Item] = []
    absent: list[str] = []
    for number, row in enumerate(rows, start=2):
        if not row.get("path"):
            raise DataError(f"manifest {source}, line {number}: empty path")
        if not row.get("label"):
            raise DataError(f"manifest {source}, line {number}: empty label for {row['path']!r}")
        audio = Path(row["path"]).expanduser()
        if not audio.is_absolute():
            audio = source.parent / audio
        if check_files and not audio.is_file():
            absent.append(f"line {number}: {row['path']}")
        partition = row.get("partition", "") if has_partition else ""
        if has_partition and partition not in PARTITIONS:
            raise DataError(
                f"manifest {source}, line {number}: partition {partition!r} is not one of "
                f"{', '.join(PARTITIONS)}"
            )
        items.append(Item(audio, row["label"], partition, row.get("group", ""), number))
    if absent:
        more = f" (and {len(absent) - 3} more)" if len(absent) > 3 else ""
        raise DataError(
            f"manifest {source}: {len(absent)} audio file(s) do not exist: "
            f"{'; '.join(absent[:3])}{more}. Paths are relative to the manifest's folder"
        )

    _check_leakage(items, source=source)
    warnings = _doubtful_rows(items, task=task)
    found_classes = _classes_of(items, task=task, source=source)
    if classes is not None:
        if len(set(classes)) != len(classes):
            repeated = sorted({c for c in classes if list(classes).count(c) > 1})
            warnings.append(f"data.classes lists {', '.join(map(repr, repeated))} more than once; kept once each")
            classes = list(dict.fromkeys(classes))
        unknown = sorted(set(found_classes) - set(classes))
        if unknown:
            bad = next(i for i in items if any(lab in unknown for lab in _labels_of(i, task)))
            raise DataError(
                f"manifest {source}, line {bad.row}: label {unknown[0]!r} is not in data.classes "
                f"({', '.join(classes)}); add it to data.classes or fix the label"
            )
        class_list = list(classes)
    else:
        class_list = found_classes

    if task == "classification" and len(class_list) < 2:
        raise DataError(
            f"manifest {source}: classification needs at least two classes, found "
            f"{', '.join(map(repr, class_list))}; add files of other classes"
        )
    if not has_partition:
        items = _group_split(items, devel=split[0], test=split[1], seed=seed, source=source)
    manifest = Manifest(source, items, class_list, task, "column" if has_partition else "seeded split", warnings)
    _check_partitions(manifest)
    for message in manifest.warnings:
        logger.warning("manifest %s: %s", source, message)
    return manifest


def _row(row: dict[str | None, Any], *, columns: list[str], source: Path, line: int) -> dict[str, str]:
    """One CSV row as stripped strings; a row with more fields than the header is an error."""
    if None in row:
        extra = row[None]
        raise DataError(
            f"manifest {source}, line {line}: {len(columns) + len(extra)} fields but the header has "
            f"{len(columns)} ({', '.join(columns)}); a path or label that contains a comma must be "
            f"quoted (\"a,b.wav\"), and extra columns need a header name"
        )
    return {(k or "").strip(): (v or "").strip() for k, v in row.items()}


def _check_leakage(items: Sequence[Item], *, source: Path) -> None:
    """The same audio file in two partitions would leak training data into evaluation."""
    seen: dict[Path, Item] = {}
    for item in items:
        key = item.path.resolve()
        first = seen.setdefault(key, item)
        if first.partition != item.partition:
            raise DataError(
                f"manifest {source}, lines {first.row} and {item.row}: {item.path.name} is in both "
                f"{first.partition or 'the automatic split'} and {item.partition}; one file must be in "
                "one partition only (remove one of the rows)"
            )


def _doubtful_rows(items: Sequence[Item], *, task: Task) -> list[str]:
    """Warnings: repeated rows and labels that differ only in case."""
    warnings = []
    rows: dict[tuple[Path, str], list[int]] = {}
    for item in items:
        rows.setdefault((item.path.resolve(), item.label), []).append(item.row)
    repeated = [lines for lines in rows.values() if len(lines) > 1]
    if repeated:
        shown = "; ".join("lines " + ", ".join(map(str, lines)) for lines in repeated[:3])
        more = f" and {len(repeated) - 3} more" if len(repeated) > 3 else ""
        warnings.append(f"{len(repeated)} file(s) listed more than once ({shown}{more}); each copy is used")
    if task != "regression":
        labels = sorted({label for item in items for label in _labels_of(item, task)})
        by_case: dict[str, list[str]] = {}
        for label in labels:
            by_case.setdefault(label.casefold(), []).append(label)
        clashes = [names for names in by_case.values() if len(names) > 1]
        if clashes:
            warnings.append(
                "labels that differ only in case are different classes: "
                + "; ".join(" / ".join(names) for names in clashes)
                + "; fix the spelling if they are meant to be one class"
            )
    return warnings


def _labels_of(item: Item, task: Task) -> list[str]:
    if task == "multilabel":
        return split_labels(item.label)
    return [item.label]


def _classes_of(items: Sequence[Item], *, task: Task, source: Path) -> list[str]:
    if task == "regression":
        for item in items:
            try:
                value = float(item.label)
            except ValueError as err:
                raise DataError(
                    f"manifest {source}, line {item.row}: label {item.label!r} is not a number "
                    "(data.task is regression)"
                ) from err
            if not math.isfinite(value):
                raise DataError(f"manifest {source}, line {item.row}: label {item.label!r} is not finite")
        return []
    return sorted({label for item in items for label in _labels_of(item, task)})


def _group_split(items: list[Item], *, devel: float, test: float, seed: int, source: Path) -> list[Item]:
    """Seeded split that keeps each group (or each file, without groups) in one partition."""
    keys = sorted({item.group or str(item.path) for item in items})
    if len(keys) < 3:
        unit = "groups" if any(item.group for item in items) else "files"
        raise DataError(
            f"manifest {source}: {len(keys)} {unit} cannot be split into train, devel and test; "
            "add recordings, or give a partition column (train/devel/test) yourself"
        )
    rng = np.random.default_rng(seed)
    order = [keys[i] for i in rng.permutation(len(keys))]
    n_test = max(1, round(test * len(keys))) if len(keys) >= 3 else 0
    n_devel = max(1, round(devel * len(keys))) if len(keys) >= 3 else 0
    assign = {}
    for i, key in enumerate(order):
        assign[key] = "test" if i < n_test else "devel" if i < n_test + n_devel else "train"
    return [dataclasses.replace(item, partition=assign[item.group or str(item.path)]) for item in items]


def _check_partitions(manifest: Manifest) -> None:
    train = manifest.partition("train")
    if not train:
        raise DataError(
            f"manifest {manifest.source}: the train partition is empty; mark rows with "
            "partition=train or remove the partition column to split automatically"
        )
    if manifest.task == "regression":
        return
    counts = Counter(lab for item in train for lab in _labels_of(item, manifest.task))
    empty = [name for name in manifest.classes if counts[name] == 0]
    if empty:
        raise DataError(
            f"manifest {manifest.source}: class(es) {', '.join(map(repr, empty))} have no "
            "training file; add training files or remove the class from data.classes"
        )


def check_evaluable(manifest: Manifest) -> None:
    """A run needs devel or test files to evaluate on; an empty one of the two is a warning.

    Raises
    ------
    DataError
        Neither devel nor test has a file.
    """
    if not manifest.partition("devel") and not manifest.partition("test"):
        raise DataError(
            f"manifest {manifest.source}: no devel and no test files, so nothing can be evaluated; "
            "mark some rows partition=devel / test (other speakers than train), or remove the "
            "partition column to split automatically"
        )
    for name in ("devel", "test"):
        if not manifest.partition(name):
            message = f"the {name} partition is empty: " + (
                "the last epoch is kept (no model selection)" if name == "devel" else "no test figures"
            )
            if message not in manifest.warnings:
                manifest.warnings.append(message)
                logger.warning("manifest %s: %s", manifest.source, message)


# ------------------------------------------------------------------------------- summaries
def durations(items: Sequence[Item]) -> np.ndarray:
    """Durations in seconds read from file headers (NaN where a header cannot be read)."""
    import soundfile

    def one(item: Item) -> float:
        try:
            return float(soundfile.info(str(item.path)).duration)
        except Exception:  # unreadable headers are reported when the audio is decoded
            return float("nan")

    with ThreadPoolExecutor(max_workers=4) as pool:
        return np.array(list(pool.map(one, items)), dtype=np.float64)


def summarize(manifest: Manifest) -> dict[str, Any]:
    """Counts per class and partition, and durations.

    Returns
    -------
    dict
        ``{"manifest", "task", "split_from", "classes", "partitions": {name: {"files",
        "seconds", "counts": {class: n}}}, "files", "seconds"}``.
    """
    secs = durations(manifest.items)
    by_item = {id(item): s for item, s in zip(manifest.items, secs)}
    partitions: dict[str, Any] = {}
    for name in PARTITIONS:
        items = manifest.partition(name)
        if not items:
            continue
        counts = Counter(lab for item in items for lab in _labels_of(item, manifest.task))
        partitions[name] = {
            "files": len(items),
            "seconds": float(np.nansum([by_item[id(i)] for i in items])),
            "groups": len({i.group for i in items if i.group}),
            "counts": {c: counts[c] for c in manifest.classes} if manifest.classes else {},
        }
    return {
        "manifest": str(manifest.source),
        "task": manifest.task,
        "split_from": manifest.split_from,
        "classes": manifest.classes,
        "partitions": partitions,
        "files": len(manifest.items),
        "seconds": float(np.nansum(secs)),
        "warnings": list(manifest.warnings),
        "skipped": [],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of :func:`summarize`'s result."""
    parts = [p for p in PARTITIONS if p in summary["partitions"]]
    lines = [
        f"manifest: {summary['manifest']}",
        f"task: {summary['task']}; partitions from: {summary['split_from']}; "
        f"{summary['files']} files, {summary['seconds'] / 60:.1f} min in all",
    ]
    if summary["classes"]:
        width = max(len(c) for c in summary["classes"] + ["class"])
        lines.append(f"{'class':<{width}}  " + "  ".join(f"{p:>7}" for p in parts))
        for name in summary["classes"]:
            cells = "  ".join(f"{summary['partitions'][p]['counts'][name]:>7}" for p in parts)
            lines.append(f"{name:<{width}}  {cells}")
    files = "  ".join(f"{summary['partitions'][p]['files']:>7}" for p in parts)
    minutes = "  ".join(f"{summary['partitions'][p]['seconds'] / 60:>7.1f}" for p in parts)
    width = max([len(c) for c in summary["classes"]] + [7])
    lines.append(f"{'files':<{width}}  {files}")
    lines.append(f"{'minutes':<{width}}  {minutes}")
    if summary.get("skipped"):
        skipped = "  ".join(f"{summary['partitions'][p].get('skipped', 0):>7}" for p in parts)
        lines.append(f"{'skipped':<{width}}  {skipped}   (undecodable files, see skipped_files.csv)")
    lines += [f"warning: {message}" for message in summary.get("warnings", [])]
    return "\n".join(lines)


# --------------------------------------------------------------------------- decoded chunks
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
    from dsplug.audio import chunk_signal, load_audio

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
    counts = Counter(lab for item in train.files for lab in _labels_of(item, manifest.task))
    empty = [name for name in manifest.classes if counts[name] == 0]
    if empty:
        lost = Counter(lab for item, _ in train.skipped for lab in _labels_of(item, manifest.task))
        raise DataError(
            f"manifest {manifest.source}: after skipping undecodable files, class(es) "
            + ", ".join(f"{name!r} ({lost[name]} skipped)" for name in empty)
            + " have no training audio; fix or replace those files (see skipped_files.csv)"
        )


def with_skipped(summary: dict[str, Any], skipped: Sequence[tuple[Item, str]]) -> dict[str, Any]:
    """The data summary with the skipped files recorded and subtracted from the counts.

    Parameters
    ----------
    summary : dict
        From :func:`summarize`.
    skipped : sequence of (Item, reason)
        Files that could not be decoded and were skipped.
    """
    result = {**summary, "skipped": [{"path": str(item.path), "line": item.row, "partition": item.partition, "reason": reason} for item, reason in skipped]}
    partitions = {name: {**part, "counts": dict(part["counts"])} for name, part in summary["partitions"].items()}
    for item, _ in skipped:
        part = partitions[item.partition]
        part["files"] -= 1
        part["skipped"] = part.get("skipped", 0) + 1
        for label in _labels_of(item, summary["task"]) if summary["classes"] else []:
            part["counts"][label] -= 1
    result["partitions"] = partitions
    result["files"] = summary["files"] - len(skipped)
    return result
