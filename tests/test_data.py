"""Manifest loading, partitions, group-aware split, summaries, on real bundled data."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest

from conftest import DRUMS, TONES
from dsplug.data import format_summary, load_manifest, summarize
from dsplug.errors import DataError


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_tones_manifest_partitions_and_summary(tones_manifest):
    m = load_manifest(tones_manifest)
    assert m.classes == ["T1", "T2", "T3", "T4", "T5_neutral"]
    assert m.split_from == "column"
    s = summarize(m)
    parts = s["partitions"]
    assert parts["train"]["files"] + parts["devel"]["files"] + parts["test"]["files"] == len(m.items) == 624
    # speaker-independent: train on one speaker, select (devel) and test on the other
    assert {i.group for i in m.partition("train")} == {"spk3"}
    assert {i.group for i in m.partition("devel")} == {"spk5"}
    assert {i.group for i in m.partition("test")} == {"spk5"}
    # durations come from the audio files: compare with the seconds column of labels.csv
    with open(TONES / "labels.csv") as f:
        expected = sum(float(r["seconds"]) for r in csv.DictReader(f))
    assert s["seconds"] == pytest.approx(expected, abs=0.01 * len(m.items))
    text = format_summary(s)
    assert "T5_neutral" in text and "train" in text and "minutes" in text


def test_group_split_is_seeded_and_keeps_groups_together(tmp_path):
    with open(TONES / "labels.csv") as f:
        rows = [(str(TONES / r["path"]), r["label"], r["syllable"]) for r in csv.DictReader(f)]
    path = _write(tmp_path / "m.csv", ["path", "label", "group"], rows)
    a = load_manifest(path, split=(0.2, 0.2), seed=1)
    b = load_manifest(path, split=(0.2, 0.2), seed=1)
    c = load_manifest(path, split=(0.2, 0.2), seed=2)
    assert [i.partition for i in a.items] == [i.partition for i in b.items]
    assert [i.partition for i in a.items] != [i.partition for i in c.items]
    where = defaultdict(set)
    for item in a.items:
        where[item.group].add(item.partition)
    assert all(len(parts) == 1 for parts in where.values())
    assert a.split_from == "seeded split"
    assert {i.partition for i in a.items} == {"train", "devel", "test"}


def test_missing_columns_named(tmp_path):
    path = _write(tmp_path / "m.csv", ["file", "label"], [["a.wav", "x"]])
    with pytest.raises(DataError, match="missing column\\(s\\) path; found columns file, label"):
        load_manifest(path)


def test_missing_audio_file_is_named(tmp_path):
    path = _write(tmp_path / "m.csv", ["path", "label"], [[str(DRUMS / "audio/bassdrum01.ogg"), "kick"], ["nope.ogg", "kick"]])
    with pytest.raises(DataError, match="line 3: nope.ogg"):
        load_manifest(path)


def test_label_not_in_class_list(tones_manifest):
    with pytest.raises(DataError, match="label 'T5_neutral' is not in data.classes"):
        load_manifest(tones_manifest, classes=["T1", "T2", "T3", "T4"])


def test_empty_class_in_training(tones_manifest):
    with pytest.raises(DataError, match="'T9' have no training file"):
        load_manifest(tones_manifest, classes=["T1", "T2", "T3", "T4", "T5_neutral", "T9"])


def test_bad_partition_value_and_empty_manifest(tmp_path):
    path = _write(tmp_path / "m.csv", ["path", "label", "partition"], [[str(DRUMS / "audio/bassdrum01.ogg"), "kick", "dev"]])
    with pytest.raises(DataError, match="partition 'dev' is not one of train, devel, test"):
        load_manifest(path)
    empty = _write(tmp_path / "e.csv", ["path", "label"], [])
    with pytest.raises(DataError, match="no rows"):
        load_manifest(empty)
    with pytest.raises(DataError, match="does not exist"):
        load_manifest(tmp_path / "absent.csv")


def test_multilabel_and_regression_targets(tmp_path):
    a, b = str(DRUMS / "audio/bassdrum01.ogg"), str(DRUMS / "audio/bassdrum02.ogg")
    ml = _write(tmp_path / "ml.csv", ["path", "label", "partition"], [[a, "kick;low", "train"], [b, "low", "train"]])
    m = load_manifest(ml, task="multilabel")
    assert m.classes == ["kick", "low"]
    np.testing.assert_array_equal(m.targets(m.items), [[1, 1], [0, 1]])
    rg = _write(tmp_path / "rg.csv", ["path", "label", "partition"], [[a, "0.5", "train"], [b, "-2", "train"]])
    r = load_manifest(rg, task="regression")
    np.testing.assert_allclose(r.targets(r.items), [0.5, -2.0])
    bad = _write(tmp_path / "bad.csv", ["path", "label", "partition"], [[a, "loud", "train"]])
    with pytest.raises(DataError, match="label 'loud' is not a number"):
        load_manifest(bad, task="regression")


def _bad_manifest(tmp_path):
    """Two real drum files, one corrupt file and one file of NaN samples."""
    import soundfile

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    nan = tmp_path / "nan.wav"
    soundfile.write(nan, np.full(1600, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    rows = [
        [str(DRUMS / "audio/bassdrum01.ogg"), "kick", "train"],
        [str(corrupt), "kick", "train"],
        [str(DRUMS / "audio/bassdrum02.ogg"), "kick", "train"],
        [str(nan), "kick", "train"],
        [str(DRUMS / "audio/snare01.ogg"), "snare", "train"],  # two classes: one class is refused
    ]
    return _write(tmp_path / "m.csv", ["path", "label", "partition"], rows)


def test_bad_file_stops_decoding_with_its_name(tmp_path):
    from dsplug.data import decode_chunks
    from dsplug.errors import AudioError

    m = load_manifest(_bad_manifest(tmp_path))
    with pytest.raises(AudioError) as err:
        decode_chunks(m.items, sample_rate=16000, chunk_seconds=0.5, hop_seconds=0.5, pad_mode="zero")
    assert "corrupt.wav" in str(err.value) and "manifest line 3" in str(err.value)
    assert "on_bad_file: skip" in str(err.value)


def test_bad_files_are_skipped_and_recorded(tmp_path):
    from dsplug.artifacts import write_atomic
    from dsplug.data import decode_chunks, skipped_csv

    m = load_manifest(_bad_manifest(tmp_path))
    chunks = decode_chunks(m.items, sample_rate=16000, chunk_seconds=0.5, hop_seconds=0.5, pad_mode="zero", on_bad_file="skip")
    assert [f.path.name for f in chunks.files] == ["bassdrum01.ogg", "bassdrum02.ogg", "snare01.ogg"]
    assert [item.path.name for item, _ in chunks.skipped] == ["corrupt.wav", "nan.wav"]
    assert "NaN" in chunks.skipped[1][1] or "nan" in chunks.skipped[1][1].lower()
    assert chunks.audio.shape[1] == 8000 and np.isfinite(chunks.audio).all()
    assert set(chunks.file_index) == {0, 1, 2}
    write_atomic(tmp_path / "skipped.csv", skipped_csv(chunks.skipped))
    rows = list(csv.DictReader(open(tmp_path / "skipped.csv")))
    assert [r["manifest_line"] for r in rows] == ["3", "5"] and all(r["reason"] for r in rows)
