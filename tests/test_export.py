"""Export stage on a real (tiny) trained run: quantisation modes, pruning, parity, export_run."""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil

import numpy as np
import pytest
import tf_keras

from conftest import write_recipe
from dsplug import deploy
from dsplug.artifacts import RunDir
from dsplug.deploy import convert as convert_module
from dsplug.deploy import export
from dsplug.deploy import qat as qat_module
from dsplug.deploy.convert import convert
from dsplug.data import decode_for, manifest_for
from dsplug.deploy.export import export_config, export_run
from dsplug.deploy.prune import prune
from dsplug.errors import ExportError, RunError
from dsplug.pipeline import load_trained
from dsplug.recipe.loader import load_recipe
from dsplug.recipe.schema import ExportConfig
from dsplug.workflows.run import run_point
from test_run import small_manifest

MODES = ("none", "dynamic", "float16", "int8", "qat")

RECIPE = """
name: tiny-export
seed: 1
data: {{manifest: {manifest}, chunk_seconds: 0.5, hop_seconds: 0.25}}
frontend: {{image_size: [32, 32], n_mels: 32}}
model:
  backbone: {{name: squeezenet_v1, weights: none}}
  head: {{name: mlp, units: 64, dropout: 0.0}}
train: {{batch_size: 8, optimizer: adam, lr: 0.03, final_fit: true, phase1: {{epochs: 25}}, phase2: {{epochs: 0}}}}
augment: {{policy: none}}
evaluate: {{bootstrap: 0}}
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A trained tiny run directory (written by `dsplug run`'s code path).

    A SqueezeNet from random weights learns too slowly for a test, so only the head is trained,
    on cached features of the random backbone (phase 1), and ``final_fit`` keeps the last
    epoch: the probabilities are far from uniform (median top probability ~0.5), so top-1
    agreement between Keras and TFLite means something.
    """
    folder = tmp_path_factory.mktemp("export-run")
    recipe = write_recipe(folder / "tiny.yaml", RECIPE.format(manifest=small_manifest(folder, per_class=6)))
    [point] = load_recipe(recipe)
    run_point(point, run_dir=folder / "run")
    return folder / "run"


@pytest.fixture(scope="module")
def exported(finished_run, tmp_path_factory):
    """export_run with every quantisation mode, on a copy of the run."""
    run_dir = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(finished_run, run_dir)
    run = RunDir(run_dir)
    config = export_config(run, quantize=["dynamic", "float16", "int8", "qat"], representative_size=40, qat_epochs=1)
    return run_dir, export_run(run, config=config)


@pytest.fixture(scope="module")
def pruned_export(finished_run, tmp_path_factory):
    """export_run with 50 % pruning, float32 and QAT (prune-preserving for the pruned model), on a copy."""
    run_dir = tmp_path_factory.mktemp("pruned") / "run"
    shutil.copytree(finished_run, run_dir)
    run = RunDir(run_dir)
    return run_dir, export_run(run, config=export_config(run, quantize=["none", "qat"], prune=0.5, prune_epochs=2, qat_epochs=1))


@pytest.mark.heavy
def test_every_mode_is_builtin_only_and_quantises_what_it_says(exported):
    run_dir, _ = exported
    info = {mode: deploy.inspect_tflite(run_dir / RunDir.model_file(mode)) for mode in MODES}
    for mode, details in info.items():
        assert details["custom_ops"] == [], mode  # no Flex / custom ops
        assert details["ops"]["RFFT2D"] == 1, mode  # the front-end is inside every model
    assert info["none"]["weight_dtypes"]["CONV_2D"] == {"float32": 25}  # SqueezeNet 1.1: 25 convolutions
    assert "float16" in info["float16"]["tensor_dtypes"] and "float16" not in info["none"]["tensor_dtypes"]
    for mode in ("dynamic", "int8", "qat"):
        assert info[mode]["weight_dtypes"]["CONV_2D"] == {"int8": 25}, mode
        # the front-end's Mel projection keeps float32 weights; the head's big dense layer is int8
        assert info[mode]["weight_dtypes"]["FULLY_CONNECTED"]["float32"] >= 1, mode
        assert info[mode]["weight_dtypes"]["FULLY_CONNECTED"].get("int8", 0) >= 1, mode
    # int8 and qat: the classifier computes in int8, the front-end (RFFT2D, LOG, ...) in float32
    for mode in ("int8", "qat"):
        assert info[mode]["int8_ops"]["CONV_2D"] == 25, mode
        assert info[mode]["float_ops"]["LOG"] == 1 and info[mode]["float_ops"]["RESIZE_BILINEAR"] == 1, mode
        assert info[mode]["ops"]["QUANTIZE"] >= 1 and info[mode]["ops"]["DEQUANTIZE"] >= 1, mode
    sizes = {mode: (run_dir / RunDir.model_file(mode)).stat().st_size for mode in MODES}
    assert sizes["float16"] < 0.6 * sizes["none"]
    assert sizes["int8"] < 0.4 * sizes["none"] and sizes["dynamic"] < 0.4 * sizes["none"]
    assert sizes["qat"] < 0.4 * sizes["none"]


