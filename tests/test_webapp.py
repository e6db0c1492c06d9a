"""`dsplug export --web`: the static web app in real headless Chromium, with a fake microphone.

Needs what `python3 dev.py test` installs: Debian's Chromium, and `npm ci` in tests/web
(MediaPipe's audio bundle and playwright-core). Without them the tests fail and name the
command; they never skip.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import tone_rows
from webtools import BUNDLE, drive, heard_audio, served
from dsplug import runtime
from dsplug.audio import load_audio
from dsplug.deploy.web import BUNDLE_FILES, find_bundle, write_web_app
from dsplug.errors import ExportError

pytestmark = pytest.mark.heavy

SEGMENT_CHUNKS = 3  # each class plays for three windows


def fake_microphone_wav(model: runtime.Model, path: Path) -> list[str]:
    """A 16 kHz WAV for the fake microphone: per class, a training clip at the start of a window
    (zero-padded, as in training), played for :data:`SEGMENT_CHUNKS` windows. The microphone's
    windows are the file's shifted by some milliseconds and resampled twice by the browser, and
    this tiny model is sensitive to both: the clip of a class is the one whose label the model
    keeps most surely under shifts of up to 20 ms (classes without such a clip are left out).
    Returns the classes in the order played."""
    shifts = range(-round(0.02 * model.sample_rate), round(0.02 * model.sample_rate) + 1, round(0.004 * model.sample_rate))
    best: dict[str, tuple[float, np.ndarray]] = {}
    for row in (r for r in tone_rows(12) if r["partition"] == "train"):
        clip = load_audio(row["path"], sample_rate=model.sample_rate)[: model.chunk_samples]
        window = np.pad(clip, (0, model.chunk_samples - clip.size))
        outputs = model.predict_chunks(np.stack([np.roll(window, shift) for shift in shifts]))
        target = model.classes.index(row["label"])
        margin = float(np.min(outputs[:, target] - np.delete(outputs, target, axis=1).max(axis=1)))
        if margin > best.get(row["label"], (0.1, None))[0]:
            best[row["label"]] = (margin, window)
    assert len(best) >= 3, f"the model is sure of too few classes: {sorted(best)}"
    order = sorted(best)
    sf.write(path, np.concatenate([best[label][1] for label in order for _ in range(SEGMENT_CHUNKS)]),
             model.sample_rate, subtype="PCM_16")
    return order


@pytest.fixture(scope="module")
def app(exported_run, tmp_path_factory):
    models = [exported_run / "model.tflite", exported_run / "model-int8.tflite"]
    return write_web_app(models, tmp_path_factory.mktemp("web") / "app", bundle=BUNDLE if BUNDLE.is_dir() else None)


def test_the_app_folder_is_static_and_self_contained(app, exported_run, tmp_path):
    assert json.loads((app / "models.json").read_text())[0] == {
        "path": "models/model.tflite", "name": "model", "quantize": "none", "pruned": False,
        "bytes": (exported_run / "model.tflite").stat().st_size,
    }
    for name in ("index.html", "app.js", "capture-worklet.js", "style.css", "models/model-int8.tflite",
                 *(f"mediapipe/{f}" for f in BUNDLE_FILES)):
        assert (app / name).is_file(), name
    assert "https://" not in (app / "app.js").read_text()  # everything from the page's own origin
    # writing again refreshes the app; a folder with other files is refused
    write_web_app([exported_run / "model.tflite"], app, bundle=BUNDLE)
    assert [m["name"] for m in json.loads((app / "models.json").read_text())] == ["model"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not a dsplug web app"):
        write_web_app([exported_run / "model.tflite"], tmp_path / "other", bundle=BUNDLE)
    write_web_app([exported_run / "model.tflite", exported_run / "model-int8.tflite"], app, bundle=BUNDLE)


def test_a_missing_bundle_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DSPLUG_MEDIAPIPE_WEB", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ExportError, match=r"npm install --prefix ~/.cache/dsplug/web @mediapipe/tasks-audio@1\.0\.1"):
        find_bundle()
    with pytest.raises(ExportError, match="was not found"):
        find_bundle(tmp_path / "nowhere")


def test_microphone_windows_match_dsplug_stream(app, exported_run, tmp_path):
    """The fake microphone plays a WAV; each of the page's windows is decided as dsplug decides
    the samples the page heard (``record=1`` keeps them), and those are the file's.

    The fake capture does not start exactly when the page listens and the browser resamples the
    capture: the test finds the shift between the file and what the page heard
    (cross-correlation) and prints how often `dsplug stream` on the file so shifted agrees (this
    tiny model is sensitive to a few samples, so that figure varies from run to run)."""
    model = runtime.load_model(exported_run / "model.tflite")
    wav = tmp_path / "microphone.wav"
    fake_microphone_wav(model, wav)
    played, rate = sf.read(wav, dtype="float32")
    windows_played = played.size // model.chunk_samples
    shot = tmp_path / "microphone.png"
    with served(app) as base:
        url = f"{base}/index.html?autostart=1&record=1&max={windows_played}"
        result = drive(url, tmp_path / "mic.json", wav=wav, screenshot=shot)
    windows = result["state"]["windows"]
    assert result["state"]["sampleRate"] == model.sample_rate  # an AudioContext at the model's rate
    assert len(windows) == windows_played
    ours = model.predict_chunks(np.asarray([w["samples"] for w in windows], np.float32))
    assert [w["label"] for w in windows] == [model.classes[k] for k in ours.argmax(axis=1)]
    assert np.abs(np.asarray([w["scores"] for w in windows]) - ours).max() < 0.02
    heard_windows = np.asarray([w["samples"] for w in windows], np.float32)
    assert np.sqrt(np.mean(heard_windows**2)) > 0.1 * np.sqrt(np.mean(played**2))  # the file, not silence
    audio, delay = heard_audio(np.asarray(result["state"]["captured"], np.float32), played, rate=rate)
    heard = tmp_path / "heard.wav"
    sf.write(heard, audio, rate, subtype="FLOAT")
    expected: list[runtime.StreamResult] = []
    runtime.stream_file(model, heard, realtime=False, hop_seconds=model.chunk_seconds, on_result=expected.append)
    assert len(expected) == len(windows)
    agreement = np.mean([w["label"] == e.label for w, e in zip(windows, expected)])
    print(f"web app vs dsplug stream on the file: top-1 agreement {agreement:.3f} on {len(windows)} windows (the page "
          f"heard the file {delay / rate * 1000:+.0f} ms shifted), latency "
          f"{np.mean([w['latencyMs'] for w in windows]):.1f} ms per window")
    assert len({w["label"] for w in windows}) >= 2  # the windows do differ (which ones the shifted, resampled capture keeps varies)
    assert all(w["latencyMs"] > 0 for w in windows)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_recorded_clip_is_classified_like_dsplug_predict(app, exported_run, tmp_path):
    """The file picker's path (decode, cut into windows, mean) on a clip, with the int8 model."""
    model = runtime.load_model(exported_run / "model-int8.tflite")
    clip = Path(tone_rows(1)[0]["path"])
    shutil.copy(clip, app / "clip.ogg")
    [expected] = runtime.predict_files(model, [clip], hop_seconds=model.chunk_seconds)
    with served(app) as base:
        result = drive(f"{base}/index.html?model=models/model-int8.tflite&clip=clip.ogg", tmp_path / "file.json")
    state = result["state"]
    assert state["model"] == "models/model-int8.tflite" and state["file"]["label"] == expected.label
    scores = np.array([w["scores"] for w in state["windows"]])
    assert scores.shape == expected.chunk_probabilities.shape
    assert np.abs(scores - expected.chunk_probabilities).max() < 0.05  # the browser's decoder resamples


