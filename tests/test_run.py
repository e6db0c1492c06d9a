"""End-to-end runs on real bundled audio: training, evaluation, export, resume, feature caching."""

from __future__ import annotations

import contextlib
import csv
import json
import shutil

import numpy as np
import pytest
import yaml

from conftest import TONES, tone_rows, write_manifest, write_recipe
from dsplug.recipe.spec import PipelineSpec
from dsplug.recipe.loader import load_recipe
from dsplug.workflows.run import run_point

pytestmark = pytest.mark.heavy


def small_manifest(tmp_path, per_class: int = 4):
    """A few real tone files per class and partition (speaker-independent test)."""
    return write_manifest(tmp_path / "manifest.csv", tone_rows(per_class))


RECIPE = """
name: tiny
seed: 3
data: {{manifest: {manifest}, chunk_seconds: 0.5, hop_seconds: 0.25}}
frontend: {{image_size: [32, 32], n_mels: 32}}
model:
  backbone: {{name: mobilenet_v2, weights: none}}
  head: {{name: mlp, units: 16, dropout: 0.0}}
train: {{batch_size: 8, optimizer: adam, lr: 0.01, phase1: {{epochs: 2}}, phase2: {{epochs: 1, finetune_layers: 10}}}}
evaluate: {{bootstrap: 50}}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    manifest = small_manifest(folder)
    return write_recipe(folder / "tiny.yaml", RECIPE.format(manifest=manifest))


class RecordingReporter:
    """Records what a run reports: its lines and, per progress bar, the description and the updates."""

    def __init__(self):
        self.lines, self.bars = [], []

    def info(self, message):
        self.lines.append(message)

    @contextlib.contextmanager
    def progress(self, *, total, description):
        updates = []
        self.bars.append((description, total, updates))
        yield updates.append


@pytest.fixture(scope="module")
def finished(tiny, tmp_path_factory):
    """One finished run shared by the tests (copy it before changing it); its recipe's export
    section asks for a dynamic-range model too. ``result["reporter"]`` recorded its progress."""
    [point] = load_recipe(tiny, overrides=["export.quantize=[dynamic]"])
    out = tmp_path_factory.mktemp("run") / "run"
    reporter = RecordingReporter()
    return point, out, {**run_point(point, run_dir=out, reporter=reporter), "reporter": reporter}


def test_every_long_stage_shows_progress(finished):
    """Evaluation predicted every devel and test chunk without a bar (~15 s of silence on the demo)."""
    reporter = finished[2]["reporter"]
    bars = {description: (total, updates) for description, total, updates in reporter.bars}
    for name in ("decoding train", "evaluating devel", "evaluating test"):
        assert name in bars, sorted(bars)
    total, updates = bars["evaluating test"]
    assert total == 20 and updates and updates[-1] == total  # 20 test chunks (one per file), all counted


def copy_run(finished, tmp_path):
    point, out, result = finished
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    return point, copy, result


def test_run_writes_the_whole_run_directory(finished):
    point, out, result = finished
    for name in ("recipe.yaml", "data.json", "history.csv", "training.png", "metrics.json", "predictions.csv",
                 "confusion.png", "model.keras", "model.tflite", "model.json", "export.json", "report.md"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"devel", "test"}
    for part in metrics.values():
        assert part["level"] == "file"
        assert 0.0 <= part["uar_ci95"][0] <= part["uar"] <= part["uar_ci95"][1] <= 1.0
        assert part["labels"] == ["T1", "T2", "T3", "T4", "T5_neutral"]
        assert np.sum(part["confusion"]) == part["n"]
    assert metrics["test"]["n"] == 5 * 4 - 0  # 4 test files per class
    history = list(csv.DictReader(open(out / "history.csv")))
    assert [int(h["phase"]) for h in history] == [1, 1, 2]
    assert float(history[2]["lr"]) == pytest.approx(0.001)  # phase 2: lr / 10
    resolved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert resolved["model"]["head"]["units"] == 16
    meta = json.loads((out / "model.json").read_text())
    assert meta["classes"] == metrics["test"]["labels"] and meta["sample_rate"] == 16000
    assert meta["input"]["shape"] == [1, 8000] and meta["recipe_hash"] == point.hash
    parity = result["export"]["parity_fp32"]
    assert parity["max_abs_diff"] < 1e-4 and parity["top1_agreement"] == 1.0
    # the recipe's export section (here dynamic; qat and int8 go the same way): more models, with parity
    dynamic = result["export"]["parity"]["original"]["models"]["dynamic"]
    assert (out / "model-dynamic.tflite").is_file() and json.loads((out / "model-dynamic.json").read_text())["quantize"] == "dynamic"
    assert dynamic["top1_agreement"] >= 0.8 and dynamic["bytes"] < 0.5 * result["export"]["bytes"]
    report = (out / "report.md").read_text()
    for section in ("## Recipe", "## Data", "## Training", "## Results", "## Export", "### Trained model", "model-dynamic.tflite", "| class | precision | recall | F1 | support |", "Confusion matrix", "## Misclassified test files"):
        assert section in report, section
    assert "![examples](examples.png)" in report and (out / "examples.png").is_file()
    assert f"UAR | {metrics['test']['uar']:.3f}" in report
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # examples, training curves, confusion matrix
    assert 'src="training.png"' not in page and "<table>" in page
    assert '<audio controls preload="none" src="' in page  # misclassified clips play in place


def test_finished_run_resumes_without_retraining(finished, tmp_path):
    point, out, first = copy_run(finished, tmp_path)
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["done"] and len(state["history"]) == 3
    second = run_point(point, run_dir=out)
    assert second["metrics"]["test"]["uar"] == first["metrics"]["test"]["uar"]
    assert json.loads((out / "checkpoints" / "state.json").read_text())["history"] == state["history"]


def test_interrupted_run_resumes_from_the_last_epoch(finished, tmp_path):
    point, out, _ = copy_run(finished, tmp_path)
    state_path = out / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    # pretend the run stopped after epoch 2 of phase 1 ... continue with phase 2 only
    state.update(done=False, phase=2, epoch_in_phase=0, history=state["history"][:2])
    state_path.write_text(json.dumps(state))
    record = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**record, "finished": False}))  # never finished
    run_point(point, run_dir=out)
    resumed = json.loads(state_path.read_text())
    assert [h["phase"] for h in resumed["history"]] == [1, 1, 2]
    assert resumed["history"][:2] == state["history"]


def test_checkpoints_of_another_recipe_are_refused(finished, tiny, tmp_path):
    _, out, _ = copy_run(finished, tmp_path)
    [other] = load_recipe(tiny, overrides=["train.lr=0.02"])
    from dsplug.errors import RunError

    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(RunError, match="different recipe"):
        run_point(other, run_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # the record is untouched


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_cached_features_train_the_head_like_the_full_model(tiny, storage, tmp_path, monkeypatch):
    """Phase 1 without augmentation: training on cached backbone features equals the full path
    (in memory, and from shards on disk with shard-aligned feature files, removed after phase 1)."""
    from dsplug.pipeline import build_pipeline
    from dsplug.workflows.run import _splits
    from dsplug.workflows.run import trainer_for
    from dsplug import data as data_stage
    from dsplug.train import finetune as train_stage

    cached_sources = []

    def spy(source, **kwargs):
        cached_sources.append(data_stage.cached_features(source, **{**kwargs, "memory_limit": 0}))  # streamed, however small
        return cached_sources[-1]

    monkeypatch.setattr(train_stage, "cached_features", spy)
    overrides = ["augment.policy=none", "train.phase2.epochs=0", "train.optimizer=sgd", f"data.cache_dir={tmp_path / 'cache'}", "data.shard_dtype=float32"]
    weights = {}
    for cache in (True, False):
        [point] = load_recipe(tiny, overrides=overrides + [f"train.cache_features={str(cache).lower()}"])
        recipe = point.recipe
        manifest = data_stage.load_manifest(recipe.data.manifest)
        if storage == "memory":
            chunks = {"train": data_stage.decode_chunks(manifest.partition("train"), sample_rate=16000, chunk_seconds=0.5, hop_seconds=0.25, pad_mode="zero")}
        else:
            chunks = {"train": data_stage.decode_for(manifest.partition("train"), config=recipe.data, storage="disk")}
        split = _splits(manifest, chunks)["train"]
        pipeline = build_pipeline(PipelineSpec.of(recipe), num_outputs=5)
        run_dir = tmp_path / f"run-{cache}"
        trainer_for(recipe, pipeline=pipeline, run_dir=run_dir).fit(split, None, recipe_hash=point.hash)
        assert not (run_dir / "checkpoints" / "features").exists()  # phase 1's feature files go when it ends
        weights[cache] = [w.copy() for w in pipeline.head.get_weights()]
    assert [type(c).__name__ for c in cached_sources] == ["ChunkSet" if storage == "memory" else "ShardSet"]
    for cached, full in zip(weights[True], weights[False]):
        np.testing.assert_allclose(cached, full, rtol=1e-4, atol=1e-5)


def test_steps_per_epoch_caps_every_epoch_and_a_capped_phase_1_does_not_cache(tiny, tmp_path, caplog):
    import contextlib
    import logging

    from dsplug import data as data_stage
    from dsplug.pipeline import build_pipeline
    from dsplug.workflows.run import _splits, trainer_for

    [point] = load_recipe(tiny, overrides=["train.steps_per_epoch=2", "train.batch_size=2", "augment.policy=none", "train.phase2.epochs=1"])
    recipe = point.recipe
    manifest = data_stage.load_manifest(recipe.data.manifest)
    train = _splits(manifest, {"train": data_stage.decode_for(manifest.partition("train"), config=recipe.data)})["train"]
    bars = []

    @contextlib.contextmanager
    def progress(*, total, description):
        done = [0]
        yield done.append
        bars.append((description, total, done[-1]))

    caplog.set_level(logging.INFO, logger="dsplug.train")
    trainer = trainer_for(recipe, pipeline=build_pipeline(PipelineSpec.of(recipe), num_outputs=5), run_dir=tmp_path, progress=progress)
    result = trainer.fit(train, None, recipe_hash=point.hash)
    assert len(train) > 2 * 2 * recipe.train.batch_size and trainer.steps(len(train)) == 2
    assert bars == [("phase 1 epoch 1/2", 2, 2), ("phase 1 epoch 2/2", 2, 2), ("phase 2 epoch 1/1", 2, 2)]  # no feature pass
    assert "features are computed in every step, not cached" in caplog.text and len(result.history) == 3


def test_augmentation_is_off_at_evaluation(tiny):
    """The evaluated/exported model is deterministic: no augmentation or dropout at inference."""
    from dsplug.pipeline import build_pipeline

    [point] = load_recipe(tiny, overrides=["model.head.dropout=0.5"])
    pipeline = build_pipeline(PipelineSpec.of(point.recipe), num_outputs=5)
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 8000)).astype(np.float32)
    first = pipeline.end_to_end(audio, training=False).numpy()
    second = pipeline.end_to_end(audio, training=False).numpy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, rtol=1e-5)


def test_plot_command_writes_the_model_image(tmp_path):
    from typer.testing import CliRunner

    from dsplug.cli import app

    audio = sorted((TONES / "audio").glob("spk5_*_T2.ogg"))[0]
    out = tmp_path / "img.png"
    result = CliRunner().invoke(app, ["plot", str(audio), "-o", str(out)])
    assert result.exit_code == 0, result.output
    import matplotlib.image

    assert matplotlib.image.imread(out).shape[2] in (3, 4)
    bad = CliRunner().invoke(app, ["plot", str(audio), "-o", str(out), "--chunk", "9"])
    assert bad.exit_code == 2 and "out of range" in bad.output


def test_sweep_writes_one_flat_run_directory_per_point(tiny, tmp_path):
    from typer.testing import CliRunner

    from dsplug.cli import app

    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, [
        "run", str(tiny), "--out", str(out), "--set", "sweep.model.head.units=[8, 16]",
        "--set", "train.phase1.epochs=0", "--set", "train.phase2.epochs=0", "--set", "evaluate.bootstrap=0",
    ])
    assert result.exit_code == 0, result.output
    points = sorted(p for p in out.iterdir() if p.is_dir())
    assert [p.name for p in points] == ["units-16", "units-8"]
    for point in points:
        resolved = yaml.safe_load((point / "recipe.yaml").read_text())
        assert resolved["model"]["head"]["units"] == int(point.name.split("-")[1])
        assert (point / "model.tflite").is_file()
        assert not any(p.is_dir() and p.name.startswith("units") for p in point.iterdir())


def test_training_is_reproducible_with_a_seed(tiny, tmp_path):
    from dsplug.pipeline import build_pipeline
    from dsplug.workflows.run import trainer_for
    from dsplug import data as data_stage
    from dsplug.workflows.run import _splits

    histories = []
    for run in range(2):
        [point] = load_recipe(tiny, overrides=["train.phase2.epochs=0", "train.phase1.epochs=1"])
        recipe = point.recipe
        manifest = data_stage.load_manifest(recipe.data.manifest)
        chunks = {"train": data_stage.decode_chunks(manifest.partition("train"), sample_rate=16000, chunk_seconds=0.5, hop_seconds=0.25, pad_mode="zero")}
        split = _splits(manifest, chunks)["train"]
        pipeline = build_pipeline(PipelineSpec.of(recipe), num_outputs=5)
        result = trainer_for(recipe, pipeline=pipeline, run_dir=tmp_path / f"r{run}").fit(split, None, recipe_hash=point.hash)
        histories.append((result.history[0]["loss"], [w.copy() for w in pipeline.head.get_weights()]))
    assert histories[0][0] == pytest.approx(histories[1][0], rel=1e-5)
    for a, b in zip(histories[0][1], histories[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_final_fit_trains_on_train_and_devel_and_tests_once(tiny, tmp_path):
    [point] = load_recipe(tiny, overrides=["train.final_fit=true", "train.phase1.epochs=1", "train.phase2.epochs=0", "evaluate.bootstrap=0"])
    out = tmp_path / "final"
    result = run_point(point, run_dir=out)
    assert set(result["metrics"]) == {"test"}
    history = list(csv.DictReader(open(out / "history.csv")))
    assert len(history) == 1 and "devel_score" not in history[0]


def test_early_stopping_ends_a_phase(tiny, tmp_path):
    from dsplug.workflows.run import trainer_for
    from dsplug.pipeline import build_pipeline
    from dsplug import data as data_stage
    from dsplug.workflows.run import _splits

    [point] = load_recipe(tiny, overrides=["train.early_stopping=1", "train.phase1.epochs=6", "train.phase2.epochs=0", "train.lr=0.00001", "augment.policy=none"])
    recipe = point.recipe
    manifest = data_stage.load_manifest(recipe.data.manifest)
    chunks = {p: data_stage.decode_chunks(manifest.partition(p), sample_rate=16000, chunk_seconds=0.5, hop_seconds=0.25, pad_mode="zero") for p in ("train", "devel")}
    splits = _splits(manifest, chunks)
    pipeline = build_pipeline(PipelineSpec.of(recipe), num_outputs=5)
    result = trainer_for(recipe, pipeline=pipeline, run_dir=tmp_path / "es").fit(splits["train"], splits["devel"], recipe_hash=point.hash)
    scores = [h["devel_score"] for h in result.history]
    assert len(result.history) < 6  # stopped early: a tiny lr cannot keep improving devel UAR
    assert all(s <= max(scores[:-1]) for s in scores[-1:])


def _task_recipe(tmp_path, rows, task, head):
    path = tmp_path / f"{task}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "partition"])
        writer.writerows(rows)
    text = RECIPE.format(manifest=path).replace("head: {name: mlp, units: 16, dropout: 0.0}", f"head: {{name: {head}}}")
    text = text.replace("phase1: {epochs: 2}, phase2: {epochs: 1, finetune_layers: 10}", "phase1: {epochs: 1}, phase2: {epochs: 0}")
    return write_recipe(tmp_path / f"{task}.yaml", text + "\n")


def test_multilabel_run_reports_map(tmp_path):
    from conftest import DRUMS

    family = {"kick": "drum;low", "tom": "drum;low", "snare": "drum;high", "clap": "hand;high", "hihat": "metal;high",
              "cymbal": "metal;high", "rim": "drum;high", "shaker": "hand;high"}
    with open(DRUMS / "labels.csv") as f:
        drums = list(csv.DictReader(f))
    rows = [[str(DRUMS / r["path"]), family[r["label"]], ("train", "devel", "test")[i % 3]] for i, r in enumerate(drums)]
    recipe = _task_recipe(tmp_path, rows, "multilabel", "mlp")
    [point] = load_recipe(recipe, overrides=["data.task=multilabel"])
    result = run_point(point, run_dir=tmp_path / "ml")
    test = result["metrics"]["test"]
    assert 0.0 < test["map"] <= 1.0
    assert set(test["ap_per_class"]) == {"drum", "hand", "high", "low", "metal"}
    meta = json.loads((tmp_path / "ml" / "model.json").read_text())
    assert meta["task"] == "multilabel" and meta["classes"] == ["drum", "hand", "high", "low", "metal"]


def test_regression_run_reports_ccc(tmp_path):
    with open(TONES / "labels.csv") as f:
        tones = list(csv.DictReader(f))[:60]
    rows = [[str(TONES / r["path"]), r["seconds"], ("train", "train", "devel", "test")[i % 4]] for i, r in enumerate(tones)]
    recipe = _task_recipe(tmp_path, rows, "regression", "regression")
    [point] = load_recipe(recipe, overrides=["data.task=regression"])
    result = run_point(point, run_dir=tmp_path / "rg")
    test = result["metrics"]["test"]
    assert {"mae", "rmse", "ccc", "pearson"} <= set(test) and test["n"] == 15
    assert np.isfinite(test["mae"])


def test_head_that_cannot_do_the_task_is_named(tiny):
    from dsplug.errors import RecipeError
    from dsplug.pipeline import build_pipeline

    [point] = load_recipe(tiny, overrides=["model.head.name=regression"])
    with pytest.raises(RecipeError, match="head 'regression' supports regression, but data.task is 'classification'"):
        build_pipeline(PipelineSpec.of(point.recipe), num_outputs=5)


def test_compare_writes_one_row_per_backbone(tiny, tmp_path):
    from typer.testing import CliRunner

    from dsplug.cli import app

    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, [
        "compare", str(tiny), "--backbones", "squeezenet_v1,mobilenet_v2:none", "--out", str(out),
        "--set", "train.phase1.epochs=1", "--set", "train.phase2.epochs=0", "--set", "evaluate.bootstrap=20",
        "--set", "export.quantize=[]",
    ])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert [r["backbone"] for r in rows] == ["squeezenet_v1", "mobilenet_v2"]
    assert [r["weights"] for r in rows] == ["none", "none"]
    assert (out / "squeezenet_v1" / "model-int8.tflite").is_file() and (out / "mobilenet_v2-none" / "model-int8.tflite").is_file()
    for row in rows:
        assert float(row["tflite_small_mb"]) < float(row["tflite_fp32_mb"])  # int8 is smaller
        assert float(row["latency_ms"]) > 0 and int(row["parameters"]) > 0
        assert 0 <= float(row["test_uar"]) <= 1
    assert "| squeezenet_v1 |" in (out / "compare.md").read_text()


def test_linear_probe_run_on_mid_level_features(tiny, tmp_path):
    """train.method probe: C chosen by grouped CV, the head's Dense set, the whole run exported."""
    [point] = load_recipe(tiny, overrides=[
        "model.taps=auto", "model.head={name: linear}", "train.method=probe", "train.final_fit=true",
        "train.probe.c_grid=[0.01, 1.0]", "train.phase2.epochs=0",
    ])
    result = run_point(point, run_dir=tmp_path / "probe")
    probe = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert float(probe["c"]) in (0.01, 1.0) and set(probe["scores"]) == {"0.01", "1.0"}
    assert "cross-validation" in probe["selection"] and probe["final_fit"] is True
    assert set(result["metrics"]) == {"test"}  # devel was trained on
    assert result["export"]["parity_fp32"]["top1_agreement"] == 1.0
    report = (tmp_path / "probe" / "report.md").read_text()
    assert "linear probe on frozen features (taps: auto): C = " in report
    assert (tmp_path / "probe" / "training.png").is_file()


