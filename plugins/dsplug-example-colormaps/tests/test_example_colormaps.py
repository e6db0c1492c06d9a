"""The example plugin, installed as a real distribution, works through dsplug's public paths."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dsplug import registry
from dsplug_example_colormaps import Ice, Sunset


@pytest.mark.parametrize("cls", [Sunset, Ice])
def test_tables_are_256_rgb_levels_in_range(cls):
    table = cls().table()
    assert table.shape == (256, 3) and table.dtype == np.float32
    assert table.min() >= 0.0 and table.max() <= 1.0
    np.testing.assert_allclose(table[0], cls.anchors[0], atol=1e-6)
    np.testing.assert_allclose(table[-1], cls.anchors[-1], atol=1e-6)


def test_listed_with_its_distribution_and_loadable_by_name():
    infos = {i.name: i for i in registry.list_plugins("colormaps")}
    for name in ("sunset", "ice"):
        assert infos[name].distribution == "dsplug-example-colormaps"
        assert infos[name].status == "ok"
    assert registry.load("colormaps", "sunset") is Sunset


def test_used_by_the_front_end_through_a_recipe(tmp_path):
    from dsplug.model import build_frontend
    from dsplug.workflows.run import default_recipe

    recipe = default_recipe().model_copy(update={"frontend": default_recipe().frontend.model_copy(update={"colormap": "sunset"})})
    layer = build_frontend(recipe, size=(32, 32))
    tone = np.sin(2 * np.pi * 440 * np.arange(48000) / 16000).astype(np.float32)[None]
    image = layer(tf.constant(tone)).numpy()[0]
    table = Sunset().table() * 255
    # every pixel is (close to) a colour of the sunset table: the plugin's map was used
    distance = np.min(np.abs(image.reshape(-1, 1, 3) - table[None]).sum(-1), axis=1)
    assert np.percentile(distance, 90) < 8.0
