"""The TFLite runtime (dsplug.runtime) on a real exported model and the bundled recordings.

The tests run the golden model (``tests/assets/golden/model.tflite``: a tiny dsplug model with
0.5 s chunks and a 0.25 s hop, exported by ``scripts/make_golden_model.py``) with ai-edge-litert,
so they need no training. One heavy test compares the TFLite outputs with the Keras model of a
run exported here (SqueezeNet 1.1, random weights, 32x32 images, the same chunking).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import DRUMS, ROOT, TONES, tone_rows, write_manifest, write_recipe
from dsplug import runtime
from dsplug.runtime import output as runtime_output
from dsplug.runtime import stream as runtime_stream
from dsplug.runtime.bench import format_bench
from dsplug.audio import chunk_signal, load_audio
from dsplug.errors import AudioError, DataError, ExportError

LONG = DRUMS / "audio" / "crash02.ogg"  # 2.55 s, 44.1 kHz mono
SHORT = DRUMS / "audio" / "shaker01.ogg"  # 0.03 s, 44.1 kHz stereo

RECIPE = """
name: inference
seed: 1
data: {{manifest: {manifest}, chunk_seconds: 0.5, hop_seconds: 0.25}}
frontend: {{image_size: [32, 32], n_mels: 32}}
model:
  backbone: {{name: squeezenet_v1, weights: none}}
  head: {{name: mlp, units: 16, dropout: 0.0}}