def test_stage_ends_and_taps_of_a_residual_backbone():
    import tf_keras

    from dsplug import registry
    from dsplug.errors import RecipeError
    from dsplug.pipeline import stage_ends, tap_layers, tapped
    from dsplug.weights import build_backbone

    plugin = registry.load("backbones", "mobilenet_v2")()
    backbone = build_backbone(plugin, input_shape=(64, 64, 3), weights=None)
    ends = stage_ends(backbone)
    assert ends[-1] == backbone.layers[-1].name
    adds = [backbone.get_layer(name) for name in ends[:-1]]
    assert all(isinstance(layer, tf_keras.layers.Add) for layer in adds)
    widths = [layer.output_shape[-1] for layer in adds]
    assert widths == sorted(widths) and len(set(widths)) == len(widths)  # one end per width, shallow to deep
    taps = tap_layers(backbone, taps="auto")
    assert taps == ends[-4:-1]
    model = tapped(backbone, layers=taps)
    assert model.output_shape[-1] == 2 * sum(backbone.get_layer(t).output_shape[-1] for t in taps)
    with pytest.raises(RecipeError, match="no layer 'nope'.*stage ends are"):
        tap_layers(backbone, taps=["nope"])


def test_the_python_api_runs_a_recipe_as_the_command_line_does(tiny, tmp_path):
    import dsplug
    from dsplug.errors import RecipeError

    short = ["train.phase1.epochs=1", "train.phase2.epochs=0"]
    result = dsplug.run(tiny, overrides=short, run_dir=tmp_path / "api")
    assert len(result.metrics["test"]["uar_ci95"]) == 2  # what docs/api.md prints
    assert result.run_dir == tmp_path / "api" and not result.reused
    assert result.metrics == json.loads((result.run_dir / "metrics.json").read_text())
    assert result.export == json.loads((result.run_dir / "export.json").read_text())
    assert result.test_uar == result.metrics["test"]["uar"] and 0.0 <= result.test_uar <= 1.0
    assert result.data == json.loads((result.run_dir / "data.json").read_text()) and result.data["partitions"]["test"]["files"] > 0
    again = dsplug.run(tiny, overrides=short, run_dir=tmp_path / "api")  # a finished run is a record
    assert again.reused and again.metrics == result.metrics
    with pytest.raises(RecipeError, match=r"sweeps 2 points .*dsplug sweep"):
        dsplug.run(tiny, overrides=[*short, "sweep.seed=[1,2]"], run_dir=tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()
