"""The plugin guide's example backbone passes dsplug's contract checks and trains in a recipe."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from dsplug.plugin import RecipeError, WeightsError
from dsplug.testing import build_backbone, check_backbone, run_recipe
from dsplug_example_backbone import TinyConv

ROOT = Path(__file__).resolve().parents[3]


def test_contract():
    result = check_backbone(TinyConv, options={"width": 8})
    assert result["features_shape"] == (2, 2, 64)  # 32 px / 16, 8 x width


def test_registered_under_its_entry_point():
    [entry_point] = [ep for ep in importlib.metadata.entry_points(group="dsplug.backbones") if ep.name == "tinyconv"]
    assert entry_point.dist is not None and entry_point.dist.name == "dsplug-example-backbone"
    assert entry_point.load() is TinyConv


def test_no_pretrained_weights_is_an_error():
    with pytest.raises(WeightsError, match=r"has no 'imagenet' weights \(named sources: none\)"):
        build_backbone(TinyConv(), weights="imagenet", input_shape=(32, 32, 3))


def test_too_small_images_are_refused_with_the_fix():
    with pytest.raises(RecipeError, match=r"at least 32x32 pixels; got 16x64: choose a larger frontend.image_size"):
        TinyConv().build(input_shape=(16, 64, 3))


def test_trains_in_a_recipe(tmp_path):
    result = run_recipe(ROOT / "recipes" / "demo.yaml", run_dir=tmp_path / "run", overrides=[
        "model.backbone.name=tinyconv", "model.backbone.weights=none", "model.backbone.width=8",
        "frontend.image_size=[32, 32]", "export.quantize=[]",
        "train.phase1.epochs=1", "train.phase2.epochs=1", "evaluate.bootstrap=0",
    ])
    assert result["metrics"]["test"]["n"] == 249
    assert (tmp_path / "run" / "model.tflite").is_file()
