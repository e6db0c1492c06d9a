"""`dsplug predict` over many files (issue #18): parallel workers with results equal to one thread,
bad files skipped, one note per kind of adjustment, the table, --top-k and the class counts.

One tiny exported classifier (a softmax layer on 0.25 s of raw 16 kHz audio, four classes,
metadata embedded) is converted once per module; the audio is the bundled recordings plus a few
written here (16 kHz, 48 kHz, 6 channels, damaged).
"""

from __future__ import annotations

import csv
import json
import shutil
import threading

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import DRUMS, TONES
from dsplug import runtime
from dsplug.runtime import output as runtime_output
from dsplug.runtime import batch as runtime_batch
from dsplug.cli import app
from dsplug.errors import AudioError, DataError
from dsplug.runtime.predict import Adjustment, FilePrediction

RATE = 16000
CLASSES = ("a", "b", "c", "d")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import tf_keras

    from dsplug.artifacts import ModelMetadata
    from dsplug.testing.runs import tflite

    samples = RATE // 4
    tf_keras.utils.set_random_seed(0)
    audio = tf_keras.Input((samples,), name="audio")
    hidden = tf_keras.layers.Dense(8, activation="tanh")(audio)
    net = tf_keras.Model(audio, tf_keras.layers.Dense(len(CLASSES), activation="softmax")(hidden))
    meta = ModelMetadata.for_model(
        name="tiny", task="classification", classes=list(CLASSES), sample_rate=RATE, chunk_seconds=0.25,
        hop_seconds=None, pad_mode="zero", backbone="dense", recipe_hash="0123456789abcdef",
    )
    path = tmp_path_factory.mktemp("model") / "model.tflite"
    path.write_bytes(meta.to_tflite(tflite(net, samples=samples)))
    return path


@pytest.fixture(scope="module")
def model(model_path):
    return runtime.load_model(model_path)


def tone(path, *, rate, seconds=0.6, channels=1, freq=440.0):
    t = np.arange(int(rate * seconds)) / rate
    signal = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(path, np.repeat(signal[:, None], channels, axis=1) if channels > 1 else signal, rate)
    return path


@pytest.fixture
def folder(tmp_path):
    """12 recordings: tones and drums at 44.1 kHz (mono and stereo, long and short), one at 22.05
    kHz, one written at 16 kHz, one at 48 kHz with 6 channels; nested; with a hidden file."""
    root = tmp_path / "audio"
    (root / "drums").mkdir(parents=True)
    for name in sorted((TONES / "audio").glob("spk3_000*.ogg"))[:6]:
        shutil.copy(name, root / name.name)
    for name in ("crash02.ogg", "clap01.ogg", "kick01.ogg"):
        shutil.copy(DRUMS / "audio" / name, root / "drums" / name)
    tone(root / "native.wav", rate=16000, freq=300.0)
    tone(root / "surround.flac", rate=48000, channels=6, seconds=0.1)
    tone(root / "z_long.wav", rate=16000, seconds=3.0, freq=1000.0)
    tone(root / ".hidden.wav", rate=16000)
    return root


# ------------------------------------------------------------------------------ parallel workers
def test_jobs_give_the_results_of_one_thread_in_the_same_order(model, folder):
    one = runtime.predict_batch(model, [folder], jobs=1)
    many = runtime.predict_batch(model, [folder], jobs=3)
    sequential = runtime.predict_files(model, [folder])
    assert one.jobs == 1 and many.jobs == 3
    assert [p.file for p in one.predictions] == [p.file for p in many.predictions] == [p.file for p in sequential]
    assert len(one.predictions) == 12 and not one.skipped and not many.skipped
    for a, b, c in zip(one.predictions, many.predictions, sequential):
        assert a.label == b.label == c.label and a.chunk_labels == b.chunk_labels
        assert np.array_equal(a.chunk_probabilities, b.chunk_probabilities)
        assert np.array_equal(a.chunk_probabilities, c.chunk_probabilities)
        assert np.array_equal(a.probabilities, b.probabilities) and a.notes == b.notes == c.notes
    assert len({p.label for p in one.predictions}) > 1  # the files are told apart
    assert one.notes == many.notes


def test_each_worker_thread_has_its_own_interpreter(model, folder, monkeypatch):
    used: dict[int, set[int]] = {}
    replicas = []
    real_replica, real_predict = runtime.Model.replica, runtime.Model.predict_chunks

    def replica(self):
        replicas.append(real_replica(self))
        return replicas[-1]

    def predict_chunks(self, chunks):
        used.setdefault(id(self), set()).add(threading.get_ident())
        return real_predict(self, chunks)

    monkeypatch.setattr(runtime.Model, "replica", replica)
    monkeypatch.setattr(runtime.Model, "predict_chunks", predict_chunks)
    runtime.predict_batch(model, [folder], jobs=3)
    assert len(replicas) <= 2  # the given model serves one worker
    assert all(len(threads) == 1 for threads in used.values())  # no interpreter is shared by two threads