@pytest.mark.heavy
def test_parity_of_every_mode_against_keras(exported):
    _, result = exported
    parity = result["parity"]
    assert parity["partition"] == "devel"
    original = parity["original"]
    assert set(original["models"]) == set(MODES)
    assert original["chunks"] >= original["files"] >= 15  # 3-4 devel files per class, one or more chunks each
    rows = original["models"]
    assert rows["none"]["max_abs_diff"] < 1e-4 and rows["none"]["top1_agreement"] == 1.0
    assert rows["none"]["uar"] == pytest.approx(original["keras"]["uar"])
    assert rows["float16"]["max_abs_diff"] < 0.02 and rows["float16"]["top1_agreement"] >= 0.95
    assert rows["dynamic"]["max_abs_diff"] < 0.1 and rows["dynamic"]["top1_agreement"] >= 0.9
    assert rows["int8"]["max_abs_diff"] < 0.25 and rows["int8"]["top1_agreement"] >= 0.8
    # QAT: ranges calibrated on training audio, then fine-tuned; compared with the model it started from
    assert rows["qat"]["max_abs_diff"] < 0.25 and rows["qat"]["top1_agreement"] >= 0.8
    for row in rows.values():
        assert 0.0 <= row["uar"] <= 1.0 and row["gzip_bytes"] < row["bytes"]
        # the UAR change against Keras, with its paired bootstrap interval around it
        assert row["uar_change"] == pytest.approx(row["uar"] - original["keras"]["uar"])
        low, high = row["uar_change_ci95"]
        assert low <= row["uar_change"] <= high
    assert rows["none"]["uar_change_ci95"] == [0.0, 0.0]  # identical predictions: no change in any resample
    table = deploy.format_parity(original)
    assert table.count("\n| ") == 2 + len(MODES)  # header, Keras, one row per mode (the separator is "|---")
    assert "model-int8.tflite" in table


@pytest.mark.heavy
def test_export_run_writes_every_file_with_its_mode(exported, finished_run):
    run_dir, result = exported
    for mode in MODES:
        name = RunDir.model_file(mode)
        assert (run_dir / name).is_file(), name
        meta = json.loads((run_dir / name).with_suffix(".json").read_text())
        assert meta["quantize"] == mode and meta["pruning"] is None
        assert (meta["qat"] is not None) == (mode == "qat")
        assert meta["classes"] == ["T1", "T2", "T3", "T4", "T5_neutral"]
        assert meta["input"]["shape"] == [1, 8000]
        assert result["models"][name]["quantize"] == mode
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".export-") or p.suffix == ".part"]
    assert json.loads((run_dir / "export.json").read_text()) == result
    assert result["parity_fp32"]["top1_agreement"] == 1.0  # the keys `dsplug run` writes are kept
    assert result["pruning"] is None and "pruned" not in result["parity"]
    qat = result["qat"]["original"]
    assert qat["float_layers"] == ["head_arelu"]  # the only layer tfmot cannot quantise: float32 inside
    assert len(qat["devel_scores"]) == 2 and qat["epoch"] in (0, 1)  # after calibration, after epoch 1
    assert qat["epoch"] == int(np.argmax(qat["devel_scores"]))
    markdown = (run_dir / "export.md").read_text()
    assert "model-int8.tflite" in markdown and "model-dynamic.tflite" in markdown and "QAT (original)" in markdown
    # int8 and qat sidecars list the classifier layers that compute in float32, read from the model
    for mode in ("int8", "qat"):
        name = RunDir.model_file(mode)
        floats = json.loads((run_dir / name).with_suffix(".json").read_text())["float_layers"]
        assert floats == deploy.classifier_float_layers(run_dir / name) == result["models"][name]["float_layers"]
    assert result["models"]["model-qat.tflite"]["float_layers"] == ["head_arelu"]  # what tfmot cannot quantise (flattened)
    # int8: no op of this SqueezeNet is off by more than 0.7 quantisation steps (AReLU's dense
    # input keeps its positive range, see dsplug.heads.arelu): every layer int8
    assert result["models"]["model-int8.tflite"]["float_layers"] == []
    assert result["int8_float_threshold"] == deploy.INT8_FLOAT_THRESHOLD
    assert f"error exceeded {deploy.INT8_FLOAT_THRESHOLD:g} steps stay float32" in markdown
    assert result["metadata"]["recipe_hash"] == json.loads((finished_run / "model.json").read_text())["recipe_hash"]
    # the rebuilt pipeline holds the trained weights: same float32 model as `dsplug run` wrote
    assert (run_dir / "model.tflite").read_bytes() == (finished_run / "model.tflite").read_bytes()


