"""The example plugin, installed as a real distribution, works through dsplug's public paths."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

from dsplug.testing import check_colormap
from dsplug_example_colormaps import Ice, Sunset


@pytest.mark.parametrize("cls", [Sunset, Ice])
def test_tables_are_256_rgb_levels_in_range(cls):
    table = cls().table()
    assert table.shape == (256, 3) and table.dtype == np.float32
    assert table.min() >= 0.0 and table.max() <= 1.0
    np.testing.assert_allclose(table[0], cls.anchors[0], atol=1e-6)
    np.testing.assert_allclose(table[-1], cls.anchors[-1], atol=1e-6)


def test_listed_with_its_distribution_and_loadable_by_name():
    entry_points = {ep.name: ep for ep in importlib.metadata.entry_points(group="dsplug.colormaps")}
    for name, cls in (("sunset", Sunset), ("ice", Ice)):
        assert entry_points[name].dist is not None and entry_points[name].dist.name == "dsplug-example-colormaps"
        assert entry_points[name].load() is cls


@pytest.mark.parametrize("cls", [Sunset, Ice])
def test_contract_and_used_by_the_front_end_by_name(cls):
    """dsplug's harness: a (256, 3) table in [0, 1] that colours the front-end's images by name."""
    check_colormap(cls)