def test_replica_computes_what_the_model_computes(model):
    chunks = np.random.default_rng(0).uniform(-0.5, 0.5, (3, model.chunk_samples)).astype(np.float32)
    twin = model.replica()
    assert twin is not model and twin.metadata is model.metadata and twin.threads == model.threads
    assert np.array_equal(twin.predict_chunks(chunks), model.predict_chunks(chunks))


def test_jobs_and_progress(model, folder):
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(DataError, match=r"jobs must be a positive whole number.*every core"):
            runtime.predict_batch(model, [folder], jobs=bad)
    assert runtime_batch.default_jobs() >= 1 and runtime_batch.default_jobs(threads=64) == 1
    calls = []

    class Progress:
        def __call__(self, *, total, description):
            calls.append(("open", total, description))
            return self

        def __enter__(self):
            return lambda done: calls.append(("done", done))

        def __exit__(self, *exc):
            calls.append(("close",))

    runtime.predict_batch(model, [folder], jobs=2, progress=Progress())
    assert calls[0] == ("open", 12, "predicting") and calls[-1] == ("close",)
    assert sorted(c[1] for c in calls if c[0] == "done") == list(range(1, 13))
    calls.clear()
    runtime.predict_batch(model, [folder / "native.wav"], progress=Progress())
    assert calls == []  # no bar for one file


# --------------------------------------------------------------------------------- bad files
def test_bad_files_are_skipped_and_the_others_predicted(model, folder):
    (folder / "empty.wav").write_bytes(b"")
    (folder / "garbage.ogg").write_bytes(b"OggS" + bytes(range(256)) * 4)
    (folder / "readme.txt").write_text("recorded in 2024\n")
    (folder / "drums" / "labels").write_text("kick\n")
    (folder / ".git" / "objects").mkdir(parents=True)
    (folder / ".git" / "objects" / "ab12").write_bytes(b"x")  # a hidden folder's files are not listed
    batch = runtime.predict_batch(model, [folder, TONES / "manifest.csv"], jobs=2)
    assert len(batch.predictions) == 12
    assert [(s.file, s.reason) for s in batch.skipped] == [
        (str(folder / "empty.wav"), "undecodable"),
        (str(folder / "garbage.ogg"), "undecodable"),
        (str(TONES / "manifest.csv"), "undecodable"),  # named: decoded whatever its extension
        (str(folder / "drums" / "labels"), "extension"),
        (str(folder / "readme.txt"), "extension"),
    ]
    assert all(s.file in s.message for s in batch.skipped)
    assert batch.skipped[0].message.startswith(f"cannot decode audio file {str(folder / 'empty.wav')!r}")

    lines = runtime_output.format_skipped(batch.skipped)
    assert lines[0].startswith("skipped: ") and "empty.wav" in lines[0] and len(lines) == 4
    assert lines[-1].startswith("skipped 2 files of a folder whose extension is not an audio format (.txt, no extension): ")
    assert "readme.txt" in lines[-1] and "name a file to predict it anyway" in lines[-1]
    assert runtime_output.format_batch_summary(batch).endswith("; skipped 5: 3 undecodable, 2 not audio")


def test_nothing_decodable_fails_with_the_files_error(model, tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"^cannot decode audio file '.*a\.wav'"):
        runtime.predict_batch(model, [tmp_path / "a.wav"])
    (tmp_path / "b.wav").write_bytes(b"RIFF0000WAVEjunk" * 4)
    with pytest.raises(AudioError, match=r"none of the 2 audio files could be decoded; the first, '.*a\.wav'"):
        runtime.predict_batch(model, [tmp_path], jobs=2)
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "x.txt").write_text("x")
    with pytest.raises(AudioError, match="holds no audio files"):
        runtime.predict_batch(model, [tmp_path / "only"])