train: {{batch_size: 8, phase1: {{epochs: 0}}, phase2: {{epochs: 0}}}}
evaluate: {{bootstrap: 0}}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory exported by run_point: model.tflite + model.json + model.keras."""
    from dsplug.recipe.loader import load_recipe
    from dsplug.workflows.run import run_point

    folder = tmp_path_factory.mktemp("inference")
    manifest = write_manifest(folder / "manifest.csv", tone_rows(1))  # one real file per (class, partition)
    [point] = load_recipe(write_recipe(folder / "inference.yaml", RECIPE.format(manifest=manifest)))
    out = folder / "run"
    run_point(point, run_dir=out)
    return out


GOLDEN = ROOT / "tests" / "assets" / "golden"


@pytest.fixture(scope="module")
def model():
    return runtime.load_model(GOLDEN / "model.tflite", threads=1)


@pytest.fixture(scope="module")
def keras_model(run_dir):
    import tf_keras

    import dsplug.pipeline  # noqa: F401  (registers the custom layers)

    return tf_keras.models.load_model(run_dir / "model.keras")


def frames_of(path, model):
    signal = load_audio(path, sample_rate=model.sample_rate)
    return signal, chunk_signal(
        signal, sample_rate=model.sample_rate, chunk_seconds=model.chunk_seconds,
        hop_seconds=model.hop_seconds, pad_mode=model.host_pad_mode,
    )


# ------------------------------------------------------------------------------ model loading
def sidecar(model) -> dict:
    """The ``model.json`` dsplug export writes beside a model: its embedded description."""
    return json.loads(model.metadata.to_json())


def test_the_golden_models_load_in_this_version():
    """The golden models are exported files: when the exported format changes, regenerate them."""
    for name, mode in (("model.tflite", "none"), ("model-int8.tflite", "int8")):
        try:
            loaded = runtime.load_model(GOLDEN / name)
        except ExportError as err:
            pytest.fail(f"{GOLDEN / name} no longer loads ({err}): run python scripts/make_golden_model.py")
        assert loaded.metadata.quantize == mode and loaded.classes == ("T1", "T2", "T3", "T4", "T5_neutral")


def test_load_model_reads_the_metadata(model):
    assert model.classes == tuple(model.metadata.classes) == ("T1", "T2", "T3", "T4", "T5_neutral")
    assert (model.sample_rate, model.chunk_samples, model.hop_seconds) == (16000, 8000, 0.25)
    assert model.n_outputs == 5 and model.task == "classification" and model.metadata.name == "golden"
    # a folder holding model.tflite (a run directory) is accepted too
    assert runtime.load_model(GOLDEN).path == GOLDEN / "model.tflite"


def test_bad_models_fail_with_clear_errors(model, tmp_path):
    import zipfile

    with pytest.raises(ExportError, match="does not exist"):
        runtime.load_model(tmp_path / "nope.tflite")

    noise = tmp_path / "noise.tflite"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "noise.json").write_text(json.dumps(sidecar(model)))
    with pytest.raises(ExportError, match="not a TFLite model.*TFL3"):
        runtime.load_model(noise)

    keras_file = tmp_path / "model.keras.tflite"  # right suffix, wrong content (a zip, as model.keras is)
    with zipfile.ZipFile(keras_file, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(ExportError, match="not a TFLite model"):
        runtime.load_model(keras_file)

    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes((GOLDEN / "model.tflite").read_bytes()[:100_000])
    (tmp_path / "truncated.json").write_text(json.dumps(sidecar(model)))
    with pytest.raises(ExportError, match="damaged"):
        runtime.load_model(truncated)

    alone = tmp_path / "alone" / "model.tflite"
    alone.parent.mkdir()
    shutil.copy(GOLDEN / "model.tflite", alone)
    assert runtime.load_model(alone).classes == ("T1", "T2", "T3", "T4", "T5_neutral")  # it describes itself

    meta = sidecar(model)
    # the sidecar of another model (1 s chunks; 2 classes) next to this one
    other = {**meta, "chunk_seconds": 1.0, "input": {**meta["input"], "shape": [1, 16000]}}
    (alone.parent / "model.json").write_text(json.dumps(other))
    with pytest.raises(ExportError, match=r"model\.json does not belong.*chunk_seconds: 0\.5 inside, 1\.0 in the sidecar"):
        runtime.load_model(alone)
    (alone.parent / "model.json").write_text(json.dumps({**meta, "classes": ["a", "b"], "output": {**meta["output"], "shape": [1, 2]}}))
    with pytest.raises(ExportError, match=r"does not belong.*classes: \['T1'.*inside, \['a', 'b'\] in the sidecar"):
        runtime.load_model(alone)
    # metadata that contradicts itself
    (alone.parent / "model.json").write_text(json.dumps({**meta, "chunk_seconds": 1.0}))
    with pytest.raises(ExportError, match=r"model\.json: invalid model metadata.*chunk_seconds=1\.0.*dsplug export RUN_DIR"):
        runtime.load_model(alone)
    (alone.parent / "model.json").write_text(json.dumps({**meta, "classes": ["a", "b"]}))
    with pytest.raises(ExportError, match="invalid model metadata.*5 outputs but 2 classes"):
        runtime.load_model(alone)
    (alone.parent / "model.json").write_text("{not json")
    with pytest.raises(ExportError, match=r"model\.json is damaged or unreadable.*dsplug export RUN_DIR"):
        runtime.load_model(alone)


# ---------------------------------------------------------------------------------- files
@pytest.mark.heavy
def test_predict_files_on_a_file_and_a_folder(run_dir, keras_model, tmp_path):
    model = runtime.load_model(run_dir / "model.tflite", threads=1)
    folder = tmp_path / "audio"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(TONES / "audio" / "spk3_0002_T1.ogg", folder / "b.ogg")
    shutil.copy(DRUMS / "audio" / "kick_soft01.ogg", folder / "nested" / "a.OGG")
    (folder / "notes.txt").write_text("not audio")
    shutil.copy(TONES / "audio" / "spk3_0002_T3.ogg", folder / ".hidden.ogg")

    predictions = runtime.predict_files(model, [LONG, folder])
    assert [p.file for p in predictions] == [str(LONG), str(folder / "b.ogg"), str(folder / "nested" / "a.OGG")]
    for p in predictions:
        signal, chunks = frames_of(p.file, model)
        assert p.duration == pytest.approx(signal.size / 16000)
        # chunk rows cover the file: from 0, every hop, up to its end
        assert p.starts[0] == 0.0 and p.ends[-1] == pytest.approx(p.duration)
        np.testing.assert_allclose(np.diff(p.starts), 0.25)
        assert np.all(p.starts[1:] <= p.ends[:-1]) and np.all(p.ends - p.starts <= 0.5 + 1e-9)
        assert len(p.starts) == 1 + int(np.ceil(max(0, signal.size - 8000) / 4000))
        # TFLite outputs equal the Keras end-to-end model on the same chunks
        np.testing.assert_allclose(p.chunk_probabilities, keras_model.predict(chunks.frames, verbose=0), atol=1e-5)
        np.testing.assert_allclose(p.probabilities, p.chunk_probabilities.mean(axis=0), rtol=1e-6)
        assert p.label == model.classes[int(np.argmax(p.probabilities))]
        assert p.chunk_labels == tuple(model.classes[i] for i in p.chunk_probabilities.argmax(axis=1))
        assert p.notes == ("resampled from 44100 Hz to 16000 Hz",)
    assert len(predictions[0].starts) == 10  # 2.55 s: windows at 0, 0.25, ..., 2.25 s
    # the chunks of one file are different inputs and give different outputs
    assert np.ptp(predictions[0].chunk_probabilities, axis=0).max() > 1e-4

    votes = runtime.predict_files(model, [LONG], aggregate="vote")[0]
    counts = np.bincount(votes.chunk_probabilities.argmax(axis=1), minlength=5)
    np.testing.assert_allclose(votes.probabilities, counts / counts.sum())


def test_resampled_short_and_16k_files(model, tmp_path):
    [short] = runtime.predict_files(model, [SHORT])
    assert short.notes == (
        "resampled from 44100 Hz to 16000 Hz",
        "2 channels mixed down to mono",
        "shorter than one chunk (0.032 s < 0.5 s): padded with zeros",
    )
    signal = load_audio(SHORT, sample_rate=16000)
    assert len(short.starts) == 1 and short.ends[0] == pytest.approx(signal.size / 16000)
    padded = np.pad(signal, (0, 8000 - signal.size))[None, :]
    np.testing.assert_allclose(short.chunk_probabilities, model.predict_chunks(padded), atol=1e-7)

    # the same samples stored at 16 kHz: no resampling note, the same outputs
    wav = tmp_path / "crash_16k.wav"
    sf.write(wav, load_audio(LONG, sample_rate=16000), 16000, subtype="FLOAT")
    [native], [original] = runtime.predict_files(model, [wav]), runtime.predict_files(model, [LONG])
    assert native.notes == ()
    np.testing.assert_allclose(native.chunk_probabilities, original.chunk_probabilities, atol=1e-6)


def test_bad_audio_inputs(model, tmp_path):
    with pytest.raises(DataError, match="no audio given"):
        runtime.predict_files(model, [])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(AudioError, match="holds no audio files"):
        runtime.predict_files(model, [LONG, tmp_path / "empty"])
    with pytest.raises(AudioError, match="does not exist"):
        runtime.predict_files(model, [LONG, tmp_path / "missing.wav"])
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEjunk" * 4)
    with pytest.raises(AudioError, match="broken.wav"):
        runtime.predict_files(model, [broken])
    with pytest.raises(DataError, match="aggregate"):
        runtime.predict_files(model, [LONG], aggregate="median")


def test_csv_and_json_writers(model, tmp_path):
    predictions = runtime.predict_files(model, [LONG, SHORT])
    out = tmp_path / "out" / "predictions.csv"
    assert runtime_output.write_predictions_csv(out, predictions) == out
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "level", "start", "end", "label", "predicted"] + [f"prob_{c}" for c in model.classes]
    assert [r["level"] for r in rows] == ["chunk"] * 10 + ["file"] + ["chunk", "file"]
    file_row = rows[10]
    assert file_row["file"] == str(LONG) and float(file_row["end"]) == pytest.approx(predictions[0].duration, abs=1e-3)
    got = [float(file_row[f"prob_{c}"]) for c in model.classes]
    np.testing.assert_allclose(got, predictions[0].probabilities, atol=1e-6)
    assert file_row["predicted"] == predictions[0].label and file_row["label"] == ""  # the truth is unknown
    assert [float(r["start"]) for r in rows[:10]] == pytest.approx(predictions[0].starts)
    assert os.listdir(out.parent) == ["predictions.csv"]  # no temporary file left behind

    # a failed write leaves the previous file untouched
    before = out.read_text()
    with pytest.raises(DataError, match="no predictions"):
        runtime_output.write_predictions_csv(out, [])
    assert out.read_text() == before and os.listdir(out.parent) == ["predictions.csv"]

    data = json.loads(runtime_output.predictions_json(predictions))
    assert data["classes"] == list(model.classes) and len(data["files"]) == 2
    first = data["files"][0]
    assert first["label"] == predictions[0].label and len(first["chunks"]) == 10
    assert first["chunks"][3]["start"] == 0.75 and first["chunks"][3]["end"] == 1.25
    np.testing.assert_allclose(list(first["outputs"].values()), predictions[0].probabilities)
    assert data["files"][1]["notes"][-1].startswith("shorter than one chunk")


# ------------------------------------------------------------------------------ streaming
def stream_in_random_blocks(streamer, signal, *, seed):
    rng = np.random.default_rng(seed)
    results, offset = [], 0
    while offset < signal.size:
        size = int(rng.integers(0, 3000))
        results += streamer.push(signal[offset : offset + size])
        offset += size
    return results


def test_streamer_windows_match_offline_chunks(model):
    signal, chunks = frames_of(LONG, model)
    streamer = runtime.Streamer(model, hop_seconds=0.25)
    results = stream_in_random_blocks(streamer, signal, seed=0)
    full = 1 + (signal.size - 8000) // 4000  # windows that lie wholly inside the audio
    assert [r.time for r in results] == pytest.approx([0.5 + 0.25 * i for i in range(full)])
    raw = np.stack([r.raw_probabilities for r in results])
    np.testing.assert_allclose(raw, model.predict_chunks(chunks.frames[:full]), atol=1e-6)
    # the last window holds exactly the last 0.5 s received
    end = 8000 + (full - 1) * 4000
    np.testing.assert_allclose(raw[-1], model.predict_chunks(signal[None, end - 8000 : end])[0], atol=1e-6)
    # a window shifted by one hop is a different input: the comparison above can fail
    assert np.abs(raw[1:] - raw[:-1]).max() > 1e-4
    assert all(r.latency_ms > 0 for r in results)

    # the default hop is a quarter chunk; pushing nothing yields nothing
    default = runtime.Streamer(model)
    assert default.hop_seconds == 0.125 and default.push(np.zeros(0, np.float32)) == []
    assert default.push(signal[:7999]) == [] and len(default.push(signal[7999:8000])) == 1


def test_streamer_smoothing_averages_recent_windows(model):
    signal = load_audio(LONG, sample_rate=16000)
    plain = stream_in_random_blocks(runtime.Streamer(model, hop_seconds=0.25), signal, seed=1)
    smooth = stream_in_random_blocks(runtime.Streamer(model, hop_seconds=0.25, smoothing=3), signal, seed=2)
    raw = np.stack([r.raw_probabilities for r in plain])
    assert len(smooth) == len(plain)
    for i, r in enumerate(smooth):
        np.testing.assert_allclose(r.probabilities, raw[max(0, i - 2) : i + 1].mean(axis=0), atol=1e-6)
        assert r.label == model.classes[int(np.argmax(r.probabilities))]
        assert r.confidence == pytest.approx(r.probabilities.max())
    with pytest.raises(AudioError, match="smoothing"):
        runtime.Streamer(model, smoothing=0)
    with pytest.raises(AudioError, match="1-D"):
        runtime.Streamer(model).push(np.zeros((10, 2), np.float32))


def test_stream_file_summaries(model, tmp_path):
    seen = []
    summary = runtime.stream_file(model, LONG, realtime=False, block_seconds=0.1, hop_seconds=0.25, on_result=seen.append)
    signal = load_audio(LONG, sample_rate=16000)
    assert summary.windows == len(seen) == 1 + (signal.size - 8000) // 4000
    assert summary.duration == pytest.approx(signal.size / 16000)
    assert 0 < summary.latency_p50_ms <= summary.latency_p95_ms <= summary.latency_max_ms
    assert summary.latency_mean_ms == pytest.approx(np.mean([r.latency_ms for r in seen]))
    assert summary.real_time_factor == pytest.approx(summary.processing_seconds / summary.duration)
    assert 0 < summary.real_time_factor < 1
    assert summary.notes == ("resampled from 44100 Hz to 16000 Hz",)
    assert "window(s)" in runtime_stream.format_stream_summary(summary)
    assert json.dumps(summary.as_dict())

    # real-time pace: a 1 s file takes 1 s of wall time, but the sleeping is not processing
    second = tmp_path / "second.wav"
    sf.write(second, np.resize(load_audio(LONG, sample_rate=16000), 16000), 16000)
    started = time.perf_counter()
    paced = runtime.stream_file(model, second, realtime=True, hop_seconds=0.25)
    assert time.perf_counter() - started >= 0.99 and paced.wall_seconds >= 0.99
    assert paced.windows == 3 and paced.processing_seconds < 0.5
    # a 0.03 s file gives one window, zero-padded, when it ends (it lasts 0.03 s)
    short = runtime.stream_file(model, SHORT, realtime=True)
    assert short.windows == 1 and short.notes[-1].startswith("shorter than one chunk")


FAKE_SOUNDDEVICE = """
import numpy as np

