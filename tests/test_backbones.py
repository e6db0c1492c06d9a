"""The built-in backbones: partial unfreezing, preprocessing, Keras weight files, weights loading.

The contract every backbone meets (tiny inputs, ``weights=None``, TFLite builtins, save/load,
one training step, freezing) is checked for every installed backbone by
``tests/test_plugin_contract.py`` with :func:`dsplug.testing.check_backbone`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
import time
from pathlib import Path

import dsplug  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

# isort: split
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from ai_edge_litert.interpreter import Interpreter

from dsplug import registry, weights
from dsplug.backbones import keras_apps
from dsplug.backbones.base import preprocess_images, unfreeze_top
from dsplug.errors import RecipeError, TrainError, WeightsError
from dsplug.weights import build_backbone, declared_source
from dsplug.weights.keras import pick_file


def _layers(model: tf_keras.Model) -> list[tf_keras.layers.Layer]:
    return [layer for layer in model.layers if not isinstance(layer, tf_keras.layers.InputLayer)]


def _is_bn(layer: tf_keras.layers.Layer) -> bool:
    return isinstance(layer, tf_keras.layers.BatchNormalization)


def _random_images(size: int, *, seed: int = 0) -> tf.Tensor:
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(0.0, 255.0, size=(2, size, size, 3)).astype(np.float32))


# --------------------------------------------------------------------------- unfreeze_top


@pytest.fixture(scope="module")
def small_model() -> tf_keras.Model:
    """MobileNetV2 at 32x32: 153 layers, BatchNormalization throughout."""
    return keras_apps.MobileNetV2().build(input_shape=(32, 32, 3))


@pytest.mark.parametrize("value", [-1, 1.5, 0.0, -0.2, True, "5", None])
def test_unfreeze_top_rejects_bad_values(small_model: tf_keras.Model, value: object) -> None:
    with pytest.raises(TrainError, match="layers"):
        unfreeze_top(small_model, layers=value)  # type: ignore[arg-type]


def test_unfreeze_top_count_beyond_model_unfreezes_all(
    small_model: tf_keras.Model, caplog: pytest.LogCaptureFixture
) -> None:
    layers = _layers(small_model)
    with caplog.at_level(logging.WARNING, logger="dsplug.backbones.base"):
        made = unfreeze_top(small_model, layers=10_000)
    assert made == sum(not _is_bn(layer) for layer in layers) > 0
    assert "10000" in caplog.text and str(len(layers)) in caplog.text


def test_unfreeze_top_counts_paper_style(small_model: tf_keras.Model) -> None:
    """Table 2 counts: a count is layers from the top, BatchNormalization frozen among them."""
    layers = _layers(small_model)
    made = unfreeze_top(small_model, layers=42)
    assert made == sum(not _is_bn(layer) for layer in layers[-42:])
    assert not any(layer.trainable for layer in layers[:-42])
    assert any(_is_bn(layer) for layer in layers[-42:])


def test_unfreeze_top_keeps_bn_frozen_inside_nested_model(small_model: tf_keras.Model) -> None:
    inputs = tf_keras.Input((32, 32, 3))
    outer = tf_keras.Model(inputs, tf_keras.layers.ReLU()(small_model(inputs)))
    made = unfreeze_top(outer, layers=2)  # the nested backbone and the ReLU
    assert made == 2
    inner_bn = [layer for layer in _layers(small_model) if _is_bn(layer)]
    assert inner_bn and not any(layer.trainable for layer in inner_bn)
    trainable = {id(w) for w in outer.trainable_weights}
    assert trainable and not trainable & {id(w) for layer in inner_bn for w in layer.weights}


# --------------------------------------------------------------------------- preprocessing


def _keras_preprocess_input(name: str) -> object:
    module = sys.modules[keras_apps.SPECS[name].constructor.__module__]
    return module.preprocess_input


@pytest.mark.parametrize("name", sorted(keras_apps.SPECS))
def test_preprocess_matches_keras(name: str) -> None:
    """Plain-TF preprocessing equals each family's own keras preprocess_input."""
    images = _random_images(8, seed=3).numpy()
    cls = registry.load("backbones", name)
    ours = cls().preprocess(tf.constant(images)).numpy()
    reference = np.asarray(_keras_preprocess_input(name)(images.copy()))
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-4)


