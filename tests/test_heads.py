"""Tests of the AReLU layer and the built-in heads (mlp, linear, regression)."""

from __future__ import annotations

import csv
from pathlib import Path

import dsplug  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import librosa
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from pydantic import ValidationError

from dsplug import registry
from dsplug.plugin import Head
from dsplug.errors import PluginError, RecipeError
from dsplug.heads.arelu import AReLU
from dsplug.heads.builtin import LinearHead, MLPHead, RegressionHead
from dsplug.recipe.loader import validate_options

DRUMS = Path(__file__).resolve().parents[1] / "data" / "drums"
SAMPLE_RATE = 16000
N_MELS = 64


def _reference_arelu(x: np.ndarray, *, alpha: float, beta: float) -> np.ndarray:
    """AReLU in NumPy, straight from the paper's definition."""
    gain = 1.0 + 1.0 / (1.0 + np.exp(-beta))
    return np.where(x >= 0, gain * x, np.clip(alpha, 0.01, 0.99) * x)


@pytest.fixture(scope="module")
def drum_features() -> dict[str, np.ndarray]:
    """Mean log-Mel spectra of the bundled drum samples as (n, 1, 1, 64) 'feature maps'.

    Returns kick/snare/hihat samples with integer labels, and the mean spectral centroid in
    kHz of every sample (a regression target).
    """
    rows = list(csv.DictReader((DRUMS / "labels.csv").open()))
    classes = ["hihat", "kick", "snare"]
    rows = [row for row in rows if row["label"] in classes]
    features, labels, centroids = [], [], []
    for row in rows:
        audio, _ = librosa.load(DRUMS / row["path"], sr=SAMPLE_RATE, mono=True)
        mel = librosa.feature.melspectrogram(
            y=audio, sr=SAMPLE_RATE, n_fft=512, hop_length=256, n_mels=N_MELS
        )
        db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
        features.append((db.mean(axis=1) + 40.0) / 40.0)
        labels.append(classes.index(row["label"]))
        centroid = librosa.feature.spectral_centroid(
            y=audio, sr=SAMPLE_RATE, n_fft=512, hop_length=256
        )
        centroids.append(float(centroid.mean()) / 1000.0)
    return {
        "x": np.asarray(features, np.float32)[:, np.newaxis, np.newaxis, :],
        "y": np.asarray(labels, np.int64),
        "centroid_khz": np.asarray(centroids, np.float32),
    }


# --------------------------------------------------------------------------- AReLU


def test_arelu_matches_the_paper_definition() -> None:
    x = np.linspace(-5.0, 5.0, 101, dtype=np.float32).reshape(1, 101)
    layer = AReLU()
    np.testing.assert_allclose(
        layer(x).numpy(), _reference_arelu(x, alpha=0.90, beta=2.0), rtol=1e-6, atol=1e-6
    )
    assert layer.alpha.numpy() == pytest.approx(0.90)
    assert layer.beta.numpy() == pytest.approx(2.0)


@pytest.mark.parametrize("alpha, slope", [(1.5, 0.99), (-0.3, 0.01), (0.4, 0.4)])
def test_arelu_clamps_the_negative_slope(alpha: float, slope: float) -> None:
    layer = AReLU(alpha=alpha, beta=-1.0)
    x = np.array([[-2.0, -0.5, 0.0, 3.0]], np.float32)
    out = layer(x).numpy()
    np.testing.assert_allclose(out[0, :2], slope * x[0, :2], rtol=1e-6)
    np.testing.assert_allclose(out, _reference_arelu(x, alpha=alpha, beta=-1.0), rtol=1e-6)


