"""Shared fixtures: paths of the bundled real data, and helpers to fake installed plugins."""

from __future__ import annotations

import csv
import os
import shutil
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
TONES = ROOT / "data" / "tones"
DRUMS = ROOT / "data" / "drums"


@pytest.fixture
def tones_manifest() -> Path:
    """The bundled demo manifest (real Mandarin tone recordings, partition column)."""
    return TONES / "manifest.csv"


@pytest.fixture
def drums_manifest() -> Path:
    """The bundled drum one-shots (labels.csv has no partition column)."""
    return DRUMS / "labels.csv"


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """Install a fake distribution (a real dist-info on sys.path) providing entry points.

    Returns a function ``make(dist_name, {group: {name: "module:attr"}}, modules={name: source})``.
    """
    from dsplug import registry

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(dist: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str] | None = None) -> Path:
        info = site / f"{dist.replace('-', '_')}-9.9.9.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 9.9.9\n")
        lines = []
        for group, eps in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{name} = {target}" for name, target in eps.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in (modules or {}).items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
        registry.refresh()
        return info

    yield make
    registry.refresh()


def write_recipe(path: Path, text: str) -> Path:
    """Write a recipe file (dedented) and return its path."""
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# ------------------------------------------------------------------ one exported run, shared
#: A tiny model (MobileNetV2 from random weights, 32x32 images, 1 s chunks) trained until it is
#: sure of its training speaker's files (devel is that speaker too), exported in every
#: quantisation mode and pruned: what the ecosystem tests (MediaPipe, the web app, the wheel, the
#: Python API docs) run.
EXPORTED_RECIPE = """
name: ecosystem
seed: 2
data: {{manifest: {manifest}, chunk_seconds: 1.0}}
frontend: {{image_size: [32, 32], n_mels: 32}}
model:
  backbone: {{name: mobilenet_v2, weights: none}}
  head: {{name: mlp, units: 32, dropout: 0.0}}
train: {{batch_size: 16, optimizer: adam, lr: 0.002, phase1: {{epochs: 1}}, phase2: {{epochs: 20, finetune_layers: all, lr_factor: 1.0}}, early_stopping: 30}}
augment: {{policy: none}}
evaluate: {{bootstrap: 0}}
export: {{quantize: [dynamic, float16, int8, qat], prune: 0.5, prune_epochs: 1, qat_epochs: 1, representative_size: 40}}
"""


def tone_rows(per_class: int) -> list[dict[str, str]]:
    """The first ``per_class`` rows of each (class, partition) of the tones manifest, paths absolute."""
    with open(TONES / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    keep, seen = [], {}
    for row in rows:
        key = (row["label"], row["partition"])
        if seen.get(key, 0) < per_class:
            seen[key] = seen.get(key, 0) + 1
            keep.append({**row, "path": str(TONES / row["path"])})
    return keep


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write manifest rows (dicts with the same keys) as a CSV file."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def exported_rows() -> list[dict[str, str]]:
    """The shared run's manifest: per class 12 train and 4 devel files of the training speaker, 4 test files of the other."""
    rows, count = [], {}
    for row in tone_rows(16):
        key = (row["label"], row["partition"])
        count[key] = count.get(key, 0) + 1
        if row["partition"] == "train":
            rows.append({**row, "partition": "train" if count[key] <= 12 else "devel"})
        elif row["partition"] == "test" and count[key] <= 4:
            rows.append(row)
    return rows


def _export_shared_run(folder: Path) -> Path:
    from dsplug.recipe.loader import load_recipe
    from dsplug.workflows.run import run_point

    manifest = write_manifest(folder / "manifest.csv", exported_rows())
    [point] = load_recipe(write_recipe(folder / "ecosystem.yaml", EXPORTED_RECIPE.format(manifest=manifest)))
    run_point(point, run_dir=folder / "run")
    return folder / "run"


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory) -> Path:
    """A finished run with model{,-dynamic,-float16,-int8,-qat,-pruned,-pruned-*}.tflite.

    Built once per test session, also across pytest-xdist workers (a file lock in the shared
    temporary folder); treat it as read-only. ``DSPLUG_TEST_EXPORTED_RUN=DIR`` reuses a run
    built before (by ``_export_shared_run``), to iterate on one test quickly.
    """
    import fcntl

    from dsplug.artifacts import RunDir

    if os.environ.get("DSPLUG_TEST_EXPORTED_RUN"):
        return Path(os.environ["DSPLUG_TEST_EXPORTED_RUN"])

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # one folder per session
    folder = shared / "exported-run"
    with open(shared / "exported-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not RunDir(folder / "run").finished:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            _export_shared_run(folder)
    return folder / "run"