def test_squeezenet_preprocess_is_caffe() -> None:
    images = _random_images(8, seed=4).numpy()
    ours = registry.load("backbones", "squeezenet_v1")().preprocess(tf.constant(images))
    reference = tf_keras.applications.imagenet_utils.preprocess_input(images.copy(), mode="caffe")
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_converts_to_builtin_tflite(mode: str, tmp_path: Path) -> None:
    @tf.function(input_signature=[tf.TensorSpec((1, 16, 16, 3), tf.float32)])
    def normalise(images: tf.Tensor) -> tf.Tensor:
        return preprocess_images(images, mode=mode)  # type: ignore[arg-type]

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [normalise.get_concrete_function()], normalise
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flat = converter.convert()
    interpreter = Interpreter(model_content=flat)
    interpreter.allocate_tensors()
    images = _random_images(16, seed=5).numpy()[:1]
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, normalise(tf.constant(images)).numpy(), rtol=1e-6, atol=1e-4)


# --------------------------------------------------------------------------- specs


@pytest.mark.parametrize("name", sorted(keras_apps.SPECS))
def test_spec_weight_files_match_keras_source(name: str) -> None:
    spec = keras_apps.SPECS[name]
    source = inspect.getsource(importlib.import_module(spec.constructor.__module__))
    source = re.sub(r'"\s+"', "", source)  # join implicitly concatenated string literals
    cls = registry.load("backbones", name)
    assert cls.input_size == (spec.input_size, spec.input_size)
    assert list(cls.weight_sources) == ["imagenet"]
    assert spec.weights
    for wf in spec.weights:
        assert wf.url.startswith("https://storage.googleapis.com/tensorflow/keras-applications/")
        assert "no_top" in wf.file_name or "notop" in wf.file_name
        if wf.rows is None:  # the name is one literal, or two joined (resnet: model_name + "...")
            name_in_source = f'"{wf.file_name}"' in source or any(
                f'"{wf.file_name[:i]}"' in source and f'"{wf.file_name[i:]}"' in source
                for i in range(1, len(wf.file_name))
            )
            assert name_in_source, wf.file_name
            url_name = wf.url.rsplit("/", 1)[1]
            assert url_name == wf.file_name or url_name in source
            assert wf.url.rsplit("/", 2)[1] + "/" in source  # the URL's folder
        if wf.md5 is not None:
            assert f'"{wf.md5}"' in source
    chosen = declared_source(cls(), "imagenet", input_shape=(spec.input_size, spec.input_size, 3))
    assert chosen is not None and chosen.rows in (None, spec.input_size)


def test_mobilenet_picks_the_weights_file_for_its_input_size() -> None:
    spec = keras_apps.SPECS["mobilenet_v2"]

    def file_for(shape: tuple[int, int, int]) -> str:
        return pick_file(spec.weights, input_shape=shape, default_rows=spec.input_size).file_name

    assert file_for((96, 96, 3)).endswith("1.0_96_no_top.h5")
    assert file_for((100, 100, 3)).endswith("1.0_224_no_top.h5")
    assert file_for((96, 128, 3)).endswith("1.0_224_no_top.h5")


def test_squeezenet_architecture_at_224() -> None:
    model = registry.load("backbones", "squeezenet_v1")().build(input_shape=(224, 224, 3))
    assert model.output_shape == (None, 13, 13, 512)
    # SqueezeNet 1.1 has 1,235,496 weights with its 1000-class conv10 (512*1000 + 1000).
    assert model.count_params() == 1_235_496 - 513_000


def test_too_small_input_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match=r"at least 75x75.*got 64x64"):
        keras_apps.InceptionV3().build(input_shape=(64, 64, 3))
    with pytest.raises(RecipeError, match=r"\(height, width, 3\)"):
        keras_apps.VGG16().build(input_shape=(32, 32, 1))


# --------------------------------------------------------------------------- weights


