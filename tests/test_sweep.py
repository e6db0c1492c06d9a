"""Sweeps: local parallel execution, skipping finished points, SLURM scripts, summaries."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from conftest import write_recipe
from dsplug.cli import app
from dsplug.recipe.loader import load_recipe
from dsplug.workflows.sweep import summarize
from test_run import RECIPE, small_manifest

runner = CliRunner()


@pytest.fixture(scope="module")
def sweep_recipe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    text = RECIPE.format(manifest=small_manifest(folder, per_class=2))
    text = text.replace("phase1: {epochs: 2}, phase2: {epochs: 1, finetune_layers: 10}", "phase1: {epochs: 1}, phase2: {epochs: 0}")
    return write_recipe(folder / "sweep.yaml", text)


@pytest.mark.heavy
def test_local_sweep_runs_points_in_parallel_jobs(sweep_recipe, tmp_path):
    out = tmp_path / "sw"
    args = ["sweep", str(sweep_recipe), "--set", "sweep.model.head.units=[8, 16]", "--executor", "local", "--jobs", "2", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    points = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert points == ["units-16", "units-8"]
    for name in points:
        assert (out / name / "metrics.json").is_file() and (out / name / "model.tflite").is_file()
    assert "(best)" in result.output
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert len(rows) == 2 and sum(r["best"] == "True" for r in rows) == 1
    best = max(rows, key=lambda r: float(r["devel_uar"]))
    assert best["best"] == "True"
    # re-running skips the finished points
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "2 already finished" in again.output
    assert "done:" not in again.output


def test_slurm_script_runs_each_point_of_the_array(sweep_recipe, tmp_path):
    out = tmp_path / "sl"
    result = runner.invoke(app, ["sweep", str(sweep_recipe), "--set", "sweep.train.lr=[0.1, 0.01, 0.001]", "--executor", "slurm",
                                 "--out", str(out), "--sbatch", "--time=01:00:00"])
    assert result.exit_code == 0, result.output
    script = (out / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-2" in script and "#SBATCH --time=01:00:00" in script
    assert 'sed -n "$((SLURM_ARRAY_TASK_ID + 1))p"' in script
    assert 'dsplug run "$SWEEP/$POINT/point.yaml" --out "$SWEEP/$POINT"' in script
    points = (out / "points.txt").read_text().split()
    assert len(points) == 3 and all((out / p / "point.yaml").is_file() for p in points)
    # each point's recipe is self-contained and loads on its own
    lrs = sorted(load_recipe(out / p / "point.yaml")[0].recipe.train.lr for p in points)
    assert lrs == [0.001, 0.01, 0.1]


def test_submit_without_sbatch_is_a_clear_error(sweep_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.invoke(app, ["sweep", str(sweep_recipe), "--set", "sweep.train.lr=[0.1, 0.01]", "--executor", "slurm",
                                 "--out", str(tmp_path / "s"), "--submit"])
    assert result.exit_code == 2 and "needs SLURM's sbatch" in result.output


def test_summarize_needs_finished_points(tmp_path):
    result = runner.invoke(app, ["sweep", "summarize", str(tmp_path)])
    assert result.exit_code == 2 and "no finished sweep point" in result.output


def test_summary_marks_the_best_devel_point(tmp_path):
    for name, devel, test in (("a", 0.5, 0.4), ("b", 0.7, 0.3), ("c", 0.6, 0.9)):
        (tmp_path / name).mkdir()
        metrics = {"devel": {"uar": devel, "uar_ci95": [devel - 0.1, devel + 0.1]}, "test": {"uar": test, "uar_ci95": [test - 0.1, test + 0.1]}}
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
        (tmp_path / name / "point.json").write_text(json.dumps({"values": {"train.lr": devel}}))
    rows = summarize(tmp_path)
    assert [r["point"] for r in rows if r["best"]] == ["b"]  # chosen on devel, not test
    assert "**b** (best)" in (tmp_path / "summary.md").read_text()
