"""Manifests: reading and checking the CSV, partitions (column or seeded group split), targets."""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dsplug.recipe.schema import DataConfig
from dsplug.errors import DataError

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
            bad = next(i for i in items if any(lab in unknown for lab in item_labels(i, task)))
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
        labels = sorted({label for item in items for label in item_labels(item, task)})
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


def item_labels(item: Item, task: Task) -> list[str]:
    """The labels of one row: its ``;``-separated classes (multi-label), else its label as one item."""
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
    return sorted({label for item in items for label in item_labels(item, task)})


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
    counts = Counter(lab for item in train for lab in item_labels(item, manifest.task))
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
        The recipe's ``data`` section (manifest path, task, classes, split fractions).
    seed : int
        The recipe's seed (the seeded group split uses it).
    """
    return load_manifest(
        config.manifest, task=config.task, classes=config.classes,
        split=(config.split.devel, config.split.test), seed=seed,
    )
