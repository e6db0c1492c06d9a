"""The exported .tflite alone: dsplug.load, predict/stream/bench without a sidecar, docs/api.md's examples."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import dsplug
from conftest import DRUMS, ROOT, TONES
from dsplug.audio import load_audio
from dsplug.errors import AudioError, ExportError

pytestmark = pytest.mark.heavy

CLIP = TONES / "audio" / "spk5_0001_T3.ogg"
CRASH = DRUMS / "audio" / "crash02.ogg"  # 2.55 s, 44.1 kHz


@pytest.fixture(scope="module")
def alone(exported_run, tmp_path_factory):
    """Every exported model copied into a folder without any sidecar."""
    folder = tmp_path_factory.mktemp("alone")
    for model in exported_run.glob("model*.tflite"):
        shutil.copy(model, folder / model.name)
    return folder


def test_every_exported_model_describes_itself(exported_run, alone):
    names = sorted(p.name for p in alone.iterdir())
    assert len(names) == 10 and "model-pruned-qat.tflite" in names  # 5 modes, original and pruned
    for name in names:
        model = dsplug.load(alone / name)
        sidecar = json.loads((exported_run / name).with_suffix(".json").read_text())
        assert model.metadata.model_dump(mode="json") == sidecar  # the sidecar is derived from the same description
        assert model.classes == ("T1", "T2", "T3", "T4", "T5_neutral") and model.sample_rate == 16000
        assert model.metadata.quantize == (sidecar["quantize"])


def test_predict_arrays_files_and_streams(alone):
    model = dsplug.load(alone / "model-int8.tflite")
    from_file = model.predict(CRASH)
    samples, rate = sf.read(CRASH, dtype="float32")
    from_array = model.predict(samples, sample_rate=rate)
    assert from_array.label == from_file.label and from_array.notes == from_file.notes
    np.testing.assert_allclose(from_array.chunk_probabilities, from_file.chunk_probabilities, atol=1e-6)
    # integer PCM (full scale 32768) at the model's rate, and mono given as (n, 1): no resampling
    signal = load_audio(CRASH, sample_rate=16000)
    pcm = np.round(signal * 32767).astype(np.int16)[:, None]
    as_int = model.predict(pcm, sample_rate=16000)
    np.testing.assert_allclose(as_int.chunk_probabilities, model.predict(pcm[:, 0] / 32768, sample_rate=16000).chunk_probabilities, atol=1e-6)
    assert as_int.notes == () and len(as_int.chunk_labels) == len(from_file.chunk_labels)
    with pytest.raises(AudioError, match="without its sample rate; pass sample_rate="):
        model.predict(samples)
    with pytest.raises(AudioError, match="only for arrays"):
        model.predict(CRASH, sample_rate=44100)

    # a stream of blocks at the file's rate: the windows of the 16 kHz signal, resampled as it streams
    blocks = (samples[i : i + 4410] for i in range(0, len(samples), 4410))
    decisions = list(model.stream(blocks, sample_rate=rate, hop_seconds=0.5))
    expected = list(model.stream([signal], hop_seconds=0.5))
    assert [d.time for d in decisions] == pytest.approx([d.time for d in expected])
    assert [d.label for d in decisions] == [d.label for d in expected]
    np.testing.assert_allclose(np.stack([d.raw_probabilities for d in decisions]),
                               np.stack([d.raw_probabilities for d in expected]), atol=0.02)


def test_cli_works_from_the_tflite_alone(alone, tmp_path):
    from typer.testing import CliRunner

    from dsplug.cli import app

    runner = CliRunner()
    model = str(alone / "model-int8.tflite")
    predicted = runner.invoke(app, ["predict", model, str(CLIP)])
    assert predicted.exit_code == 0 and "spk5_0001_T3.ogg: T" in predicted.output, predicted.output
    streamed = runner.invoke(app, ["stream", model, "--file", str(CRASH), "--fast"])
    assert streamed.exit_code == 0 and "latency per window" in streamed.output, streamed.output
    benched = runner.invoke(app, ["bench", model, "--runs", "3", "--json"])
    assert benched.exit_code == 0 and json.loads(benched.output)["latency_mean_ms"] > 0


def test_a_sidecar_that_contradicts_the_model_is_refused(exported_run, tmp_path):
    shutil.copy(exported_run / "model.tflite", tmp_path / "model.tflite")
    sidecar = json.loads((exported_run / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps(sidecar))
    assert dsplug.load(tmp_path / "model.tflite").metadata.recipe_hash == sidecar["recipe_hash"]
    (tmp_path / "model.json").write_text(json.dumps({**sidecar, "recipe_hash": "0123456789abcdef"}))
    with pytest.raises(ExportError, match=r"model\.json does not belong to .*recipe_hash: .* inside, '0123456789abcdef'"):
        dsplug.load(tmp_path / "model.tflite")
    # another model's sidecar (the int8 one: the same recipe, classes and shapes) is fine
    shutil.copy(exported_run / "model-int8.json", tmp_path / "model.json")
    assert dsplug.load(tmp_path / "model.tflite").metadata.quantize == "none"


def test_a_model_without_metadata_needs_its_sidecar(exported_run, tmp_path):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    content = (exported_run / "model.tflite").read_bytes()  # strip the metadata: an older export
    bare = tfl.ModelT.InitFromObj(tfl.Model.GetRootAs(content, 0))
    bare.metadata = None
    builder = flatbuffers.Builder(len(content))
    builder.Finish(bare.Pack(builder), b"TFL3")
    (tmp_path / "old.tflite").write_bytes(bytes(builder.Output()))
    with pytest.raises(ExportError, match="no TFLite Model Metadata inside and no metadata file .*old.json.*dsplug export"):
        dsplug.load(tmp_path / "old.tflite")
    shutil.copy(exported_run / "model.json", tmp_path / "old.json")
    assert dsplug.load(tmp_path / "old.tflite").classes == ("T1", "T2", "T3", "T4", "T5_neutral")


def test_the_package_root_stays_light():
    code = "import sys, dsplug; print(sorted(m for m in sys.modules if m.split('.')[0] in {'numpy', 'tensorflow', 'ai_edge_litert'}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_the_api_docs_examples_run(exported_run, tmp_path, monkeypatch, capsys):
    """docs/api.md, every ```python block in order in one namespace, from a folder with runs/demo and data/."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "demo").symlink_to(exported_run)
    (tmp_path / "data").symlink_to(ROOT / "data")
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks((ROOT / "docs" / "api.md").read_text())
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        if block.startswith(("# needs a microphone", "# trains a model")):
            compile(block, "docs/api.md", "exec")  # at least valid Python
            continue
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 - our own documentation
    out = capsys.readouterr().out
    assert "('T1', 'T2', 'T3', 'T4', 'T5_neutral')" in out and "chunks" in out and "pass sample_rate=" in out
    assert "does not exist" in out  # the ExportError example


def test_the_readme_python_example_runs(exported_run, tmp_path, monkeypatch, capsys):
    """README.md's ```python block, as written, from a folder with runs/demo and data/."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "demo").symlink_to(exported_run)
    (tmp_path / "data").symlink_to(ROOT / "data")
    monkeypatch.chdir(tmp_path)
    [block] = python_blocks((ROOT / "README.md").read_text())
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - our own documentation
    out = capsys.readouterr().out
    assert out.startswith("('T1', 'T2', 'T3', 'T4', 'T5_neutral')")
    decisions = re.findall(r"^(\d+\.\d+) (T1|T2|T3|T4|T5_neutral) (0\.\d+|1\.0)$", out, flags=re.M)
    assert len(decisions) == 1 and float(decisions[0][0]) == pytest.approx(0.324, abs=1e-3)  # one decision, at the clip's end