def test_arelu_parameters_are_trained() -> None:
    layer = AReLU()
    x = tf.constant(np.random.default_rng(0).normal(size=(32, 8)), tf.float32)
    target = tf.constant(np.random.default_rng(1).normal(size=(32, 8)), tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((layer(x) - target) ** 2)
    grads = tape.gradient(loss, [layer.alpha, layer.beta])
    assert [v.name.split("/")[-1] for v in layer.trainable_variables] == ["alpha:0", "beta:0"]
    assert all(g is not None and abs(float(g)) > 1e-6 for g in grads)
    before = (float(layer.alpha.numpy()), float(layer.beta.numpy()))
    tf_keras.optimizers.SGD(learning_rate=0.1).apply_gradients(
        zip(grads, [layer.alpha, layer.beta])
    )
    after = (float(layer.alpha.numpy()), float(layer.beta.numpy()))
    assert after[0] != pytest.approx(before[0], abs=1e-6)
    assert after[1] != pytest.approx(before[1], abs=1e-6)


def test_arelu_config_round_trip() -> None:
    layer = AReLU(alpha=0.3, beta=-1.5, name="act")
    clone = AReLU.from_config(layer.get_config())
    x = np.linspace(-3, 3, 13, dtype=np.float32)[np.newaxis]
    np.testing.assert_allclose(clone(x).numpy(), layer(x).numpy())
    assert clone.name == "act"


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_arelu_model_saves_and_loads_with_trained_values(tmp_path: Path, suffix: str) -> None:
    inputs = tf_keras.Input((6,))
    model = tf_keras.Model(inputs, AReLU(name="act")(tf_keras.layers.Dense(4)(inputs)))
    model.get_layer("act").alpha.assign(0.37)
    model.get_layer("act").beta.assign(-0.8)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = tf_keras.models.load_model(path)  # AReLU is registered as "dsplug>AReLU"
    x = np.random.default_rng(2).normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)
    assert float(loaded.get_layer("act").alpha.numpy()) == pytest.approx(0.37)
    assert float(loaded.get_layer("act").beta.numpy()) == pytest.approx(-0.8)


def test_arelu_converts_to_tflite_builtins(tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    inputs = tf_keras.Input((5, 5, 3))
    features = tf_keras.layers.Conv2D(8, 3)(inputs)
    head = MLPHead(options=MLPHead.Options(units=16))
    model = tf_keras.Model(inputs, head.build(features, num_outputs=3, task="classification"))
    model.get_layer("head_arelu").alpha.assign(0.2)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    path = tmp_path / "head.tflite"
    path.write_bytes(converter.convert())

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    x = np.random.default_rng(3).normal(size=(1, 5, 5, 3)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, model(x, training=False).numpy(), rtol=1e-4, atol=1e-5)


def test_arelu_under_mixed_precision() -> None:
    tf_keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = AReLU()
        out = layer(tf.constant([[-1.0, 2.0]], tf.float16))
        assert out.dtype == tf.float16
        assert layer.alpha.dtype == tf.float32
        clone = AReLU.from_config(layer.get_config())
        assert clone.compute_dtype == "float16"
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    expected = _reference_arelu(np.array([[-1.0, 2.0]]), alpha=0.9, beta=2.0)
    np.testing.assert_allclose(out.numpy().astype(np.float32), expected, rtol=2e-3)


# --------------------------------------------------------------------------- heads


@pytest.mark.parametrize("name, cls", [("mlp", MLPHead), ("linear", LinearHead),
                                       ("regression", RegressionHead)])
def test_heads_are_registered(name: str, cls: type) -> None:
    assert name in registry.names("heads")
    loaded = registry.load("heads", name)
    assert loaded is cls
    assert issubclass(loaded, Head)


def _build(head: Head, *, num_outputs: int, task: str, shape=(7, 7, 32)) -> tf_keras.Model:
    features = tf_keras.Input(shape)
    return tf_keras.Model(features, head.build(features, num_outputs=num_outputs, task=task))


def test_mlp_head_structure_and_outputs() -> None:
    head = MLPHead(options=MLPHead.Options(units=24, dropout=0.4, pooling="avg"))
    model = _build(head, num_outputs=5, task="classification")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "GlobalAveragePooling2D", "Dense", "AReLU", "Dropout",
                     "Dense", "Activation"]
    assert model.get_layer("head_dense").units == 24
    assert model.get_layer("head_dropout").rate == pytest.approx(0.4)
    assert model.output_shape == (None, 5)
    x = np.random.default_rng(4).normal(size=(6, 7, 7, 32)).astype(np.float32)
    probs = model(x, training=False).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # Dropout is active in training mode only.
    assert not np.allclose(model(x, training=True).numpy(), probs)