@pytest.mark.heavy
def test_pruning_reaches_the_sparsity_and_shrinks_the_gzip_size(pruned_export, finished_run):
    run_dir, result = pruned_export
    pruning = result["pruning"]
    assert 0.45 <= pruning["sparsity"] <= 0.55
    assert pruning["pruned_layers"] == 25 + 2  # SqueezeNet convolutions + the head's two dense layers
    pruned_keras = tf_keras.models.load_model(run_dir / "model-pruned.keras")
    sparsity, layers, _ = deploy.kernel_sparsity(pruned_keras)
    assert sparsity == pytest.approx(pruning["sparsity"]) and layers == pruning["pruned_layers"]
    meta = json.loads((run_dir / "model-pruned.json").read_text())
    assert meta["quantize"] == "none" and meta["pruning"]["sparsity"] == pruning["sparsity"]
    plain = (run_dir / "model.tflite").read_bytes()
    pruned = (run_dir / "model-pruned.tflite").read_bytes()
    assert len(gzip.compress(pruned)) < 0.85 * len(gzip.compress(plain))
    # pruning fine-tuned a copy: the float32 model is still the trained one
    assert plain == (finished_run / "model.tflite").read_bytes()
    # the epoch kept is the best on devel among those at the final sparsity
    scores = pruning["devel_scores"]
    assert len(scores) == 2 and scores[-1] is not None
    assert scores[pruning["epoch"] - 1] == max(v for v in scores if v is not None)
    parity = result["parity"]["pruned"]["models"]["none"]
    assert parity["file"] == "model-pruned.tflite" and parity["max_abs_diff"] < 1e-4
    assert "model-pruned.tflite" in (run_dir / "export.md").read_text()
    # QAT of the pruned model keeps its zeros: the int8 model compresses like the pruned float one
    assert result["qat"]["pruned"]["prune_preserving"] and not result["qat"]["original"]["prune_preserving"]
    qat = len(gzip.compress((run_dir / "model-qat.tflite").read_bytes()))
    pruned_qat = len(gzip.compress((run_dir / "model-pruned-qat.tflite").read_bytes()))
    assert pruned_qat < 0.85 * qat
    assert result["parity"]["pruned"]["models"]["qat"]["top1_agreement"] >= 0.8


@pytest.mark.heavy
def test_convert_refuses_what_it_cannot_do(finished_run):
    run = load_trained(finished_run, command="export")
    model = run.pipeline.end_to_end
    with pytest.raises(ExportError, match="representative"):
        convert(model, samples=run.samples, quantize="int8")
    with pytest.raises(ExportError, match=r"shape \(n, 8000\)"):
        convert(model, samples=run.samples, quantize="int8", representative=np.zeros((3, 100), np.float32))
    with pytest.raises(ExportError, match="quantize must be one of"):
        convert(model, samples=run.samples, quantize="int4")  # type: ignore[arg-type]
    audio = tf_keras.Input((run.samples,))
    flat = tf_keras.Model(audio, tf_keras.layers.Dense(3, activation="softmax")(audio), name="plain")
    with pytest.raises(ExportError, match="classifier"):
        convert(flat, samples=run.samples, quantize="dynamic")
    with pytest.raises(ExportError, match="no fake-quantisation.*quantization_aware_finetune"):
        convert(model, samples=run.samples, quantize="qat")


