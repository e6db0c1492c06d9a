"""Manifests: reading and checking the CSV (or a folder of class folders), partitions, targets.

Partitions come from the ``partition`` column (or ``train``/``devel``/``test`` folders), else from
the stratified group split of :mod:`dsplug.data.split`.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsplug.data.folders import FolderRow, compile_group_pattern, group_of, scan_folder
from dsplug.errors import DataError
from dsplug.recipe.schema import DataConfig
from dsplug.task import Task, TaskName

logger = logging.getLogger(__name__)

PARTITIONS = ("train", "devel", "test")


@dataclasses.dataclass(frozen=True)
class Item(FolderRow):
    """One manifest row: an audio file's fields (:class:`~dsplug.data.folders.FolderRow`) and where
    it was listed.

    Attributes
    ----------
    path, label, partition, group
        The absolute audio file path; the raw label text (class name, ``;``-separated names, or a
        number); ``train``, ``devel`` or ``test``; the speaker/session id ("" if none).
    row : int
        Line number in the manifest (for messages).
    """

    row: int


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A validated manifest with its partitions and class list.

    Attributes
    ----------
    source : Path
        The CSV file, or the folder of class folders.
    items : list[Item]
        All rows, each with its partition.
    classes : list[str]
        Class names in output order (empty for regression).
    task : Task
        What the labels are (:class:`dsplug.task.Task`).
    split_from : str
        ``column`` if partitions came from the manifest (its column or its partition folders),
        ``seeded split`` otherwise.
    warnings : list[str]
        Doubtful rows, unused files of a folder, classes missing from devel or test.
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
        return self.task.targets([item.label for item in items], classes=self.classes)


def load_manifest(
    path: str | Path,
    *,
    task: Task | TaskName = Task.CLASSIFICATION,
    classes: Sequence[str] | None = None,
    split: tuple[float, float] = (0.15, 0.15),
    seed: int = 0,
    check_files: bool = True,
    group_pattern: str | None = None,
) -> Manifest:
    """Read and validate a manifest: a CSV, or a folder with one subfolder per class.

    Parameters
    ----------
    path : path
        The manifest CSV, or a folder of class folders (see :mod:`dsplug.data.folders`).
    task : Task or its name
        How labels are read (:meth:`dsplug.task.Task.labels_of`).
    classes : sequence of str, optional
        Class names in output order; default: the sorted labels found in the data. A label not
        in this list is an error.
    split : (float, float)
        Fractions of the files for devel and test when the manifest has no ``partition`` column
        (stratified group split, see :mod:`dsplug.data.split`).
    seed : int
        Seed of that split.
    check_files : bool
        Check that every audio file exists.
    group_pattern : str, optional
        ``data.group_pattern``: the group of each file from its file name (a folder, or a CSV
        without a ``group`` column).

    Problems that make a run meaningless are errors; doubtful rows are kept and reported in
    :attr:`Manifest.warnings` (also logged, and recorded in ``data.json``). A folder gives the
    rows its CSV from ``dsplug manifest`` would hold, with the same line numbers.

    Raises
    ------
    DataError
        Missing file or columns, a row with more fields than the header, empty manifest, unknown
        partition, label not in ``classes``, missing audio files, one file in two partitions,
        fewer than two classes, empty class or partition, nothing to evaluate on, a group column
        together with ``group_pattern``, a file name ``group_pattern`` does not match.
    """
    task = Task(task)
    try:
        source = Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as err:  # a symbolic-link loop
        raise DataError(f"manifest {str(path)!r} cannot be followed ({err}); point data.manifest at the real CSV or folder") from err
    if source.is_dir():
        columns, rows, warnings = _folder_rows(source, group_pattern=group_pattern)
    elif source.is_file():
        columns, rows = _csv_rows(source, path=path)
        warnings = []
        if group_pattern is not None:
            columns, rows = _pattern_groups(source, columns, rows, group_pattern=group_pattern)
    elif source.exists():  # a device, a FIFO, a socket
        raise DataError(
            f"manifest {str(path)!r} is not a regular file or a folder (a device or a pipe); set data.manifest "
            "to a CSV file or a folder of class folders"
        )
    else:
        raise DataError(
            f"manifest {str(path)!r} does not exist; set data.manifest in the recipe (a CSV or a folder "
            "of class folders) or pass --set data.manifest=PATH"
        )
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        raise DataError(
            f"manifest {source}: missing column(s) {', '.join(missing)}; found columns "
            f"{', '.join(columns) or 'none'}. Required: path, label; optional: partition, group"
        )
    if not rows:
        raise DataError(f"manifest {source}: no rows; add one line per audio file")

    has_partition = "partition" in columns
    items = _items(rows, source=source, has_partition=has_partition, check_files=check_files)
    _check_leakage(items, source=source)
    warnings += _doubtful_rows(items, task=task)
    found_classes = _classes_of(items, task=task, source=source)
    if classes is not None:
        if len(set(classes)) != len(classes):
            repeated = sorted({c for c in classes if list(classes).count(c) > 1})
            warnings.append(f"data.classes lists {', '.join(map(repr, repeated))} more than once; kept once each")
            classes = list(dict.fromkeys(classes))
        unknown = sorted(set(found_classes) - set(classes))
        if unknown:
            bad = next(i for i in items if any(lab in unknown for lab in task.labels_of(i.label)))
            raise DataError(
                f"manifest {source}, line {bad.row}: label {unknown[0]!r} is not in data.classes "
                f"({', '.join(classes)}); add it to data.classes or fix the label"
            )
        class_list = list(classes)
    else:
        class_list = found_classes

    if task.exclusive and len(class_list) < 2:
        raise DataError(
            f"manifest {source}: classification needs at least two classes, found "
            f"{', '.join(map(repr, class_list))}; add files of other classes"
        )
    if not has_partition:
        from dsplug.data.split import stratified_group_split  # it imports this module

        items, missing_warnings = stratified_group_split(
            items, task=task, devel=split[0], test=split[1], seed=seed, source=source
        )
        warnings += missing_warnings
    manifest = Manifest(source, items, class_list, task, "column" if has_partition else "seeded split", warnings)
    _check_partitions(manifest)
    for message in manifest.warnings:
        logger.warning("manifest %s: %s", source, message)
    return manifest


def _csv_rows(source: Path, *, path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """Columns and rows of a manifest CSV."""
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [_row(row, columns=columns, source=source, line=reader.line_num) for row in reader]
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"manifest {source}: not a readable CSV file ({err}); save it as UTF-8 CSV") from err
    except OSError as err:
        raise DataError(f"manifest {source}: cannot be read ({err})") from err
    return columns, rows


def _folder_rows(source: Path, *, group_pattern: str | None) -> tuple[list[str], list[dict[str, str]], list[str]]:
    """Columns, rows (absolute paths) and warnings of a folder of class folders."""
    folder = scan_folder(source, group_pattern=group_pattern)
    rows = [{"path": str(r.path), "label": r.label, "partition": r.partition, "group": r.group} for r in folder.rows]
    return folder.columns, rows, list(folder.warnings)


def _pattern_groups(
    source: Path, columns: list[str], rows: list[dict[str, str]], *, group_pattern: str
) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV's rows with the group ``group_pattern`` finds in each file name."""
    if "group" in columns:
        raise DataError(
            f"manifest {source} has a group column and the recipe sets data.group_pattern; use one of "
            "the two (remove data.group_pattern to use the column)"
        )
    pattern = compile_group_pattern(group_pattern)
    named = [
        {**row, "group": group_of(Path(row.get("path", "")).name, pattern=pattern, where=f"manifest {source}, line {line}")}
        for line, row in enumerate(rows, start=2)
    ]
    return [*columns, "group"], named