def test_mlp_head_multilabel_uses_sigmoid_and_max_pooling() -> None:
    tf_keras.utils.set_random_seed(5)  # the head's initial weights; independent of the tests run before
    head = MLPHead(options=MLPHead.Options(units=8, pooling="max"))
    model = _build(head, num_outputs=4, task="multilabel")
    assert isinstance(model.get_layer("head_pool"), tf_keras.layers.GlobalMaxPooling2D)
    assert model.get_layer("head_output").get_config()["activation"] == "sigmoid"
    x = np.random.default_rng(5).normal(size=(3, 7, 7, 32)).astype(np.float32)
    probs = model(x).numpy()
    assert ((probs >= 0) & (probs <= 1)).all()  # a saturated sigmoid is 1.0 in float32
    assert not np.allclose(probs.sum(axis=1), 1.0)


def test_linear_head() -> None:
    plain = _build(LinearHead(), num_outputs=3, task="classification")
    assert [type(layer).__name__ for layer in plain.layers] == [
        "InputLayer", "GlobalAveragePooling2D", "Dense", "Activation"]
    with_dropout = _build(
        LinearHead(options=LinearHead.Options(dropout=0.3)), num_outputs=3, task="multilabel"
    )
    assert with_dropout.get_layer("head_dropout").rate == pytest.approx(0.3)
    assert with_dropout.get_layer("head_output").get_config()["activation"] == "sigmoid"


def test_regression_head_is_linear_with_optional_hidden_layer() -> None:
    deep = _build(RegressionHead(options=RegressionHead.Options(units=16)),
                  num_outputs=2, task="regression")
    assert any(isinstance(layer, AReLU) for layer in deep.layers)
    assert deep.get_layer("head_output").get_config()["activation"] == "linear"
    shallow = _build(RegressionHead(options=RegressionHead.Options(units=0)),
                     num_outputs=1, task="regression")
    assert [type(layer).__name__ for layer in shallow.layers] == [
        "InputLayer", "GlobalAveragePooling2D", "Dense", "Activation"]
    x = 10.0 * np.random.default_rng(6).normal(size=(64, 7, 7, 32)).astype(np.float32)
    out = shallow(x).numpy()
    assert out.min() < 0 < out.max()  # unbounded, not squashed


def test_heads_accept_pooled_features() -> None:
    model = _build(MLPHead(options=MLPHead.Options(units=8)), num_outputs=2,
                   task="classification", shape=(32,))
    assert not any("Pooling" in type(layer).__name__ for layer in model.layers)
    assert model.output_shape == (None, 2)
    with pytest.raises(PluginError, match=r"\(batch, h, w, channels\)"):
        _build(MLPHead(), num_outputs=2, task="classification", shape=(4, 32))


def test_output_is_float32_under_mixed_precision() -> None:
    tf_keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        for head, task in [(MLPHead(options=MLPHead.Options(units=8)), "classification"),
                           (LinearHead(), "multilabel"), (RegressionHead(), "regression")]:
            model = _build(head, num_outputs=3, task=task)
            assert model.output.dtype == tf.float32
            assert model.get_layer("head_logits").compute_dtype == "float16"
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "cls, options, key",
    [
        (MLPHead, {"units": 0}, "model.head.units"),
        (MLPHead, {"units": 2.5}, "model.head.units"),
        (MLPHead, {"dropout": 1.5}, "model.head.dropout"),
        (MLPHead, {"dropout": -0.1}, "model.head.dropout"),
        (MLPHead, {"dropout": 1.0}, "model.head.dropout"),
        (MLPHead, {"pooling": "mean"}, "model.head.pooling"),
        (LinearHead, {"dropout": 1.0}, "model.head.dropout"),
        (RegressionHead, {"units": -1}, "model.head.units"),
    ],
)
def test_invalid_options_name_the_recipe_key(cls: type, options: dict, key: str) -> None:
    with pytest.raises(RecipeError, match=key.replace(".", r"\.")) as info:
        validate_options(cls, options, key="model.head")
    assert repr(next(iter(options.values()))) in str(info.value)
    with pytest.raises(ValidationError):  # the bounds hold in Python too, not only in recipes
        cls.Options(**options)