@pytest.mark.heavy
def test_int8_keeps_the_layers_above_the_error_threshold_float(finished_run):
    """Selective int8: a threshold below rounding noise (0.29 steps) keeps every classifier op
    float; None quantises all of them; the front-end is float32 either way."""
    run = load_trained(finished_run, command="export")
    chunks = decode_for(manifest_for(run.recipe.data, seed=run.recipe.seed).partition("train")[:12], config=run.recipe.data, on_bad_file="skip")
    options = dict(samples=run.samples, quantize="int8", representative=chunks.audio)
    full = convert(run.pipeline.end_to_end, float_threshold=None, **options)
    assert deploy.classifier_float_layers(full) == []
    assert deploy.inspect_tflite(full)["int8_ops"]["CONV_2D"] == 25
    cautious = convert(run.pipeline.end_to_end, float_threshold=0.1, **options)
    floats = deploy.classifier_float_layers(cautious)
    assert "squeezenet_v1_1/conv1" in floats and "head/head_logits" in floats
    details = deploy.inspect_tflite(cautious)
    assert details["float_ops"]["CONV_2D"] == 25 and "CONV_2D" not in details["int8_ops"]
    assert details["float_ops"]["LOG"] == 1


@pytest.mark.heavy
def test_flatten_inlines_nested_models_and_computes_the_same(finished_run):
    classifier = load_trained(finished_run, command="export").pipeline.classifier
    assert any(isinstance(layer, tf_keras.Model) for layer in classifier.layers)  # backbone, head
    flat = deploy.flatten(classifier)
    assert not any(isinstance(layer, tf_keras.Model) for layer in flat.layers)
    assert flat.count_params() == classifier.count_params() and flat.name == "classifier"
    images = np.random.default_rng(0).uniform(-1, 1, (3, *classifier.input_shape[1:])).astype(np.float32)
    np.testing.assert_allclose(flat(images).numpy(), classifier(images).numpy(), atol=1e-6)


@pytest.mark.heavy
def test_failed_export_leaves_the_run_directory_as_it_was(finished_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}

    # conversion "succeeds" with bytes that are no model: embedding the metadata refuses them
    monkeypatch.setattr(convert_module, "convert", lambda model, **options: b"not a flatbuffer")
    with pytest.raises(ExportError, match=r"model\.tflite \(quantize=none\) is not a TFLite model"):
        export_run(RunDir(run_dir), config=export_config(RunDir(run_dir), quantize=["none", "int8"]))
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(RunError, match="not a finished dsplug run directory.*dsplug run"):
        export_run(run, config=export_config(run, quantize=["int8"]))
    (tmp_path / "recipe.yaml").write_text("name: x\n")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(RunError, match="missing model.keras"):
        export_run(run, config=ExportConfig())