def _items(rows: list[dict[str, str]], *, source: Path, has_partition: bool, check_files: bool) -> list[Item]:
    """Manifest rows as items (paths made absolute); missing audio files are one error naming them."""
    base = source if source.is_dir() else source.parent
    items: list[Item] = []
    absent: list[str] = []
    for number, row in enumerate(rows, start=2):
        if not row.get("path"):
            raise DataError(f"manifest {source}, line {number}: empty path")
        if not row.get("label"):
            raise DataError(f"manifest {source}, line {number}: empty label for {row['path']!r}")
        if any(char in row["label"] for char in "\r\n\t\x00"):
            raise DataError(
                f"manifest {source}, line {number}: label {row['label']!r} holds a line break, tab or NUL; "
                "class names are one line (they become the model's labels.txt)"
            )
        audio = Path(row["path"]).expanduser()
        if not audio.is_absolute():
            audio = base / audio
        if check_files and audio.is_dir():
            raise DataError(
                f"manifest {source}, line {number}: {row['path']!r} is a folder, not an audio file; "
                "list the audio files inside it (or give the folder itself as data.manifest)"
            )
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
    return items


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
    if task.has_classes:
        labels = sorted({label for item in items for label in task.labels_of(item.label)})
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


def _classes_of(items: Sequence[Item], *, task: Task, source: Path) -> list[str]:
    if task.multilabel:
        for item in items:
            if not task.labels_of(item.label):
                raise DataError(
                    f"manifest {source}, line {item.row}: label {item.label!r} names no class (multi-label rows hold "
                    "';'-separated class names, e.g. dog;bark)"
                )
    if not task.has_classes:
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
    return sorted({label for item in items for label in task.labels_of(item.label)})


def _check_partitions(manifest: Manifest) -> None:
    train = manifest.partition("train")
    if not train:
        raise DataError(
            f"manifest {manifest.source}: the train partition is empty; mark rows with "
            "partition=train or remove the partition column to split automatically"
        )
    if not manifest.task.has_classes:
        return
    counts = Counter(lab for item in train for lab in manifest.task.labels_of(item.label))
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


def manifest_for(config: DataConfig, *, seed: int) -> Manifest:
    """The manifest a recipe's ``data`` section names, with the partitions a run of it uses.

    Parameters
    ----------
    config : DataConfig
        The recipe's ``data`` section (manifest CSV or folder, task, classes, split fractions,
        group pattern).
    seed : int
        The recipe's seed (the stratified group split uses it).
    """
    return load_manifest(
        config.manifest, task=config.task, classes=config.classes,
        split=(config.split.devel, config.split.test), seed=seed, group_pattern=config.group_pattern,
    )