class PortAudioError(Exception):
    pass

class InputStream:  # plays a recording as if it came from a sound card
    def __init__(self, *, samplerate, channels, dtype, blocksize, device):
        if device == "missing":
            raise PortAudioError("Error querying device -1")
        assert (samplerate, channels, dtype) == (16000, 1, "float32")
        self.signal, self.offset = np.load({signal!r}), 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, frames):
        block = self.signal[self.offset : self.offset + frames]
        self.offset += frames
        return np.pad(block, (0, frames - block.size))[:, None], False
"""


def fake_module(folder, source, monkeypatch):
    import importlib

    folder.mkdir()
    (folder / "sounddevice.py").write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    importlib.invalidate_caches()


def test_microphone_needs_sounddevice_and_portaudio(model, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as if not installed
    with pytest.raises(AudioError, match=r"install dsplug\[mic\]"):
        runtime.stream_microphone(model, seconds=1.0)
    # installed, but the PortAudio library is missing (sounddevice raises OSError on import)
    fake_module(tmp_path / "no_portaudio", "raise OSError('PortAudio library not found')\n", monkeypatch)
    with pytest.raises(AudioError, match="PortAudio library.*libportaudio2"):
        runtime.stream_microphone(model, seconds=1.0)


def test_microphone_stream_reads_blocks_for_the_given_time(model, monkeypatch, tmp_path):
    signal = load_audio(LONG, sample_rate=16000)
    np.save(tmp_path / "signal.npy", signal)
    fake_module(tmp_path / "fake", FAKE_SOUNDDEVICE.format(signal=str(tmp_path / "signal.npy")), monkeypatch)
    seen = []
    summary = runtime.stream_microphone(model, seconds=2.0, hop_seconds=0.25, on_result=seen.append)
    assert summary.source == "microphone" and summary.duration == 2.0
    assert summary.windows == len(seen) == 1 + (32000 - 8000) // 4000
    windows = np.stack([signal[end - 8000 : end] for end in range(8000, 32001, 4000)])
    np.testing.assert_allclose(np.stack([r.raw_probabilities for r in seen]), model.predict_chunks(windows), atol=1e-6)
    with pytest.raises(AudioError, match="python -m sounddevice"):
        runtime.stream_microphone(model, seconds=1.0, device="missing")


# --------------------------------------------------------------------------------- TF-free
TF_FREE = textwrap.dedent(
    """
    import importlib.abc, json, sys
    BLOCKED = {"tensorflow", "tf_keras", "keras", "librosa", "matplotlib"}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("blocked in this test: " + name)
            return None
    sys.meta_path.insert(0, Block())
    from dsplug import runtime
    model = runtime.load_model(sys.argv[1])
    [p] = runtime.predict_files(model, [sys.argv[2]])
    s = runtime.stream_file(model, sys.argv[2], realtime=False)
    print(json.dumps({"probs": p.probabilities.tolist(), "notes": p.notes, "windows": s.windows,
                      "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
                      "dsplug": sorted(m for m in sys.modules if m.split(".")[0] == "dsplug")}))
    """
)


def test_runtime_needs_no_tensorflow_or_librosa(model):
    done = subprocess.run(
        [sys.executable, "-c", TF_FREE, str(GOLDEN / "model.tflite"), str(LONG)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == [] and result["windows"] > 0
    # no training code either: the runtime, audio I/O, the exported model's description, its task, errors
    runtime_modules = {"dsplug", "dsplug.version", "dsplug.artifacts", "dsplug.audio", "dsplug.errors", "dsplug.runtime", "dsplug.task"}
    assert {m for m in result["dsplug"] if not m.startswith(("dsplug.runtime.", "dsplug.artifacts."))} <= runtime_modules, result["dsplug"]
    assert result["notes"] == ["resampled from 44100 Hz to 16000 Hz"]
    [here] = runtime.predict_files(model, [LONG])
    np.testing.assert_allclose(result["probs"], here.probabilities, atol=1e-6)


# ---------------------------------------------------------------------------------- bench
def test_bench_reports_sane_numbers():
    path = GOLDEN / "model.tflite"
    result = runtime.bench(path, threads=1, runs=20, warmup=2)
    assert result["file_bytes"] == path.stat().st_size
    assert 0 < result["latency_min_ms"] <= result["latency_p50_ms"] <= result["latency_p95_ms"] < 1000
    assert result["latency_min_ms"] <= result["latency_mean_ms"]
    assert result["real_time_factor"] == pytest.approx(result["latency_mean_ms"] / 1000 / 0.5)
    assert result["threads"] == 1 and result["threads_used"] == 1
    assert result["peak_rss_increase_bytes"] is not None and 0 <= result["peak_rss_increase_bytes"] < 1e9

    # parameters: the constant tensors, counted independently from the interpreter's graph
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    produced = {int(i) for op in interpreter._get_ops_details() for i in op["outputs"]}
    inputs = {d["index"] for d in interpreter.get_input_details()}
    constants = [d for d in interpreter.get_tensor_details() if d["index"] not in produced | inputs]
    assert result["constant_tensors"] == len(constants)
    assert result["parameters"] == sum(int(np.prod(d["shape"])) for d in constants)
    assert result["parameters"] > 24_000  # TinyConv (width 8) alone has 24k weights

    text = format_bench(result)
    assert f"{result['parameters']:,}" in text and "p95" in text and "peak memory" in text
    with pytest.raises(ExportError, match="runs"):
        runtime.bench(path, threads=1, runs=0)


# ---------------------------------------------------------------------- quantised tensors
def test_int8_input_and_output_tensors_are_quantised(tmp_path):
    """A small int8-in/int8-out model: inputs quantised and outputs dequantised by the runtime."""
    import tensorflow as tf
    import tf_keras

    def init(seed):  # large weights: outputs far from uniform
        return tf_keras.initializers.RandomNormal(stddev=0.3, seed=seed)

    inputs = tf_keras.Input((800,))
    hidden = tf_keras.layers.Dense(16, activation="relu", kernel_initializer=init(1))(inputs)
    net = tf_keras.Model(inputs, tf_keras.layers.Dense(3, activation="softmax", kernel_initializer=init(2))(hidden))
    signal = load_audio(TONES / "audio" / "spk3_0002_T1.ogg", sample_rate=16000)
    frames = chunk_signal(signal, sample_rate=16000, chunk_seconds=0.05, hop_seconds=0.05).frames

    spec = tf.TensorSpec((1, 800), tf.float32, name="audio")
    function = tf.function(lambda audio: net(audio, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], net)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([f[None, :]] for f in frames)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = tmp_path / "int8.tflite"
    path.write_bytes(converter.convert())
    path.with_suffix(".json").write_text(json.dumps({
        "format": "dsplug-tflite", "task": "classification", "classes": ["a", "b", "c"],
        "sample_rate": 16000, "chunk_seconds": 0.05, "hop_seconds": 0.05, "pad_mode": "zero",
        "input": {"name": "audio", "shape": [1, 800], "dtype": "float32"},
        "output": {"shape": [1, 3], "meaning": "probabilities"}, "quantize": "int8",
    }))
    model = runtime.load_model(path)
    assert model._input["dtype"] == np.int8 and model._output["dtype"] == np.int8
    assert model._input["quantization"][1] != 0  # the zero point matters for this input
    got = model.predict_chunks(frames)
    expected = net.predict(frames, verbose=0)
    assert got.dtype == np.float32
    assert np.ptp(expected, axis=0).max() > 0.1
    np.testing.assert_allclose(got, expected, atol=0.02)  # output steps are 1/256
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=0.02)


def test_cli_predict_stream_bench(tmp_path):
    """The runtime commands as a user runs them, on an exported model and real audio."""
    import json as json_module

    from typer.testing import CliRunner

    from dsplug.cli import app

    runner = CliRunner()
    folder = ROOT / "data" / "drums" / "audio"
    out = tmp_path / "pred.csv"
    result = runner.invoke(app, ["predict", str(GOLDEN), str(folder), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "bassdrum01.ogg" in result.output and "note: resampled 62 files to 16 kHz: 61 from 44.1 kHz" in result.output
    rows = list(csv.DictReader(open(out)))
    assert sum(r["level"] == "file" for r in rows) == len(list(folder.glob("*.ogg")))
    as_json = runner.invoke(app, ["predict", str(GOLDEN / "model.tflite"), str(folder / "bassdrum01.ogg"), "--json"])
    assert as_json.exit_code == 0 and json_module.loads(as_json.output)["files"][0]["file"].endswith("bassdrum01.ogg")
    stream = runner.invoke(app, ["stream", str(GOLDEN), "--file", str(folder / "crash02.ogg"), "--fast", "--smoothing", "2"])
    assert stream.exit_code == 0, stream.output
    assert "latency per window: mean" in stream.output and "real-time factor" in stream.output
    bench = runner.invoke(app, ["bench", str(GOLDEN), "--runs", "5", "--json"])
    assert bench.exit_code == 0 and json_module.loads(bench.output)["latency_mean_ms"] > 0
    for args, message in (
        (["stream", str(GOLDEN)], "exactly one source"),
        (["predict", str(tmp_path / "none.tflite"), str(folder)], "none.tflite"),
        (["predict", str(GOLDEN), str(tmp_path)], "no audio"),
    ):
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2 and message in bad.output, bad.output