def test_dropout_message_states_the_range() -> None:
    with pytest.raises(RecipeError) as info:
        validate_options(MLPHead, {"dropout": 1.5}, key="model.head")
    assert str(info.value) == "model.head.dropout: expected a value in [0, 1), got 1.5"


@pytest.mark.parametrize(
    "head, task",
    [(MLPHead(), "regression"), (LinearHead(), "regression"),
     (RegressionHead(), "classification"), (RegressionHead(), "multilabel")],
)
def test_unsupported_task_is_a_plugin_error(head: Head, task: str) -> None:
    with pytest.raises(PluginError, match=f"does not support task '{task}'"):
        _build(head, num_outputs=2, task=task)


def test_zero_outputs_is_a_plugin_error() -> None:
    with pytest.raises(PluginError, match="num_outputs >= 1"):
        _build(MLPHead(), num_outputs=0, task="classification")


# --------------------------------------------------------------------------- learning


def test_mlp_head_learns_drum_classes_and_trains_arelu(drum_features: dict) -> None:
    tf_keras.utils.set_random_seed(0)
    x, y = drum_features["x"], drum_features["y"]
    head = MLPHead(options=MLPHead.Options(units=32, dropout=0.25))
    model = _build(head, num_outputs=3, task="classification", shape=x.shape[1:])
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    arelu = model.get_layer("head_arelu")
    before = (float(arelu.alpha.numpy()), float(arelu.beta.numpy()))
    chance = np.bincount(y).max() / len(y)
    first = model.evaluate(x, y, verbose=0)[1]
    model.fit(x, y, epochs=80, batch_size=16, verbose=0)
    accuracy = model.evaluate(x, y, verbose=0)[1]
    assert accuracy >= 0.9 > chance
    assert accuracy > first
    after = (float(arelu.alpha.numpy()), float(arelu.beta.numpy()))
    assert after[0] != pytest.approx(before[0], abs=1e-4)
    assert after[1] != pytest.approx(before[1], abs=1e-4)


def test_regression_head_learns_spectral_centroid(drum_features: dict) -> None:
    tf_keras.utils.set_random_seed(0)
    x, target = drum_features["x"], drum_features["centroid_khz"]
    head = RegressionHead(options=RegressionHead.Options(units=32, dropout=0.0))
    model = _build(head, num_outputs=1, task="regression", shape=x.shape[1:])
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, target, epochs=150, batch_size=16, verbose=0)
    predicted = model.predict(x, verbose=0)[:, 0]
    residual = np.sum((predicted - target) ** 2)
    r2 = 1.0 - residual / np.sum((target - target.mean()) ** 2)
    assert r2 > 0.8


def test_arelu_int8_keeps_the_positive_range_of_its_input() -> None:
    """In int8, the dense pre-activation keeps its positive values in every copy the converter
    makes (a ``tf.minimum`` branch used to get the range [min, 0]: positives clipped to 0)."""
    from ai_edge_litert.interpreter import Interpreter

    tf_keras.utils.set_random_seed(4)
    inputs = tf_keras.Input((4, 4, 32))
    head = MLPHead(options=MLPHead.Options(units=16))
    model = tf_keras.Model(inputs, head.build(inputs, num_outputs=3, task="classification"))
    data = np.random.default_rng(4).normal(size=(64, 4, 4, 32)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([x[None]] for x in data)
    interpreter = Interpreter(model_content=converter.convert())
    dense = [
        t for t in interpreter.get_tensor_details()
        if "head_dense" in t["name"] and t["dtype"] == np.int8 and list(t["shape"]) == [1, 16]
    ]
    assert dense  # the dense layer's int8 output(s)
    for tensor in dense:
        scale, zero_point = tensor["quantization"]
        assert (127 - zero_point) * scale > 0.5, tensor["name"]  # room for positive pre-activations
