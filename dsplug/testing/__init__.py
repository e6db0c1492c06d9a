"""The plugin contract checks, one per group: run them in your plugin's tests.

    from dsplug.testing import check_backbone

    def test_contract():
        check_backbone(MyBackbone, options={"width": 8})

:func:`check_backbone`, :func:`check_head`, :func:`check_colormap` and
:func:`check_augmentation` each build the plugin on tiny inputs with random weights and raise
``AssertionError`` naming the broken part of the contract (as keras-hub's ``run_backbone_test``,
``run_serialization_test`` and ``run_litert_export_test`` do for its models). dsplug's own test
suite runs them over every installed plugin (``tests/test_plugin_contract.py``), so a broken
third-party plugin shows up there too.

Common to every group: ``Options`` is a :class:`dsplug.plugin.Options` subclass whose defaults are
valid and which refuses unknown keys, and options survive their plain-data round trip (what a
run's ``recipe.yaml`` and a saved model keep). Backbones and heads are also converted to TFLite
with builtin ops only (outputs equal to Keras', also one input after another on one interpreter)
and saved and loaded as ``.keras`` with non-default options (identical outputs); a backbone's
declared weight sources must fail with a :class:`~dsplug.errors.WeightsError` when their files
are nowhere, never give random weights.

Plugins import only :mod:`dsplug.plugin`, and their tests only it and this module: so this module
also offers what a plugin's tests need of dsplug's pipeline, the way a run uses the plugin:
:func:`build_backbone` and :func:`resolve_weights` (pretrained weights as dsplug finds and loads
them), :func:`installed_file` (a package source's published file), :func:`recipe_pipeline`,
:func:`tflite` and :func:`run_recipe`.
"""

from __future__ import annotations

from dsplug.testing.backbone import check_backbone
from dsplug.testing.common import varied_options
from dsplug.testing.groups import check_augmentation, check_colormap, check_head
from dsplug.testing.runs import installed_file, recipe_pipeline, run_recipe, tflite
from dsplug.weights import build_backbone, resolve_weights

__all__ = [
    "build_backbone",
    "check_augmentation",
    "check_backbone",
    "check_colormap",
    "check_head",
    "installed_file",
    "recipe_pipeline",
    "resolve_weights",
    "run_recipe",
    "tflite",
    "varied_options",
]
