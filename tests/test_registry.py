"""The plugin registry: listing, loading, unknown, broken and duplicate plugins."""

from __future__ import annotations

import pytest

from dsplug import plugin as api
from dsplug import registry
from dsplug.errors import PluginBroken, PluginError, PluginNotFound

GOOD = '''
import numpy as np
from dsplug.plugin import Colormap

class Stripes(Colormap):
    """Alternating grey levels."""

    def table(self):
        return np.tile(np.array([[0.2, 0.2, 0.2], [0.8, 0.8, 0.8]], np.float32), (128, 1))
'''


def test_every_group_lists_builtins_with_distribution():
    infos = registry.list_plugins()
    by_group = {g: [i for i in infos if i.group == g] for g in registry.groups()}
    assert set(by_group) == {"backbones", "colormaps", "augmentations", "heads"}
    names = {g: {i.name for i in rows} for g, rows in by_group.items()}
    assert {"densenet121", "mobilenet_v2", "squeezenet_v1"} <= names["backbones"]
    assert len(names["backbones"]) >= 14
    assert {"viridis", "cividis", "inferno", "magma", "plasma", "gray"} <= names["colormaps"]
    assert {"mlp", "linear", "regression"} <= names["heads"]
    assert {"cutmix", "specaugment"} <= names["augmentations"]
    for info in infos:
        if info.target.startswith("dsplug."):
            assert info.distribution == "dsplug"
            assert info.status == "ok", info.error


def test_load_by_name_returns_the_class_with_its_name():
    cls = registry.load("colormaps", "viridis")
    assert issubclass(cls, api.Colormap)
    assert cls.name == "viridis"
    table = cls().table()
    assert table.shape == (256, 3)


def test_unknown_name_lists_installed_and_closest_match():
    with pytest.raises(PluginNotFound) as err:
        registry.load("backbones", "densenet12")
    message = str(err.value)
    assert "no backbone plugin named 'densenet12'" in message
    assert "densenet169" in message and "mobilenet_v2" in message
    assert "did you mean 'densenet121'?" in message


def test_unknown_group_is_an_error():
    with pytest.raises(PluginError, match="unknown plugin group 'backbone'.*did you mean 'backbones'"):
        registry.names("backbone")


def test_third_party_plugin_is_found_and_loaded(fake_distribution):
    fake_distribution("acme-maps", {"dsplug.colormaps": {"stripes": "acme_maps:Stripes"}}, {"acme_maps": GOOD})
    assert "stripes" in registry.names("colormaps")
    info = next(i for i in registry.list_plugins("colormaps") if i.name == "stripes")
    assert (info.distribution, info.version, info.status) == ("acme-maps", "9.9.9", "ok")
    assert info.summary == "Alternating grey levels."
    table = registry.load("colormaps", "stripes")().table()
    assert table[0, 0] == pytest.approx(0.2) and table[1, 0] == pytest.approx(0.8)


def test_plugin_whose_import_fails_is_broken_not_missing(fake_distribution):
    fake_distribution(
        "acme-broken",
        {"dsplug.heads": {"wobbly": "acme_broken:Wobbly"}},
        {"acme_broken": "import numpy_that_does_not_exist\n"},
    )
    with pytest.raises(PluginBroken) as err:
        registry.load("heads", "wobbly")
    assert "installed but broken" in str(err.value)
    assert "numpy_that_does_not_exist" in str(err.value)
    info = next(i for i in registry.list_plugins("heads") if i.name == "wobbly")
    assert info.status == "broken" and "numpy_that_does_not_exist" in info.error


def test_plugin_that_needs_an_extra_is_not_broken(fake_distribution):
    """In the light runtime install, a training plugin names the extra to install."""
    missing = "raise ModuleNotFoundError(\"No module named 'sklearn'\", name='sklearn')\n"
    fake_distribution("acme-trainer", {"dsplug.heads": {"trainer": "acme_trainer:Head"}}, {"acme_trainer": missing})
    info = next(i for i in registry.list_plugins("heads") if i.name == "trainer")
    assert (info.status, info.error, info.extra) == ("needs-extra", "needs dsplug[train]", "train")
    with pytest.raises(PluginBroken, match=r"sklearn is not installed: install dsplug\[train\]: from the source tree"):
        registry.load("heads", "trainer")


def test_plugin_of_the_wrong_base_class_is_broken(fake_distribution):
    fake_distribution(
        "acme-wrong",
        {"dsplug.backbones": {"notacnn": "acme_wrong:Thing"}},
        {"acme_wrong": "class Thing:\n    pass\n"},
    )
    with pytest.raises(PluginBroken, match="not a subclass of dsplug.plugin.Backbone"):
        registry.load("backbones", "notacnn")


def test_plugin_for_another_api_major_version_is_broken(fake_distribution):
    source = GOOD + "\nStripes.api_version = '1.0'\n"
    fake_distribution("acme-future", {"dsplug.colormaps": {"future": "acme_future:Stripes"}}, {"acme_future": source})
    with pytest.raises(PluginBroken, match="plugin API '1.0'"):
        registry.load("colormaps", "future")


def test_plugin_whose_options_are_not_api_options_is_broken(fake_distribution):
    source = GOOD + "\nimport dataclasses\n\n@dataclasses.dataclass\nclass Plain:\n    width: int = 1\n\nStripes.Options = Plain\n"
    fake_distribution("acme-plain", {"dsplug.colormaps": {"plain": "acme_plain:Stripes"}}, {"acme_plain": source})
    with pytest.raises(PluginBroken, match="Options must be a dsplug.plugin.Options subclass"):
        registry.load("colormaps", "plain")


def test_duplicate_names_are_an_error(fake_distribution):
    fake_distribution("acme-one", {"dsplug.colormaps": {"twin": "acme_one:Stripes"}}, {"acme_one": GOOD})
    fake_distribution("acme-two", {"dsplug.colormaps": {"twin": "acme_two:Stripes"}}, {"acme_two": GOOD})
    with pytest.raises(PluginError) as err:
        registry.load("colormaps", "twin")
    assert "duplicate" in str(err.value)
    assert "acme-one" in str(err.value) and "acme-two" in str(err.value)
    info = [i for i in registry.list_plugins("colormaps") if i.name == "twin"]
    assert info and all(i.status == "broken" and "duplicate" in i.error for i in info)


def test_a_name_shadowing_a_builtin_is_a_duplicate(fake_distribution):
    fake_distribution("acme-shadow", {"dsplug.colormaps": {"viridis": "acme_shadow:Stripes"}}, {"acme_shadow": GOOD})
    with pytest.raises(PluginError, match="duplicate.*viridis"):
        registry.load("colormaps", "viridis")
