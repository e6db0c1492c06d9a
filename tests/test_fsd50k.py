"""scripts/fsd50k_manifest.py and recipes/fsd50k-lean.yaml on a tiny synthetic FSD50K-shaped tree."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import ROOT
from dsplug.cli import app
from dsplug.data import load_manifest
from dsplug.errors import DataError

VOCABULARY = [("Bark", "/m/05tny_"), ("Dog", "/m/0bt9lr"), ("Domestic_animals_and_pets", "/m/068hy"),
              ("Keyboard_(musical)", "/m/05148p4"), ("Music", "/m/04rlf")]
DOG = ["Bark", "Dog", "Domestic_animals_and_pets"]
KEYS = ["Keyboard_(musical)", "Music"]


def _script():
    spec = importlib.util.spec_from_file_location("fsd50k_manifest", ROOT / "scripts" / "fsd50k_manifest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _truth(folder, name, header, rows):
    with open(folder / "FSD50K.ground_truth" / name, "w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def _row(fname, labels, *split):
    mids = dict(VOCABULARY)
    return [fname, ",".join(labels), ",".join(mids[lab] for lab in labels), *split]


def fsd50k_tree(root):
    """FSD50K's layout with 16 short 44.1 kHz clips (barks: noise bursts; keys: tones), real CSV formats."""
    import soundfile

    rng = np.random.default_rng(0)
    (root / "FSD50K.ground_truth").mkdir(parents=True)
    _truth(root, "vocabulary.csv", None, [[i, label, mid] for i, (label, mid) in enumerate(VOCABULARY)])  # no header
    dev = [_row(str(100 + k), DOG if k % 2 else KEYS, "val" if k % 4 == 3 else "train") for k in range(12)]
    dev[4] = _row("104", DOG + KEYS, "train")  # a clip with both
    _truth(root, "dev.csv", ["fname", "labels", "mids", "split"], dev)
    _truth(root, "eval.csv", ["fname", "labels", "mids"], [_row(str(900 + k), DOG if k % 2 else KEYS) for k in range(4)])
    for subset, rows in (("dev", dev), ("eval", range(4))):
        folder = root / f"FSD50K.{subset}_audio"
        folder.mkdir()
        for k, row in enumerate(rows):
            fname = row[0] if subset == "dev" else str(900 + k)
            t = np.arange(int(44100 * (0.6 + 0.1 * k))) / 44100
            signal = 0.3 * np.sin(2 * np.pi * (220 + 40 * k) * t) if k % 2 == 0 else 0.3 * rng.standard_normal(len(t)) * (t % 0.25 < 0.08)
            soundfile.write(folder / f"{fname}.wav", signal.astype(np.float32), 44100, subtype="PCM_16")
    return root


def test_script_and_recipe_on_a_synthetic_fsd50k_tree(tmp_path):
    root = fsd50k_tree(tmp_path / "FSD50K")
    out = tmp_path / "lists" / "fsd50k.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "fsd50k_manifest.py"), str(root), "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}: 9 train, 3 devel, 4 test clips, 5 classes" in done.stderr
    rows = list(csv.DictReader(open(out)))
    assert rows[0] == {"path": "../FSD50K/FSD50K.dev_audio/100.wav", "label": "Keyboard_(musical);Music", "partition": "train"}
    assert rows[4]["label"] == "Bark;Dog;Domestic_animals_and_pets;Keyboard_(musical);Music"
    assert [r["partition"] for r in rows[-4:]] == ["test"] * 4

    manifest = load_manifest(out, task="multilabel")
    assert manifest.classes == sorted(label for label, _ in VOCABULARY) and manifest.split_from == "column"
    assert manifest.targets(manifest.partition("test")).sum(axis=0).tolist() == [2, 2, 2, 2, 2]
    result = CliRunner().invoke(app, ["validate", str(ROOT / "recipes" / "fsd50k-lean.yaml"), "--set", f"data.manifest={out}"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "16 files, 5 classes" in result.output
    from dsplug.recipe.loader import load_recipe

    [point] = load_recipe(ROOT / "recipes" / "fsd50k-lean.yaml", overrides=[f"data.manifest={out}"])
    recipe = point.recipe
    assert (recipe.data.chunk_seconds, recipe.data.hop_seconds, recipe.data.sample_rate) == (1.0, 0.5, 16000)
    assert (recipe.train.batch_size, recipe.train.lr, recipe.train.phase1.epochs + recipe.train.phase2.epochs) == (64, 1e-4, 40)
    assert recipe.model.backbone.name == "lean" and recipe.data.task == "multilabel"


@pytest.mark.heavy
def test_recipe_runs_end_to_end_on_the_synthetic_tree(tmp_path):
    """The recipe's run on the manifest the script writes, shortened (one epoch of two steps, random
    weights): 200-class-style multi-label targets per file, chunks in shards on disk, devel mAP per
    epoch, file-level mAP on devel and test, TFLite export."""
    import json

    root = fsd50k_tree(tmp_path / "FSD50K")
    out = tmp_path / "fsd50k.csv"
    _script().fsd50k_manifest(root, out=out)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", str(ROOT / "recipes" / "fsd50k-lean.yaml"), "--out", str(run), "--set", f"data.manifest={out}",
        "--set", "data.storage=disk", "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "model.backbone.weights=none",
        "--set", "train.phase2.epochs=1", "--set", "train.steps_per_epoch=2", "--set", "train.batch_size=8",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"devel", "test"} and metrics["test"]["n"] == 4 and 0.0 < metrics["test"]["map"] <= 1.0
    assert metrics["test"]["level"] == "file" and set(metrics["test"]["ap_per_class"]) == {label for label, _ in VOCABULARY}
    history = list(csv.DictReader(open(run / "history.csv")))
    assert len(history) == 1 and 0.0 < float(history[0]["devel_score"]) <= 1.0
    assert json.loads((run / "data.json").read_text())["storage"]["storage"] == "disk"
    assert json.loads((run / "model.json").read_text())["task"] == "multilabel" and (run / "model.tflite").is_file()


def test_wrong_folders_and_damaged_ground_truth_are_named(tmp_path):
    script = _script()
    out = tmp_path / "m.csv"
    with pytest.raises(DataError, match="FSD50K.ground_truth/vocabulary.csv does not exist; pass the folder that holds"):
        script.fsd50k_manifest(tmp_path, out=out)
    root = fsd50k_tree(tmp_path / "FSD50K")
    (root / "FSD50K.eval_audio" / "901.wav").unlink()
    with pytest.raises(DataError, match="1 audio file.s. of the ground truth do not exist, e.g. FSD50K.eval_audio/901.wav"):
        script.fsd50k_manifest(root, out=out)
    _truth(root, "eval.csv", ["fname", "labels", "mids"], [["900", "Cat", "/m/01yrx"]])
    with pytest.raises(DataError, match="eval.csv, line 2: label.s. 'Cat' of clip 900 are not in vocabulary.csv"):
        script.fsd50k_manifest(root, out=out)
    _truth(root, "eval.csv", ["fname", "labels", "mids"], [_row("900", ["Dog", "Bark"])[:2] + ["/m/05tny_,/m/0bt9lr"]])
    with pytest.raises(DataError, match="do not match its AudioSet ids"):
        script.fsd50k_manifest(root, out=out)
    _truth(root, "dev.csv", ["fname", "labels", "mids"], [])
    with pytest.raises(DataError, match="dev.csv: missing column.s. split"):
        script.fsd50k_manifest(root, out=out)
    assert not out.exists()
    assert script.main([str(tmp_path / "nowhere"), "-o", str(out)]) == 2