def test_a_stream_shorter_than_a_window_gives_one_decision_as_predict(exported_run):
    import soundfile as sf

    model = dsplug.load(exported_run / "model.tflite")
    clip = ROOT / "data" / "tones" / "audio" / "spk5_0001_T3.ogg"
    samples, rate = sf.read(clip, dtype="float32")
    assert samples.size / rate < model.chunk_seconds
    decisions = list(model.stream((samples[i : i + 512] for i in range(0, samples.size, 512)), sample_rate=rate))
    assert len(decisions) == 1
    predicted = model.predict(clip)
    assert decisions[0].label == predicted.label
    np.testing.assert_allclose(decisions[0].raw_probabilities, predicted.probabilities, atol=0.02)
    assert list(model.stream([], sample_rate=rate)) == []  # nothing heard, nothing decided


def test_streaming_a_file_reads_it_block_by_block(exported_run, tmp_path, monkeypatch):
    """`dsplug stream --file` holds a block, not the file: it never decodes the file whole, and
    its windows are those of the file (10 s at 44.1 kHz, resampled as it is read)."""
    import soundfile as sf

    from dsplug.runtime import stream as stream_module

    tone, rate = sf.read(ROOT / "data" / "tones" / "audio" / "spk5_0001_T3.ogg", dtype="float32")
    long = np.resize(tone, rate * 10)
    sf.write(tmp_path / "long.flac", long, rate)
    model = dsplug.load(exported_run / "model.tflite")

    def refuse(*args, **kwargs):
        raise AssertionError("the file was decoded whole")

    monkeypatch.setattr(stream_module, "load_audio", refuse)
    streamed: list = []
    summary = stream_module.stream_file(model, tmp_path / "long.flac", realtime=False, hop_seconds=0.5, on_result=streamed.append)
    assert len(streamed) == summary.windows == 1 + (10 * model.sample_rate - model.chunk_samples) // (model.sample_rate // 2)
    expected = dsplug.load(exported_run / "model.tflite").predict(long, sample_rate=rate, hop_seconds=0.5)
    agreement = np.mean([r.label == label for r, label in zip(streamed, expected.chunk_labels)])
    assert agreement >= 0.9, agreement  # the same windows; resampled in pieces instead of at once
