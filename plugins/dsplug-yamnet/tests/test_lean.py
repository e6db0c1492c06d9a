"""The ``lean`` backbone, the LEAN recipe and its multi-label drum manifest."""

from __future__ import annotations

import csv
import importlib.metadata
from collections import Counter
from pathlib import Path

import dsplug.plugin  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

# isort: split
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import yaml
from ai_edge_litert.interpreter import Interpreter
from pydantic import ValidationError

from dsplug.plugin import PluginError
from dsplug.testing import build_backbone, check_backbone, recipe_pipeline, resolve_weights, tflite
from dsplug_yamnet import Lean, Yamnet
from dsplug_yamnet import savedmodel as yamnet_weights
from real_audio import load_audio

ROOT = Path(__file__).resolve().parents[3]
DRUMS = ROOT / "data" / "drums"
RECIPE = ROOT / "recipes" / "lean.yaml"
RATE = 16000
TAGS = {"drum", "hand", "metal", "low", "high"}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory):
    """YAMNet's AudioSet weights converted into an empty Keras cache (source must be installed)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))
        patch.delenv("DSPLUG_WEIGHTS_DIR", raising=False)
        resolved = resolve_weights(Yamnet(), "audioset", input_shape=(RATE,))
        if resolved is None or not yamnet_weights.is_savedmodel(resolved.path):
            pytest.fail(f"YAMNet's SavedModel is not installed: {yamnet_weights.INSTALL_COMMAND}")
        yield yamnet_weights.cached_conversion(resolved.path)


def _chunks(n: int, *, samples: int = RATE) -> np.ndarray:
    """``n`` real drum chunks (zero-padded one-shots) of ``samples`` samples."""
    files = sorted((DRUMS / "audio").glob("*.ogg"))[:: max(1, 60 // n)][:n]
    out = []
    for path in files:
        y = load_audio(path, sample_rate=RATE)[:samples]
        out.append(np.pad(y, (0, samples - len(y))))
    return np.stack(out).astype(np.float32)


def _yamnet_weights(model: tf_keras.Model) -> list[tf.Variable]:
    return list(model.get_layer("yamnet").weights)


# --------------------------------------------------------------------------- contract


def test_registered_with_the_paper_options() -> None:
    [entry_point] = [ep for ep in importlib.metadata.entry_points(group="dsplug.backbones") if ep.name == "lean"]
    cls = entry_point.load()
    assert cls is Lean and cls.input_kind == "audio" and cls.sample_rate == RATE
    assert Lean.Options() == Lean.Options(lstm_units=128, projection=256, heads=4, yamnet_trainable=False)


@pytest.mark.parametrize(
    ("seconds", "options", "shape"),
    [(1.0, Lean.Options(), (40, 1, 512)), (0.75, Lean.Options(), (30, 1, 512)), (1.0, Lean.Options(lstm_units=16, projection=32, heads=2), (40, 1, 64))],
)
def test_features_are_4d_per_25ms_step(seconds: float, options: Lean.Options, shape: tuple[int, ...]) -> None:
    samples = int(seconds * RATE)
    model = Lean(options=options).build(input_shape=(samples,))
    assert model.output_shape == (None, *shape)
    features = model(_chunks(2, samples=samples), training=False).numpy()
    assert features.shape == (2, *shape) and np.isfinite(features).all()


def test_chunks_must_be_whole_25ms_patches() -> None:
    with pytest.raises(PluginError, match="whole number of 400 samples"):
        Lean().build(input_shape=(16100,))


def test_projection_must_split_into_heads() -> None:
    with pytest.raises(ValidationError, match=r"projection \(30\) must be a multiple of heads \(4\)"):
        Lean.Options(projection=30, heads=4)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        Lean.Options(heads=0)


def test_contract() -> None:
    """dsplug's plugin harness (small options): TFLite builtins, .keras round trip, missing weights."""
    result = check_backbone(Lean, options=Lean.Options(lstm_units=8, projection=16, heads=2))
    assert result["features_shape"] == (40, 1, 32)


def test_yamnet_branch_equals_the_yamnet_backbone(converted: Path) -> None:
    lean = build_backbone(Lean(), weights="audioset", input_shape=(RATE,))
    yamnet = build_backbone(Yamnet(), weights="audioset", input_shape=(RATE,))
    audio = _chunks(3)
    np.testing.assert_allclose(
        lean.get_layer("yamnet")(audio).numpy(), yamnet(audio, training=False).numpy()[:, :, 0], atol=1e-5
    )