# ------------------------------------------------------------------------------------- notes
def test_one_note_per_kind_of_adjustment(model, folder):
    batch = runtime.predict_batch(model, [folder])
    assert batch.notes == (
        "resampled 10 files to 16 kHz: 8 from 44.1 kHz, 1 from 22.05 kHz, 1 from 48 kHz",
        "mixed 2 files down to mono: 1 stereo, 1 6-channel",
        "padded 3 files shorter than the chunk (0.25 s) with zeros",
    )
    tones = runtime.predict_batch(model, sorted((TONES / "audio").glob("spk3_000*.ogg"))[:4])
    assert tones.notes == ("resampled 4 files from 44.1 kHz to 16 kHz", "padded 1 file shorter than the chunk (0.25 s) with zeros")
    stereo = runtime.predict_batch(model, [DRUMS / "audio" / "clap01.ogg", DRUMS / "audio" / "bassdrum01.ogg"])
    assert stereo.notes == ("resampled 2 files from 44.1 kHz to 16 kHz", "mixed 2 stereo files down to mono")
    [short] = stereo.predictions[:1]
    assert short.adjustments[0] == Adjustment("resampled", 44100, "resampled from 44100 Hz to 16000 Hz")


# ------------------------------------------------------------------------- table and top-k
def prediction(file, probabilities, *, task="classification", label=None):
    p = np.asarray(probabilities, dtype=np.float64)
    return FilePrediction(
        file=file, duration=1.0, starts=np.zeros(1), ends=np.ones(1), chunk_probabilities=p[None, :].astype(np.float32),
        probabilities=p, label=label if label is not None else CLASSES[int(np.argmax(p))],
        chunk_labels=(label or CLASSES[int(np.argmax(p))],), adjustments=(), classes=CLASSES, task=task,
    )


def test_table_class_counts_and_top_k():
    predictions = [
        prediction("in/one.wav", [0.1, 0.7, 0.15, 0.05]),
        prediction("in/a/much/longer/name.wav", [0.25, 0.25, 0.4, 0.1]),
        prediction("in/three.wav", [0.05, 0.9, 0.03, 0.02]),
    ]
    assert runtime_output.format_predictions(predictions) == [
        "file                       predicted  confidence",
        "-------------------------  ---------  ----------",
        "in/one.wav                 b               0.700",
        "in/a/much/longer/name.wav  c               0.400",
        "in/three.wav               b               0.900",
    ]
    assert runtime_output.format_predictions(predictions, top_k=3, max_rows=2) == [
        "file                       top 1     p1  top 2     p2  top 3     p3",
        "-------------------------  -----  -----  -----  -----  -----  -----",
        "in/one.wav                 b      0.700  c      0.150  a      0.100",
        "in/a/much/longer/name.wav  c      0.400  a      0.250  b      0.250",  # a tie keeps the class order
        "... and 1 more files",
    ]
    assert runtime_output.format_predictions(predictions, top_k=9)[0].endswith("top 4     p4")  # capped at the classes
    assert runtime_output.format_class_counts(predictions) == [
        "class  files   share",
        "-----  -----  ------",
        "a          0   0.0 %",
        "b          2  66.7 %",
        "c          1  33.3 %",
        "d          0   0.0 %",
    ]
    assert runtime_output.top_labels(predictions[1], k=2) == [("c", 0.4), ("a", 0.25)]
    long_name = "x/" * 40 + "clip.wav"
    table = runtime_output.format_predictions([prediction(long_name, [1, 0, 0, 0]), predictions[0]])
    assert table[2].startswith("…" + long_name[-59:] + "  a")
    # one file: one line
    assert runtime_output.format_predictions(predictions[:1]) == ["in/one.wav: b 0.700"]
    assert runtime_output.format_predictions(predictions[:1], top_k=2) == ["in/one.wav: b 0.700, c 0.150"]


def test_multilabel_and_regression_tables():
    tags = [prediction("t1.wav", [0.9, 0.6, 0.1, 0.0], task="multilabel", label="a;b"),
            prediction("t2.wav", [0.2, 0.1, 0.3, 0.0], task="multilabel", label="")]
    assert runtime_output.format_predictions(tags, top_k=2)[0] == "file    predicted  top 1     p1  top 2     p2"
    assert runtime_output.format_predictions(tags)[3].split() == ["t2.wav", "(none)", "c", "0.300"]
    assert [line.split()[:2] for line in runtime_output.format_class_counts(tags)[2:]] == [
        ["a", "1"], ["b", "1"], ["c", "0"], ["d", "0"], ["(none)", "1"]]
    assert runtime_output.format_predictions(tags[:1], top_k=2) == ["t1.wav: a;b (a 0.900, b 0.600)"]
    values = [prediction("r.wav", [0.5], task="regression", label="0.5"), prediction("s.wav", [1.25], task="regression", label="1.25")]
    assert runtime_output.format_predictions(values)[2:] == ["r.wav        0.5", "s.wav       1.25"]  # numbers right-aligned
    assert runtime_output.format_predictions(values[:1]) == ["r.wav: 0.5"] and runtime_output.format_class_counts(values) == []
    with pytest.raises(DataError, match="regression model: leave --top-k out"):
        runtime_output.check_top_k(2, task="regression")
    for bad in (0, -2, True, 1.5):
        with pytest.raises(DataError, match="top_k must be a whole number >= 1"):
            runtime_output.check_top_k(bad, task="classification")


