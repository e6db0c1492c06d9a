"""Kill tests: a run killed during phase 1 (SIGTERM), after epoch 2 of phase 2 (SIGKILL) and while
exporting (SIGKILL), then rerun, ends exactly as the same run left alone: the same history,
metrics and model outputs.

The runs are tiny (a small CNN on 32x32 images) but train as users train: dropout in the head,
SapAugment with CutMix and SpecAugment, and phase 2 fine-tuning every layer. They run as
``python -m dsplug.cli run`` in subprocesses. The data set holds one undecodable file
(``data.on_bad_file: skip``) and one repeated row, so the same runs also show that a skipped file
is counted as skipped everywhere and that doubtful rows are recorded in ``data.json``.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import badfiles

pytestmark = pytest.mark.heavy

RECIPE = """\
name: kill
seed: 7
data: {manifest: m.csv, chunk_seconds: 0.5, hop_seconds: 0.125, on_bad_file: skip}
frontend: {image_size: [32, 32], n_mels: 32}
model:
  backbone: {name: tinyconv, weights: none, width: 8}
  head: {name: mlp, units: 16, dropout: 0.25}
train:
  batch_size: 8
  optimizer: adam
  lr: 0.003
  cache_features: false
  phase1: {epochs: 3}
  phase2: {epochs: 3, finetune_layers: all}
augment: {policy: sapaugment, p_min: 0.5, p_max: 0.9}
evaluate: {bootstrap: 20}
"""


def data_set(folder: Path) -> Path:
    """Two tone classes (1 s files), groups per partition, one undecodable test file, one repeated row."""
    rows = ["path,label,partition"]
    for number, label in enumerate("xy"):
        for partition, count in (("train", 6), ("devel", 2), ("test", 2)):
            for i in range(count):
                path = badfiles.write_tone(folder / "a" / f"{label}_{partition}_{i}.wav", seconds=1.0, freq=300.0 + 250 * number + 15 * i)
                rows.append(f"{path.relative_to(folder)},{label},{partition}")
    badfiles.BAD_AUDIO["rate-0hz"](folder / "a" / "broken.wav")
    rows += ["a/broken.wav,x,test", rows[1]]
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    return badfiles.write(folder / "kill.yaml", RECIPE)


def command(recipe: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "dsplug.cli", "run", str(recipe), "--out", str(out)]


def environment(folder: Path) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_DETERMINISTIC_OPS": "1", "DSPLUG_OFFLINE": "1",
            "DSPLUG_CACHE": str(folder / "cache"), "PYTHONHASHSEED": "0"}


def run_to_end(recipe: Path, out: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command(recipe, out), capture_output=True, text=True, env=environment(recipe.parent), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def kill_when(recipe: Path, out: Path, ready: Callable[[], bool], *, sig: int = signal.SIGKILL) -> None:
    """Start a run and send it ``sig`` as soon as ``ready()`` holds (it must not finish first)."""
    process = subprocess.Popen(command(recipe, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment(recipe.parent))
    deadline = time.monotonic() + 600
    try:
        while not ready():
            assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "the run never reached the point to kill it at"
            time.sleep(0.01)
        process.send_signal(sig)
        process.wait(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -sig
    assert json.loads((out / "run.json").read_text())["finished"] is False


def state(out: Path) -> dict | None:
    try:
        return json.loads((out / "checkpoints" / "state.json").read_text())
    except (OSError, ValueError):
        return None


def history(out: Path) -> list[dict[str, float]]:
    """history.csv without timings."""
    with open(out / "history.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items() if k != "seconds" and v != ""} for row in csv.DictReader(handle)]


def numbers(document: object) -> list[float]:
    """Every number in a JSON document, in order (its strings and structure must match too)."""
    if isinstance(document, dict):
        return [n for key in sorted(document) for n in [hash(key) % 997, *numbers(document[key])]]
    if isinstance(document, list):
        return [n for item in document for n in numbers(item)]
    if isinstance(document, bool) or document is None:
        return [float(bool(document))]
    return [float(document)] if isinstance(document, (int, float)) else [float(len(str(document)))]


def outputs(out: Path, chunks: np.ndarray) -> np.ndarray:
    from dsplug.runtime import load_model

    return load_model(out / "model.tflite").predict_chunks(chunks)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run left alone: its directory and printed output."""
    folder = tmp_path_factory.mktemp("kill")
    recipe = data_set(folder)
    result = run_to_end(recipe, folder / "reference")
    return recipe, folder / "reference", result.stdout


def test_skipped_files_and_doubtful_rows_are_recorded_everywhere(reference):
    _, out, printed = reference
    data = json.loads((out / "data.json").read_text())
    assert [Path(s["path"]).name for s in data["skipped"]] == ["broken.wav"]
    assert data["partitions"]["test"]["skipped"] == 1 and data["partitions"]["test"]["files"] == 4
    assert any("listed more than once" in w for w in data["warnings"])
    assert [line.split(",")[0].endswith("broken.wav") for line in (out / "skipped_files.csv").read_text().splitlines()[1:]] == [True]
    assert "skipped 1 undecodable file(s)" in printed and "skipped" in (out / "report.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["n"] == 4 and set(metrics) == {"devel", "test"}


def test_killed_in_both_phases_and_during_export_the_rerun_equals_the_run_left_alone(reference):
    recipe, expected, _ = reference
    out = recipe.parent / "killed"

    def after(epochs: int, phase: int) -> Callable[[], bool]:
        def ready() -> bool:
            saved = state(out)
            return bool(saved and sum(h["phase"] == phase for h in saved["history"]) >= epochs and not saved["done"])
        return ready

    kill_when(recipe, out, after(1, phase=1), sig=signal.SIGTERM)
    assert [h["phase"] for h in state(out)["history"]][:1] == [1]
    kill_when(recipe, out, after(2, phase=2))
    killed_at = state(out)
    assert killed_at is not None and not killed_at["done"] and not (out / "model.keras").exists()
    assert [h["phase"] for h in killed_at["history"]] in ([1, 1, 1, 2, 2], [1, 1, 1, 2, 2, 2])

    kill_when(recipe, out, lambda: (out / "model.keras").is_file() and not (out / "export.json").is_file())
    assert state(out)["done"] and len(state(out)["history"]) > len(killed_at["history"])

    run_to_end(recipe, out)
    assert json.loads((out / "run.json").read_text())["finished"] is True
    assert len(history(out)) == len(history(expected))
    for mine, theirs in zip(history(out), history(expected)):
        assert mine.keys() == theirs.keys()
        np.testing.assert_allclose([mine[k] for k in mine], [theirs[k] for k in mine], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(numbers(json.loads((out / "metrics.json").read_text())),
                               numbers(json.loads((expected / "metrics.json").read_text())), rtol=1e-6)
    from dsplug.audio import chunk_signal, load_audio

    signal_ = load_audio(recipe.parent / "a" / "y_test_1.wav", sample_rate=16000)
    chunks = chunk_signal(signal_, sample_rate=16000, chunk_seconds=0.5, hop_seconds=0.125).frames
    np.testing.assert_allclose(outputs(out, chunks), outputs(expected, chunks), rtol=1e-4, atol=1e-6)
