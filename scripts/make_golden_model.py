#!/usr/bin/env python3
"""Regenerate the golden models the fast tests run: ``tests/assets/golden/model{,-int8}.tflite``.

    python scripts/make_golden_model.py          # about a minute on 2 cores

A real ``dsplug run`` of a tiny recipe (the example plugin's TinyConv, width 8, 48 x 48 images,
0.5 s chunks with a 0.25 s hop, 8 training files per tone class of the bundled tones) exported as float32 and int8
TFLite with their metadata inside. The runtime, API and command-line tests load these files
instead of training a model, so they run in the quick loop (``python3 dev.py test --quick``).
Rerun this script when the exported format changes (``tests/test_runtime.py`` says so).
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
TONES = ROOT / "data" / "tones"
OUT = ROOT / "tests" / "assets" / "golden"
RECIPE = """
name: golden
seed: 0
data: {{manifest: {manifest}, chunk_seconds: 0.5, hop_seconds: 0.25}}
frontend: {{image_size: [48, 48], n_mels: 48}}
model:
  backbone: {{name: tinyconv, weights: none, width: 8}}
  head: {{name: mlp, units: 16, dropout: 0.0}}
train: {{batch_size: 16, lr: 0.003, phase1: {{epochs: 0}}, phase2: {{epochs: 6, finetune_layers: all, lr_factor: 1.0}}}}
augment: {{policy: none}}
evaluate: {{bootstrap: 0}}
export: {{quantize: [int8], representative_size: 40}}
"""


def _manifest(path: Path, *, per_class: int = 8) -> Path:
    """Per tone class ``per_class`` train, 2 devel and 2 test files (the test speaker's), paths absolute."""
    with open(TONES / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept, seen = [], {}
    for row in rows:
        key = (row["label"], row["partition"])
        seen[key] = seen.get(key, 0) + 1
        limit = {"train": per_class + 2, "test": 2}.get(row["partition"], 0)
        if seen[key] <= limit:
            partition = "devel" if row["partition"] == "train" and seen[key] > per_class else row["partition"]
            kept.append({"path": str(TONES / row["path"]), "label": row["label"], "partition": partition})
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "partition"])
        writer.writeheader()
        writer.writerows(kept)
    return path


def main() -> int:
    from dsplug.recipe.loader import load_recipe
    from dsplug.workflows.run import run_point

    with tempfile.TemporaryDirectory(prefix="dsplug-golden-") as tmp:
        folder = Path(tmp)
        recipe = folder / "golden.yaml"
        recipe.write_text(RECIPE.format(manifest=_manifest(folder / "manifest.csv")))
        [point] = load_recipe(recipe)
        run_point(point, run_dir=folder / "run")
        OUT.mkdir(parents=True, exist_ok=True)
        for name in ("model.tflite", "model-int8.tflite"):
            shutil.copy(folder / "run" / name, OUT / name)
            print(f"wrote {OUT / name} ({(OUT / name).stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