def test_csv_and_json_with_top_k_and_skipped(model, folder, tmp_path):
    (folder / "empty.wav").write_bytes(b"")
    batch = runtime.predict_batch(model, [folder])
    out = runtime_output.write_predictions_csv(tmp_path / "p.csv", batch.predictions, top_k=2)
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0])[-4:] == ["top1", "top1_prob", "top2", "top2_prob"]
    for row in rows:
        probs = {c: float(row[f"prob_{c}"]) for c in CLASSES}
        ranked = sorted(CLASSES, key=lambda c: -probs[c])
        assert [row["top1"], row["top2"]] == ranked[:2] and float(row["top1_prob"]) == pytest.approx(probs[ranked[0]])
        assert row["level"] == "chunk" or row["top1"] == row["predicted"]
    plain = list(csv.DictReader(open(runtime_output.write_predictions_csv(tmp_path / "plain.csv", batch.predictions))))
    assert "top1" not in plain[0]  # the format of evaluation's CSV without --top-k

    document = json.loads(runtime_output.predictions_json(batch.predictions, top_k=3, skipped=batch.skipped))
    first = document["files"][0]
    assert [t["label"] for t in first["top"]] == [c for c, _ in runtime_output.top_labels(batch.predictions[0], k=3)]
    assert document["skipped"] == [{"file": str(folder / "empty.wav"), "reason": "undecodable",
                                    "message": batch.skipped[0].message}]
    assert "skipped" not in json.loads(runtime_output.predictions_json(batch.predictions))


# ------------------------------------------------------------------------------------- CLI
def test_cli_predict_folder(model_path, folder, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(model_path), str(folder), "--top-k", "2", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["file", "top", "1", "p1", "top", "2", "p2"] and len(lines) == 2 + 12 + 1 + 2 + 4
    assert lines[15].split() == ["class", "files", "share"]
    assert sum(int(line.split()[1]) for line in lines[17:]) == 12
    assert result.stderr.splitlines() == [
        "note: resampled 10 files to 16 kHz: 8 from 44.1 kHz, 1 from 22.05 kHz, 1 from 48 kHz",
        "note: mixed 2 files down to mono: 1 stereo, 1 6-channel",
        "note: padded 3 files shorter than the chunk (0.25 s) with zeros",
        result.stderr.splitlines()[-1],
    ]
    assert result.stderr.splitlines()[-1].startswith("predicted 12 files in ") and "files/s, 2 jobs)" in result.stderr

    (folder / "broken.wav").write_bytes(b"RIFF0000WAVEjunk" * 4)
    (folder / "notes.md").write_text("# notes")
    out = tmp_path / "p.csv"
    skipped = runner.invoke(app, ["predict", str(model_path), str(folder), "--csv", str(out)])
    assert skipped.exit_code == 1, skipped.output
    assert skipped.stdout.splitlines()[0].split() == ["file", "predicted", "confidence"]
    errors = skipped.stderr
    assert "skipped: cannot decode audio file" in errors and "broken.wav" in errors and "notes.md" in errors
    assert errors.splitlines()[-1].endswith("; skipped 2: 1 undecodable, 1 not audio")
    assert sum(r["level"] == "file" for r in csv.DictReader(open(out))) == 12

    as_json = runner.invoke(app, ["predict", str(model_path), str(folder), "--json", "--jobs", "1"])
    assert as_json.exit_code == 1
    document = json.loads(as_json.stdout)
    assert len(document["files"]) == 12 and [s["reason"] for s in document["skipped"]] == ["undecodable", "extension"]

    refused = runner.invoke(app, ["predict", str(model_path), str(folder), "--top-k", "0"])
    assert refused.exit_code == 2 and "top_k must be a whole number >= 1" in refused.stderr


def test_cli_many_files_with_csv_shows_the_first_rows(model_path, tmp_path):
    out = tmp_path / "p.csv"
    files = sorted((TONES / "audio").glob("*.ogg"))[:45]
    result = CliRunner().invoke(app, ["predict", str(model_path), *map(str, files), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 + 40 + 1 + 1 + 2 + 4 + 1
    assert lines[42] == f"... and 5 more files (every file is in {out})"
    assert lines[-1] == f"wrote {out}"
    assert result.stderr.splitlines()[0] == "note: resampled 45 files from 44.1 kHz to 16 kHz"