@pytest.fixture
def no_weights_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment with empty Keras caches and no weights folders configured."""
    home = tmp_path / "home"
    keras_home = tmp_path / "keras_home"
    home.mkdir()
    keras_home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.delenv(weights.ENV_WEIGHTS_DIR, raising=False)
    monkeypatch.delenv(weights.ENV_OFFLINE, raising=False)
    return keras_home


def test_missing_weights_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vgg16.h5"
    with pytest.raises(WeightsError, match="does not exist") as info:
        build_backbone(keras_apps.VGG16(), weights=str(missing), input_shape=(32, 32, 3))
    assert str(missing) in str(info.value)


def test_folder_as_weights_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="folder"):
        build_backbone(keras_apps.VGG16(), weights=str(tmp_path), input_shape=(32, 32, 3))


def test_weights_dir_that_is_not_a_folder_is_named(tmp_path: Path) -> None:
    wrong = tmp_path / "typo"
    with pytest.raises(WeightsError, match="does not exist or is not a folder") as info:
        build_backbone(
            keras_apps.VGG16(), weights="imagenet", input_shape=(32, 32, 3), weights_dir=str(wrong)
        )
    assert str(wrong) in str(info.value) and weights.RECIPE_KEY in str(info.value)


def test_squeezenet_has_no_imagenet_weights() -> None:
    cls = registry.load("backbones", "squeezenet_v1")
    assert dict(cls.weight_sources) == {}
    with pytest.raises(WeightsError, match="no 'imagenet' weights") as info:
        build_backbone(cls(), weights="imagenet", input_shape=(32, 32, 3))
    assert "path of a weights file" in str(info.value)
    assert "squeezenet_v1" in str(info.value)


def test_imagenet_offline_fails_fast_naming_file_url_and_folders(
    no_weights_anywhere: Path,
) -> None:
    """A real download attempt (nothing mocked). Without internet it must fail fast with a
    WeightsError that says what to download and where to put it; with internet the file lands
    in $KERAS_HOME/models."""
    backbone = keras_apps.MobileNetV2()
    wf = declared_source(backbone, "imagenet", input_shape=(96, 96, 3))
    start = time.perf_counter()
    try:
        model = build_backbone(backbone, weights="imagenet", input_shape=(96, 96, 3))
    except WeightsError as err:
        elapsed = time.perf_counter() - start
        message = str(err)
        assert wf.file_name in message
        assert wf.url in message
        assert str(no_weights_anywhere / "models") in message
        assert weights.RECIPE_KEY in message and weights.ENV_WEIGHTS_DIR in message
        assert "download" in message
        assert isinstance(err.__cause__, Exception)
        assert elapsed < weights.DOWNLOAD_TIMEOUT_S + 10
        assert not (no_weights_anywhere / "models" / wf.file_name).exists(), "no partial file"
    else:  # online machine: Keras downloaded the real file into $KERAS_HOME/models
        assert (no_weights_anywhere / "models" / wf.file_name).is_file()
        assert model.output_shape[-1] == 1280


def test_offline_flag_forbids_download(
    no_weights_anywhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(weights.ENV_OFFLINE, "1")
    wf = keras_apps.SPECS["densenet121"].weights[0]
    start = time.perf_counter()
    with pytest.raises(WeightsError, match=weights.ENV_OFFLINE) as info:
        build_backbone(keras_apps.DenseNet121(), weights="imagenet", input_shape=(224, 224, 3))
    assert time.perf_counter() - start < 1.0, "must fail before building the model"
    assert wf.file_name in str(info.value) and wf.url in str(info.value)


@pytest.mark.parametrize("where", ["weights_dir", "env", "keras_home", "home_cache"])
def test_imagenet_file_found_offline(
    where: str, no_weights_anywhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact notop file is picked up from each search folder and really loaded."""
    backbone = keras_apps.MobileNetV2()
    shape = (96, 96, 3)
    wf = declared_source(backbone, "imagenet", input_shape=shape)
    folder = {
        "weights_dir": tmp_path / "mine",
        "env": tmp_path / "env",
        "keras_home": no_weights_anywhere / "models",
        "home_cache": tmp_path / "home" / ".keras" / "models",
    }[where]
    folder.mkdir(parents=True, exist_ok=True)
    if where == "env":
        monkeypatch.setenv(weights.ENV_WEIGHTS_DIR, str(folder))
    source = backbone.build(input_shape=shape)
    source.save_weights(str(folder / wf.file_name))

    loaded = build_backbone(
        backbone,
        weights="imagenet",
        input_shape=shape,
        weights_dir=str(folder) if where == "weights_dir" else None,
    )
    for expected, got in zip(source.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(expected, got)


def test_nasnet_file_found_under_its_url_name(no_weights_anywhere: Path, tmp_path: Path) -> None:
    """NASNet's URL name (NASNet-mobile-no-top.h5) differs from Keras' cache name."""
    wf = keras_apps.SPECS["nasnet_mobile"].weights[0]
    assert wf.file_names == ("nasnet_mobile_no_top.h5", "NASNet-mobile-no-top.h5")
    corrupt = tmp_path / "NASNet-mobile-no-top.h5"
    corrupt.write_bytes(b"not the published file")
    with pytest.raises(WeightsError, match="MD5") as info:
        build_backbone(
            keras_apps.NASNetMobile(), weights="imagenet", input_shape=(224, 224, 3), weights_dir=str(tmp_path)
        )
    assert str(corrupt) in str(info.value)


def test_imagenet_file_with_wrong_md5_is_rejected(no_weights_anywhere: Path) -> None:
    wf = keras_apps.SPECS["densenet121"].weights[0]
    folder = no_weights_anywhere / "models"
    folder.mkdir()
    (folder / wf.file_name).write_bytes(b"\x89HDF truncated")
    with pytest.raises(WeightsError, match="MD5") as info:
        build_backbone(keras_apps.DenseNet121(), weights="imagenet", input_shape=(32, 32, 3))
    assert wf.file_name in str(info.value) and wf.url in str(info.value)


def test_unreadable_imagenet_file_is_a_weights_error(tmp_path: Path) -> None:
    wf = declared_source(keras_apps.MobileNet(), "imagenet", input_shape=(128, 128, 3))
    assert wf.md5 is None  # Keras publishes no digest for MobileNet: the load itself must fail
    (tmp_path / wf.file_name).write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="cannot load weights file") as info:
        build_backbone(
            keras_apps.MobileNet(), weights="imagenet", input_shape=(128, 128, 3), weights_dir=str(tmp_path)
        )
    assert wf.file_name in str(info.value)


