"""The plugin contract, checked over every installed plugin with :mod:`dsplug.testing`.

Parametrised over the registry (as timm's ``test_models`` is over ``list_models()``), so an
installed third-party plugin is tested exactly like the built-ins: tiny inputs, random weights,
TFLite builtin ops only, ``.keras`` save/load with non-default options, missing weights.
"""

from __future__ import annotations

from pathlib import Path

import dsplug  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

# isort: split
import numpy as np
import pytest
import tf_keras

from dsplug import registry
from dsplug.backbones import keras_apps
from dsplug.pipeline import BackbonePreprocess
from dsplug.testing import check_augmentation, check_backbone, check_colormap, check_head

BUILTIN = sorted([*keras_apps.SPECS, "squeezenet_v1"])
#: The slowest to convert and save on 2 CPU cores (tens of seconds each); still run in CI.
HEAVY = {"densenet121", "densenet169", "densenet201", "efficientnet_lite2", "inception_resnet_v2", "inception_v3",
         "nasnet_large", "nasnet_mobile", "resnet50", "vgg19", "xception"}
#: Options that keep a plugin's check small (its defaults build a much larger model).
OPTIONS = {"lean": {"lstm_units": 8, "projection": 16, "heads": 2}}


def _params(group: str) -> list[object]:
    return [pytest.param(n, marks=pytest.mark.heavy) if n in HEAVY else n for n in registry.names(group)]


def test_all_builtins_registered() -> None:
    assert set(BUILTIN) <= set(registry.names("backbones"))


@pytest.mark.parametrize("name", _params("backbones"))
def test_backbone_contract(name: str) -> None:
    cls = registry.load("backbones", name)
    result = check_backbone(cls, options=OPTIONS.get(name))
    if cls.input_kind == "image":
        assert len(result["features_shape"]) == 3 and min(result["features_shape"]) >= 1


@pytest.mark.parametrize("name", registry.names("heads"))
def test_head_contract(name: str) -> None:
    check_head(registry.load("heads", name))


@pytest.mark.parametrize("name", registry.names("colormaps"))
def test_colormap_contract(name: str) -> None:
    check_colormap(registry.load("colormaps", name))


@pytest.mark.parametrize("name", registry.names("augmentations"))
def test_augmentation_contract(name: str) -> None:
    check_augmentation(registry.load("augmentations", name))


# --------------------------------------------------------------------------- plugin options kept

GAINED = '''
import tf_keras
from pydantic import Field
from dsplug.plugin import Backbone, Options

class Gained(Backbone):
    """Images times its gain option, then one convolution."""

    class Options(Options):
        gain: float = Field(1.0, gt=0)

    min_input_size = 8

    def preprocess(self, images):
        return images * self.options.gain

    def build(self, *, input_shape):
        inputs = tf_keras.Input(self.image_shape(input_shape, name="gained"))
        return tf_keras.Model(inputs, tf_keras.layers.Conv2D(2, 3)(inputs))
'''


def test_loaded_model_keeps_the_backbone_options(fake_distribution, tmp_path: Path) -> None:
    """A plugin whose preprocessing depends on its options normalises the same after loading
    (BackbonePreprocess used to re-create the plugin with default options)."""
    fake_distribution("acme-gained", {"dsplug.backbones": {"gained": "acme_gained:Gained"}}, {"acme_gained": GAINED})
    cls = registry.load("backbones", "gained")
    inputs = tf_keras.Input((8, 8, 3))
    layer = BackbonePreprocess(backbone="gained", options={"gain": 3.0}, name="backbone_preprocess")
    model = tf_keras.Model(inputs, layer(inputs))
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(model(images).numpy(), 3.0 * images, rtol=1e-6)
    model.save(tmp_path / "model.keras")
    loaded = tf_keras.models.load_model(tmp_path / "model.keras")
    assert loaded.get_layer("backbone_preprocess").get_config()["options"] == {"gain": 3.0}
    np.testing.assert_allclose(loaded(images).numpy(), 3.0 * images, rtol=1e-6)
    check_backbone(cls, options={"gain": 0.5})  # the harness's own round trip sees it too


# --------------------------------------------------------------------------- the harness catches

BROKEN = '''
import numpy as np
import tensorflow as tf
from dsplug.plugin import Augmentation, Colormap

class Leaky(Augmentation):
    """Adds noise whatever the strength."""

    def apply(self, images, labels, strength, *, fill_value, seed):
        return images + 0.1, labels

class Bright(Colormap):
    """Values above 1."""

    def table(self):
        return np.full((256, 3), 2.0, np.float32)
'''


def test_the_harness_reports_broken_plugins(fake_distribution) -> None:
    fake_distribution(
        "acme-broken-contract",
        {"dsplug.augmentations": {"leaky": "acme_broken_contract:Leaky"}, "dsplug.colormaps": {"bright": "acme_broken_contract:Bright"}},
        {"acme_broken_contract": BROKEN},
    )
    with pytest.raises(AssertionError, match="strength 0 changed the images"):
        check_augmentation(registry.load("augmentations", "leaky"))
    with pytest.raises(AssertionError, match=r"in \[0, 1\]"):
        check_colormap(registry.load("colormaps", "bright"))
