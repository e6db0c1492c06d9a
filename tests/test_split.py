"""Stratified group split: groups whole, every class spread over train/devel/test, missing classes reported."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict

import numpy as np
import pytest

from conftest import TONES
from dsplug.data import load_manifest
from dsplug.errors import DataError


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _partitions_of_groups(manifest):
    where = defaultdict(set)
    for item in manifest.items:
        where[item.group or item.path].add(item.partition)
    return where


@pytest.fixture
def syllables(tmp_path):
    """The real tone recordings grouped by syllable (about 150 groups, five unbalanced classes)."""
    with open(TONES / "labels.csv") as f:
        rows = [(str(TONES / r["path"]), r["label"], r["syllable"]) for r in csv.DictReader(f)]
    return _write(tmp_path / "m.csv", ["path", "label", "group"], rows)


def test_groups_stay_whole_and_every_class_reaches_every_partition(syllables):
    m = load_manifest(syllables, split=(0.15, 0.15), seed=0)
    assert all(len(parts) == 1 for parts in _partitions_of_groups(m).values())
    counts = Counter((i.partition, i.label) for i in m.items)
    for label in m.classes:
        assert all(counts[(p, label)] > 0 for p in ("train", "devel", "test")), label
    sizes = Counter(i.partition for i in m.items)
    assert abs(sizes["devel"] / len(m.items) - 0.15) < 0.03 and abs(sizes["test"] / len(m.items) - 0.15) < 0.03
    # stratified: every class has about the same share in test as in the whole set
    for label in m.classes:
        share = counts[("test", label)] / sizes["test"]
        overall = sum(1 for i in m.items if i.label == label) / len(m.items)
        assert abs(share - overall) < 0.05, label
    assert m.warnings == []


def test_split_is_deterministic_by_seed_and_follows_the_fractions(syllables):
    a = load_manifest(syllables, seed=1)
    b = load_manifest(syllables, seed=1)
    c = load_manifest(syllables, seed=2)
    assert [i.partition for i in a.items] == [i.partition for i in b.items]
    assert [i.partition for i in a.items] != [i.partition for i in c.items]
    wide = load_manifest(syllables, split=(0.3, 0.25), seed=1)
    sizes = Counter(i.partition for i in wide.items)
    assert abs(sizes["devel"] / len(wide.items) - 0.3) < 0.04 and abs(sizes["test"] / len(wide.items) - 0.25) < 0.04


def test_a_class_missing_from_devel_or_test_is_reported_with_its_groups(tmp_path):
    rows = [[f"f{g}_{k}_{c}.wav", c, f"spk{g}"] for g in range(12) for c in ("a", "b") for k in range(3)]
    rows += [["r1.wav", "rare", "spk0"], ["r2.wav", "rare", "spk0"], ["r3.wav", "rare", "spk1"]]
    m = load_manifest(_write(tmp_path / "m.csv", ["path", "label", "group"], rows), check_files=False, seed=0)
    assert all(len(parts) == 1 for parts in _partitions_of_groups(m).values())
    rare = {i.partition for i in m.items if i.label == "rare"}
    assert "train" in rare  # the class can still be trained
    [message] = [w for w in m.warnings if "'rare'" in w]
    assert "has no file in" in message and "its 3 file(s) are in 2 group(s) (spk0: 2, spk1: 1)" in message
    assert "at least 3 groups" in message
    assert not any("'a'" in w or "'b'" in w for w in m.warnings)


def test_fewer_than_three_groups_is_an_error(tmp_path):
    rows = [[f"x{k}.wav", "ab"[k % 2], f"g{k % 2}"] for k in range(10)]
    with pytest.raises(DataError, match="2 groups cannot be split into train, devel and test"):
        load_manifest(_write(tmp_path / "m.csv", ["path", "label", "group"], rows), check_files=False)
    files = [["x1.wav", "a"], ["x2.wav", "b"]]
    with pytest.raises(DataError, match="2 files cannot be split"):
        load_manifest(_write(tmp_path / "f.csv", ["path", "label"], files), check_files=False)


def test_multilabel_is_stratified_by_each_files_rarest_label(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for k in range(120):
        labels = ["common"] + (["rare"] if k % 10 == 0 else []) + (["mid"] if k % 3 == 0 else [])
        rows.append([f"x{k}.wav", ";".join(labels), f"g{k // 2}"])
    rng.shuffle(rows)
    m = load_manifest(_write(tmp_path / "m.csv", ["path", "label", "group"], rows), task="multilabel", check_files=False)
    assert all(len(parts) == 1 for parts in _partitions_of_groups(m).values())
    rare = Counter(i.partition for i in m.items if "rare" in i.label)
    assert all(rare[p] > 0 for p in ("train", "devel", "test")), rare


def test_regression_is_stratified_by_quantiles(tmp_path):
    rows = [[f"x{k}.wav", str(float(k)), f"g{k // 3}"] for k in range(300)]
    m = load_manifest(_write(tmp_path / "m.csv", ["path", "label", "group"], rows), task="regression", check_files=False)
    assert all(len(parts) == 1 for parts in _partitions_of_groups(m).values())
    values = defaultdict(list)
    for item in m.items:
        values[item.partition].append(float(item.label))
    assert {p: len(v) > 0 for p, v in values.items()} == {"train": True, "devel": True, "test": True}
    for part in ("devel", "test"):  # every value range reaches devel and test
        assert np.histogram(values[part], bins=5, range=(0, 300))[0].min() > 0, part