@pytest.mark.parametrize("name", ["squeezenet_v1", "mobilenet"])
def test_weights_file_path_really_loads(name: str, tmp_path: Path) -> None:
    cls = registry.load("backbones", name)
    shape = (cls.min_input_size, cls.min_input_size, 3)
    source = cls().build(input_shape=shape)
    rng = np.random.default_rng(6)  # non-default values for every weight, BN statistics too
    source.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in source.get_weights()])
    path = tmp_path / f"{name}.h5"
    source.save_weights(str(path))

    fresh = cls().build(input_shape=shape)
    loaded = build_backbone(cls(), weights=str(path), input_shape=shape)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(source.get_weights(), fresh.get_weights(), strict=True)
    )
    for expected, got in zip(source.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(expected, got)


def test_weights_of_another_architecture_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "squeezenet.h5"
    registry.load("backbones", "squeezenet_v1")().build(input_shape=(32, 32, 3)).save_weights(str(path))
    with pytest.raises(WeightsError, match="cannot load weights file") as info:
        build_backbone(keras_apps.VGG16(), weights=str(path), input_shape=(32, 32, 3))
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, Exception)


def test_search_dirs_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(weights.ENV_WEIGHTS_DIR, str(tmp_path / "env"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    dirs = [folder for folder, _ in weights.search_dirs(weights_dir=tmp_path / "mine")]
    assert dirs == [
        tmp_path / "mine",
        tmp_path / "env",
        tmp_path / "kh" / "models",
        tmp_path / "home" / ".keras" / "models",
    ]


def test_unfreeze_top_can_train_batchnorm_for_random_init(small_model: tf_keras.Model) -> None:
    """Without pretrained statistics BatchNormalization must learn: freeze_batchnorm=False."""
    layers = _layers(small_model)
    made = unfreeze_top(small_model, layers=42, freeze_batchnorm=False)
    assert made == 42
    assert all(layer.trainable for layer in layers[-42:])
    assert any(_is_bn(layer) and layer.trainable for layer in layers[-42:])
    assert not any(layer.trainable for layer in layers[:-42])