def test_export_web_without_the_bundle_stops_before_exporting(exported_run, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dsplug.cli import app as cli

    monkeypatch.delenv("DSPLUG_MEDIAPIPE_WEB", raising=False)
    before = (exported_run / "export.json").stat().st_mtime
    result = CliRunner().invoke(cli, ["export", str(exported_run), "--web", str(tmp_path / "web"), "--mediapipe", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "npm install --prefix ~/.cache/dsplug/web @mediapipe/tasks-audio@1.0.1" in result.output
    assert (exported_run / "export.json").stat().st_mtime == before and not (tmp_path / "web").exists()


def test_export_web_alone_reuses_the_runs_models(exported_run, tmp_path):
    """`dsplug export RUN --web DIR` with no export option writes the app around the models the
    run holds: nothing is converted again, export.json and export.md stay as they were."""
    from typer.testing import CliRunner

    from dsplug.cli import app as cli

    kept = ("export.json", "export.md", "model.tflite", "model-int8.tflite")
    before = {name: (exported_run / name).stat().st_mtime_ns for name in kept}
    result = CliRunner().invoke(cli, ["export", str(exported_run), "--web", str(tmp_path / "web"), "--mediapipe", str(BUNDLE)])
    assert result.exit_code == 0, result.output
    assert "using the models the run exported" in result.output
    assert {name: (exported_run / name).stat().st_mtime_ns for name in kept} == before
    assert (tmp_path / "web" / "models" / "model-int8.tflite").read_bytes() == (exported_run / "model-int8.tflite").read_bytes()