def test_bad_options_are_refused_before_any_work(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(ExportError, match="unknown quantize mode"):
        export_config(run, quantize=["int4"])
    with pytest.raises(ExportError, match="--prune must be a sparsity"):
        export_config(run, prune=1.5)
    with pytest.raises(ExportError, match="qat_epochs >= 1"):
        export_config(run, quantize=["qat"], qat_epochs=0)
    with pytest.raises(ExportError, match="--int8-float-threshold must be > 0.*--full-integer"):
        export_config(run, quantize=["int8"], int8_float_threshold=0.0)
    audio, targets = np.zeros((4, 100), np.float32), np.eye(4, dtype=np.float32)
    with pytest.raises(ExportError, match="sparsity must be in"):
        prune(None, audio=audio, targets=targets, sparsity=1.0)
    with pytest.raises(ExportError, match="at least 2 fine-tuning steps"):
        prune(None, audio=audio, targets=targets, sparsity=0.5, epochs=1, batch_size=8)
    with pytest.raises(ExportError, match="same n"):
        prune(None, audio=audio, targets=targets[:3], sparsity=0.5)
    with pytest.raises(ExportError, match="at least 1 epoch"):
        deploy.quantization_aware_finetune(None, audio=audio, targets=targets, epochs=0)
    with pytest.raises(ExportError, match="same n"):
        deploy.quantization_aware_finetune(None, audio=audio, targets=targets[:3])


def test_model_file_names():
    assert RunDir.model_file("none", pruned=False) == "model.tflite"
    assert RunDir.model_file("int8", pruned=False) == "model-int8.tflite"
    assert RunDir.model_file("none", pruned=True) == "model-pruned.tflite"
    assert RunDir.model_file("float16", pruned=True) == "model-pruned-float16.tflite"


def test_quantised_scope_is_the_classifier_only():
    assert deploy.in_quantized_scope("dsplug/classifier/squeezenet_v1_1/conv1/BiasAdd")
    assert deploy.in_quantized_scope("dsplug/frontend/x;dsplug/classifier/head/head_dense/MatMul")
    assert not deploy.in_quantized_scope("dsplug/frontend/spectrogram_image/MatMul")
    assert not deploy.in_quantized_scope("dsplug/frontend/backbone_preprocess/sub")


@pytest.mark.heavy
def test_cli_export_takes_its_defaults_from_the_recipe(finished_run, tmp_path):
    """`dsplug export RUN` as a user runs it: options not given come from the run's `export:` section."""
    import yaml
    from typer.testing import CliRunner

    from dsplug.cli import app

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    resolved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    resolved["export"] = {**resolved.get("export", {}), "quantize": ["float16"]}
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(resolved))
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "model-float16.tflite" in result.output and (run_dir / "model-float16.tflite").is_file()
    assert set(json.loads((run_dir / "export.json").read_text())["models"]) == {"model.tflite", "model-float16.tflite"}
    bad = runner.invoke(app, ["export", str(tmp_path), "--quantize", "int4"])
    assert bad.exit_code == 2 and "unknown quantize mode" in bad.output and "Traceback" not in bad.output


def test_cli_int8_threshold_options_reach_the_export(tmp_path, monkeypatch):
    """--int8-float-threshold and --full-integer override the recipe's export.int8_float_threshold."""
    from typer.testing import CliRunner

    from dsplug.cli import app

    calls = []
    monkeypatch.setattr(export, "export_run", lambda run, *, config, progress=None: calls.append(config) or {})
    runner = CliRunner()
    for extra, expected in (([], deploy.INT8_FLOAT_THRESHOLD), (["--int8-float-threshold", "1.5"], 1.5), (["--full-integer"], None)):
        result = runner.invoke(app, ["export", str(tmp_path), "--quantize", "int8", *extra])
        assert result.exit_code == 0, result.output
        assert calls[-1].int8_float_threshold == expected and calls[-1].quantize == ["int8"]


def test_qat_quantises_batchnorm_together_with_the_layer_before_it():
    """tfmot folds a BatchNormalization into the Conv/Dense before it only when it has no custom
    config: those are found; one after another layer computes in float32 instead."""
    layers = tf_keras.layers
    images = tf_keras.Input((8, 8, 3))
    x = layers.BatchNormalization(name="bn_conv")(layers.Conv2D(4, 3, use_bias=False, name="conv")(images))
    x = layers.BatchNormalization(name="bn_dw")(layers.DepthwiseConv2D(3, use_bias=False, name="dw")(layers.ReLU(6.0)(x)))
    y = layers.BatchNormalization(name="bn_pool")(layers.GlobalAveragePooling2D(name="pool")(x))
    y = layers.BatchNormalization(name="bn_dense")(layers.Dense(2, name="dense")(y))
    model = tf_keras.Model(images, y)
    assert qat_module._batchnorm_after_linear(model) == {"bn_conv", "bn_dw", "bn_dense"}


def test_no_fine_tuning_bar_when_nothing_is_fine_tuned():
    """int8 alone showed an empty 'fine-tuning: 0' bar during `dsplug run`."""
    from types import SimpleNamespace

    from dsplug.deploy.export import _fine_tune

    bars = []

    def progress(*, total, description):
        bars.append(description)
        return contextlib.nullcontext(lambda done: None)

    config = SimpleNamespace(prune=None)
    sources, pruned = _fine_tune(SimpleNamespace(end_to_end="model"), config=config, modes=["int8"], fit={}, progress=progress)
    assert bars == [] and pruned is None and [s.model for s in sources] == ["model"]
