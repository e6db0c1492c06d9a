"""dsplug's errors are classed by what is wrong: each is a DsplugError and the built-in exception of
the same kind, so ``except ValueError`` catches a bad recipe, manifest or audio file."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from dsplug import errors, registry
from dsplug.audio import load_audio
from dsplug.data import load_manifest
from dsplug.recipe.loader import load_recipe
from dsplug.recipe.preflight import preflight

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo.yaml"
BUILT_INS = (ValueError, LookupError, ImportError, OSError, RuntimeError)


def test_every_dsplug_error_is_also_a_built_in_of_its_kind():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.DsplugError)]
    assert len(classes) >= 15
    loose = [c.__name__ for c in classes if c not in (errors.DsplugError, errors.PluginError) and not issubclass(c, BUILT_INS)]
    assert not loose, f"give these a built-in base (ValueError, LookupError, ImportError, OSError, RuntimeError): {loose}"


def test_a_bad_recipe_value_is_a_value_error(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(DEMO.read_text().replace("chunk_seconds: ", "chunk_seconds: -", 1))
    with pytest.raises(ValueError, match="chunk_seconds") as caught:
        load_recipe(recipe)
    assert isinstance(caught.value, errors.RecipeError)


def test_a_bad_manifest_and_a_bad_audio_file_are_value_errors(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\nmissing.wav,a\n")
    with pytest.raises(ValueError, match="missing.wav") as caught:
        load_manifest(manifest)
    assert isinstance(caught.value, errors.DataError)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF0000WAVEjunk" * 4)
    with pytest.raises(ValueError, match="junk.wav") as caught:
        load_audio(junk, sample_rate=16000)
    assert isinstance(caught.value, errors.AudioError)


def test_an_unknown_plugin_is_a_lookup_error():
    with pytest.raises(LookupError, match="no-such-head") as caught:
        registry.load("heads", "no-such-head")
    assert isinstance(caught.value, errors.PluginNotFound)


def test_a_head_that_cannot_do_the_task_is_one_error_before_the_run_and_while_building():
    """The pre-flight (recipe) and the head itself (plugin) raise the same class."""
    [point] = load_recipe(DEMO, overrides=["model.head.name=mlp", "train.method=finetune", "data.task=regression"])
    with pytest.raises(errors.TaskNotSupported, match="head 'mlp' supports classification, multilabel, but data.task is 'regression'"):
        preflight(point.recipe)
    import tf_keras

    head = registry.load("heads", "mlp")()
    with pytest.raises(errors.TaskNotSupported, match="does not support task 'regression'") as caught:
        head.build(tf_keras.Input((4, 4, 8)), num_outputs=1, task="regression")
    assert isinstance(caught.value, errors.RecipeError) and isinstance(caught.value, errors.PluginError)
    assert isinstance(caught.value, ValueError)
