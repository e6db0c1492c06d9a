"""Stratified group split: train/devel/test for a manifest without a ``partition`` column.

Every group (speaker or session; each file is its own group when the manifest has none) lands in
one partition, and every class is spread over the partitions as evenly as whole groups allow.
The split is scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold` with
``k = min(groups, 20, files of the largest class)`` folds (at least 3): ``round(test x k)`` folds (at least one) become test,
``round(devel x k)`` devel, the rest train. So the fractions are of files, to 1/k, in whole groups.
Which folds become test and devel is chosen fold by fold: never one that holds the last training
files of a class, then the fold that brings most classes not yet in that partition, then a seeded
order.

What is stratified:

* classification: the label;
* multilabel: each file's rarest label (over the manifest), so rare labels are spread first;
* regression: the quintile of the value (fewer bins with few files).

A class missing from devel or test is reported (a warning in the manifest, recorded in
``data.json``) with its groups and their file counts, the usual cause being too few groups.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dsplug.data.manifest import Item
from dsplug.task import Task
from dsplug.errors import DataError

#: Most folds of the split (the fractions' resolution is 1/MAX_FOLDS).
MAX_FOLDS = 20


def _strata(items: Sequence[Item], *, task: Task) -> np.ndarray:
    """The class each file is stratified by (see the module docstring), as integer codes."""
    if not task.has_classes:
        values = np.array([float(item.label) for item in items])
        bins = int(min(5, max(1, len(values) // 10)))
        edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]) if bins > 1 else np.array([])
        return np.searchsorted(edges, values, side="right")
    if task.multilabel:
        counts = Counter(lab for item in items for lab in task.labels_of(item.label))
        keys = [min(task.labels_of(item.label), key=lambda lab: (counts[lab], lab)) for item in items]
    else:
        keys = [item.label for item in items]
    names = {name: i for i, name in enumerate(sorted(set(keys)))}
    return np.array([names[k] for k in keys])


def _folds(strata: np.ndarray, groups: np.ndarray, *, n_folds: int, seed: int) -> np.ndarray:
    """Fold number of every file (StratifiedGroupKFold's test folds)."""
    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.zeros(len(strata), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits": reported below
        warnings.simplefilter("ignore", UserWarning)
        for number, (_, members) in enumerate(splitter.split(np.zeros(len(strata)), strata, groups)):
            fold[members] = number
    return fold


def stratified_group_split(
    items: Sequence[Item], *, task: Task, devel: float, test: float, seed: int, source: Path
) -> tuple[list[Item], list[str]]:
    """Assign train/devel/test to every item, groups whole, classes spread.

    Parameters
    ----------
    items : sequence of Item
        Manifest rows (their ``partition`` is ignored).
    task : Task or its name
        What is stratified (see the module docstring).
    devel, test : float
        Fractions of the files (in (0, 1), summing below 1).
    seed : int
        Seeds the folds and which folds become devel and test.
    source : Path
        The manifest (named in messages).

    Returns
    -------
    items : list of Item
        The rows with their partitions, in the input order.
    warnings : list of str
        Classes missing from devel or test, with the groups that hold them.

    Raises
    ------
    DataError
        Fewer than three groups (or files, without groups).
    """
    task = Task(task)
    keys = np.array([item.group or f"file:{item.path}" for item in items])
    names, groups = np.unique(keys, return_inverse=True)
    if len(names) < 3:
        unit = "groups" if any(item.group for item in items) else "files"
        raise DataError(
            f"manifest {source}: {len(names)} {unit} cannot be split into train, devel and test; "
            "add recordings, or give a partition column (train/devel/test) yourself"
        )
    strata = _strata(items, task=task)
    largest = int(np.bincount(strata).max())
    n_folds = min(len(names), MAX_FOLDS, max(3, largest))  # scikit-learn: some class must fill every fold
    if largest < n_folds:  # every class has fewer than 3 files: nothing to stratify
        strata = np.zeros_like(strata)
    fold = _folds(strata, groups, n_folds=n_folds, seed=seed)
    n_test = max(1, round(test * n_folds))
    n_devel = max(1, round(devel * n_folds))
    while n_test + n_devel > n_folds - 1:  # train keeps at least one fold
        n_test, n_devel = (n_test - 1, n_devel) if n_test >= n_devel else (n_test, n_devel - 1)
    role = _roles(items, fold, n_folds=n_folds, n_test=n_test, n_devel=n_devel, task=task, seed=seed)
    placed = [dataclasses.replace(item, partition=role.get(int(f), "train")) for item, f in zip(items, fold)]
    return placed, missing_classes(placed, task=task)


def _roles(items: Sequence[Item], fold: np.ndarray, *, n_folds: int, n_test: int, n_devel: int, task: Task, seed: int) -> dict[int, str]:
    """Which folds become test and devel (the others train), chosen greedily one fold at a time:
    never a class's last fold left in train, then most classes not yet in that partition, then a
    seeded order."""
    classes: list[set[str]] = [set() for _ in range(n_folds)]
    if task.has_classes:
        for item, f in zip(items, fold):
            classes[int(f)].update(task.labels_of(item.label))
    rank = np.random.default_rng(seed).permutation(n_folds)
    roles: dict[int, str] = {}
    for role in ["test"] * n_test + ["devel"] * n_devel:
        covered = set().union(*(classes[f] for f, r in roles.items() if r == role))
        in_train = Counter(c for f in range(n_folds) if f not in roles for c in classes[f])

        def score(f: int) -> tuple[bool, int, int]:
            keeps_train = all(in_train[c] > 1 for c in classes[f])
            return keeps_train, len(classes[f] - covered), -int(rank[f])

        roles[max((f for f in range(n_folds) if f not in roles), key=score)] = role
    return roles


def missing_classes(items: Sequence[Item], *, task: Task) -> list[str]:
    """Warnings for classes without a file in devel or test, naming the groups that hold them.

    Parameters
    ----------
    items : sequence of Item
        Rows with their partitions.
    task : str
        No class warnings for regression.
    """
    task = Task(task)
    if not task.has_classes:
        return []
    holders: dict[str, Counter[str]] = {}
    present: dict[str, set[str]] = {}
    for item in items:
        for label in task.labels_of(item.label):
            holders.setdefault(label, Counter())[item.group or item.path.name] += 1
            present.setdefault(label, set()).add(item.partition)
    messages = []
    for label in sorted(holders):
        absent = [p for p in ("devel", "test") if p not in present[label]]
        if not absent:
            continue
        groups = holders[label]
        shown = ", ".join(f"{name}: {n}" for name, n in groups.most_common(5))
        more = f" and {len(groups) - 5} more" if len(groups) > 5 else ""
        cause = (
            "a class needs files in at least 3 groups to reach train, devel and test"
            if len(groups) < 3 else "whole groups of the other classes filled those partitions first; "
            "another seed or data.split may place it"
        )
        messages.append(
            f"class {label!r} has no file in {' and '.join(absent)}: its {sum(groups.values())} file(s) "
            f"are in {len(groups)} group(s) ({shown}{more}); {cause}. Add recordings of other "
            "speakers/sessions or give a partition column"
        )
    return messages