def _train_step(backbone: tf_keras.Model, audio: np.ndarray, labels: np.ndarray) -> None:
    inputs = tf_keras.Input(audio.shape[1:])
    pooled = tf_keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(labels.shape[1], activation="sigmoid")(pooled))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf_keras.losses.binary_crossentropy(labels, model(audio, training=True)))
    grads = tape.gradient(loss, model.trainable_weights)
    tf_keras.optimizers.Adam(1e-3).apply_gradients(zip(grads, model.trainable_weights))


def test_yamnet_stays_frozen_when_the_trainer_unfreezes_everything(converted: Path) -> None:
    model = build_backbone(Lean(), weights="audioset", input_shape=(RATE,))
    model.trainable = False  # phase 1
    model.trainable = True  # phase 2 with finetune_layers: all (unfreezes every layer)
    for layer in model.layers:
        layer.trainable = True
    frozen = {id(v) for v in _yamnet_weights(model)}
    assert frozen and not frozen & {id(v) for v in model.trainable_weights}
    before = {v.name: v.numpy().copy() for v in model.weights}
    _train_step(model, _chunks(4), np.eye(4, 2, dtype=np.float32))
    changed = {v.name for v in model.weights if not np.array_equal(before[v.name], v.numpy())}
    assert not changed & {v.name for v in _yamnet_weights(model)}  # BN statistics included
    for layer in ("wave_bilstm1", "wave_bilstm2", "yamnet_projection", "cross_attention"):
        kernels = [v.name for v in model.get_layer(layer).weights if "kernel" in v.name]
        assert kernels and set(kernels) <= changed, layer


def test_yamnet_trains_with_yamnet_trainable(converted: Path) -> None:
    model = build_backbone(Lean(options=Lean.Options(yamnet_trainable=True)), weights="audioset", input_shape=(RATE,))
    before = {v.name: v.numpy().copy() for v in _yamnet_weights(model)}
    _train_step(model, _chunks(4), np.eye(4, 2, dtype=np.float32))
    kernels = [v for v in _yamnet_weights(model) if "kernel" in v.name]
    assert len(kernels) == 27 and all(not np.array_equal(before[v.name], v.numpy()) for v in kernels)


def test_saved_and_loaded_as_a_keras_file(tmp_path: Path) -> None:
    model = Lean(options=Lean.Options(lstm_units=16, projection=32, heads=2)).build(input_shape=(RATE,))
    model.save(tmp_path / "lean.keras")
    loaded = tf_keras.models.load_model(tmp_path / "lean.keras")
    audio = _chunks(2)
    np.testing.assert_allclose(loaded(audio).numpy(), model(audio).numpy(), atol=1e-6)
    assert not loaded.get_layer("yamnet").trainable


# --------------------------------------------------------------------------- manifest


def test_multilabel_manifest_has_every_drum_once_and_every_tag_in_every_partition() -> None:
    with open(DRUMS / "labels.csv") as f:
        labels = {row["path"]: row["label"] for row in csv.DictReader(f)}
    with open(DRUMS / "multilabel.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["path"] for r in rows) == sorted(labels)
    tags_of_instrument: dict[str, set[str]] = {}
    for row in rows:
        tags = row["label"].split(";")
        assert len(tags) == 2 and set(tags) <= TAGS
        tags_of_instrument.setdefault(labels[row["path"]], set()).add(row["label"])
    assert all(len(t) == 1 for t in tags_of_instrument.values())  # one tag set per instrument
    for partition in ("train", "devel", "test"):
        present = Counter(t for r in rows if r["partition"] == partition for t in r["label"].split(";"))
        assert set(present) == TAGS, partition
    assert Counter(r["partition"] for r in rows)["train"] > len(rows) / 2


# --------------------------------------------------------------------------- TFLite


@pytest.mark.heavy
def test_recipe_pipeline_exports_to_builtin_tflite_with_parity(converted: Path) -> None:
    recipe = yaml.safe_load(RECIPE.read_text())
    assert recipe["model"]["backbone"]["name"] == "lean" and recipe["data"]["task"] == "multilabel"
    pipeline = recipe_pipeline(RECIPE, num_outputs=len(TAGS))
    content = tflite(pipeline.end_to_end, samples=RATE)  # builtin ops only, else ExportError
    audio = _chunks(6)
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    lite = []
    for chunk in audio:  # one interpreter, chunk after chunk: no state may carry over
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], chunk[None])
        interpreter.invoke()
        lite.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0].copy())
    keras = pipeline.end_to_end(audio, training=False).numpy()
    np.testing.assert_allclose(np.stack(lite), keras, atol=1e-4)
    assert {"WHILE", "BATCH_MATMUL", "SOFTMAX", "RFFT2D", "CONV_2D"} <= ops
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in ops and not any(op.startswith("Flex") for op in ops)
