"""Recipe engine: validation errors (key path, did-you-mean), overrides, sweeps, resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, write_recipe
from dsplug.errors import PluginNotFound, RecipeError
from dsplug.recipe.loader import load_recipe

DEMO = ROOT / "recipes" / "demo.yaml"

BASE = """
name: t
data:
  manifest: {manifest}
model:
  backbone: {{name: mobilenet_v2, weights: none}}
  head: {{name: mlp, units: 64}}
"""


@pytest.fixture
def recipe(tmp_path, tones_manifest):
    def make(extra: str = "", base: str = BASE) -> Path:
        return write_recipe(tmp_path / "r.yaml", base.format(manifest=tones_manifest) + extra)

    return make


def test_demo_recipe_resolves_with_documented_defaults():
    [point] = load_recipe(DEMO)
    r = point.recipe
    assert r.version == 1 and r.name == "demo"
    assert Path(r.data.manifest).is_absolute() and Path(r.data.manifest).is_file()
    assert r.frontend.window_ms == 32.0 and r.frontend.hop_ms == 16.0  # paper defaults
    assert r.augment.a == 0.5 and r.augment.s == 10.0
    resolved = point.to_dict()
    # plugin options are filled with the plugin's own defaults in the resolved recipe
    assert resolved["model"]["head"] == {"name": "linear", "dropout": 0.0, "pooling": "avg"}
    assert [m["name"] for m in resolved["augment"]["methods"]] == ["cutmix", "specaugment"]
    assert "max_size" in resolved["augment"]["methods"][0]


def test_resolved_recipe_reloads_to_the_same_recipe(tmp_path):
    [point] = load_recipe(DEMO)
    again = tmp_path / "recipe.yaml"
    again.write_text(point.to_yaml())
    [reloaded] = load_recipe(again)
    assert reloaded.to_dict() == point.to_dict()
    assert reloaded.hash == point.hash


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("trian: {batch_size: 8}\n", "trian: unknown key; did you mean train?"),
        ("train: {phase2: {lrr: 0.1}}\n", "train.phase2.lrr: unknown key; did you mean train.phase2.lr?"),
        ("train: {phase2: {lr: fast}}\n", "train.phase2.lr: expected a number, got 'fast'"),
        ("train: {batch_size: 3.5}\n", "train.batch_size: expected an integer, got 3.5"),
        ("train: {batch_size: '16'}\n", "train.batch_size: expected an integer, got '16'"),
        ("train: {optimizer: adamm}\n", "did you mean 'adam'?"),
        ("frontend: {normalize_signal: maybe}\n", "frontend.normalize_signal: expected true or false"),
        ("train: {batch_size: 0}\n", "train.batch_size: expected an integer in (0, 65536], got 0"),
        ("augment: {p_min: 0.5, p_max: 0.2}\n", "augment.p_min (0.5) must not exceed augment.p_max"),
        ("train: {phase2: {finetune_layers: 2.5}}\n", "finetune_layers: expected a count"),
        ("frontend: {fmax: 12000}\n", "frontend.fmin/fmax"),
        ("frontend: {colormap: virids}\n", "frontend.colormap: unknown colour map 'virids'; did you mean 'viridis'?"),
        ("export: {quantize: [int4]}\n", "export.quantize.0: expected one of 'dynamic', 'float16', 'int8' or 'qat'"),
        ("export: {prune: 1.5}\n", "export.prune: expected a value in (0, 1), got 1.5"),
    ],
)
def test_invalid_values_name_the_key(recipe, extra, expected):
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe(extra))
    assert expected in str(err.value)
    assert "r.yaml" in str(err.value)


def test_missing_required_manifest(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", "name: x\ndata: {sample_rate: 16000}\n")
    with pytest.raises(RecipeError, match="data.manifest: required"):
        load_recipe(path)


def test_not_yaml_names_the_line(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", "data:\n  manifest: a.csv\n   bad: [1, 2\n")
    with pytest.raises(RecipeError, match=r"not valid YAML at line \d+"):
        load_recipe(path)


def test_not_a_mapping_and_missing_file(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", "- just\n- a list\n")
    with pytest.raises(RecipeError, match="must be a YAML mapping"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


def test_plugin_options_are_validated_against_the_plugin(recipe):
    with pytest.raises(RecipeError, match="model.head.units: expected an integer, got 'big'"):
        load_recipe(recipe(), overrides=["model.head.units=big"])
    with pytest.raises(RecipeError, match="model.head.unitz: unknown key; did you mean model.head.units?"):
        load_recipe(recipe(), overrides=["model.head.unitz=3"])
    with pytest.raises(RecipeError, match=r"augment.methods.0.max_sise: unknown key; did you mean augment.methods.0.max_size\?"):
        load_recipe(recipe("augment: {methods: [{name: cutmix, max_sise: 3}]}\n"))


def test_plugin_option_bounds_and_rules_name_the_key():
    lean = ROOT / "recipes" / "lean.yaml"
    with pytest.raises(RecipeError, match=r"model\.backbone\.heads: expected an integer >= 1, got 0"):
        load_recipe(lean, overrides=["model.backbone.heads=0"])
    with pytest.raises(RecipeError, match=r"model\.backbone: projection \(30\) must be a multiple of heads \(4\)"):
        load_recipe(lean, overrides=["model.backbone.projection=30"])
    with pytest.raises(RecipeError) as err:
        load_recipe(lean, overrides=["model.head.dropout=1.5", "model.head.units=0"])
    assert "model.head.dropout: expected a value in [0, 1), got 1.5" in str(err.value)
    assert "model.head.units: expected an integer in [1, 65536], got 0" in str(err.value)  # one line per problem


def test_unknown_plugin_name_lists_choices(recipe):
    with pytest.raises(PluginNotFound) as err:
        load_recipe(recipe(), overrides=["model.backbone.name=densenet12"])
    assert "model.backbone.name" in str(err.value)
    assert "did you mean 'densenet121'?" in str(err.value)


def test_overrides_are_typed_and_unknown_keys_fail(recipe):
    [point] = load_recipe(recipe(), overrides=["train.batch_size=16", "train.phase2.lr=0.0001", "seed=7"])
    assert point.recipe.train.batch_size == 16
    assert point.recipe.train.phase2.lr == pytest.approx(1e-4)
    assert point.recipe.seed == 7
    with pytest.raises(RecipeError, match="train.batchsize: unknown key; did you mean train.batch_size?"):
        load_recipe(recipe(), overrides=["train.batchsize=16"])
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe(recipe(), overrides=["train.batch_size"])
    with pytest.raises(RecipeError, match="expected a list index"):
        load_recipe(recipe(), overrides=["augment.methods.5.max_size=3"])
    # an absent list section is taken from the schema's default before the override applies
    [point] = load_recipe(recipe(), overrides=["augment.methods.0.max_size=40"])
    assert point.to_dict()["augment"]["methods"][0] == {"name": "cutmix", "max_size": 40}


def test_the_sweep_block_makes_a_grid_of_points(recipe):
    points = load_recipe(recipe("sweep: {train.lr: [0.1, 0.01]}\n"), overrides=["sweep.model.head.units=[32, 64]"])
    assert len(points) == 4
    combos = {(p.recipe.train.lr, p.to_dict()["model"]["head"]["units"]) for p in points}
    assert combos == {(0.1, 32), (0.1, 64), (0.01, 32), (0.01, 64)}
    slugs = [p.slug for p in points]
    assert len(set(slugs)) == 4 and all("/" not in s and s for s in slugs)
    assert points[0].values == {"train.lr": 0.1, "model.head.units": 32}


def test_duplicate_keys_are_an_error(recipe):
    with pytest.raises(RecipeError, match="duplicate key 'data'"):
        load_recipe(recipe("data: {sample_rate: 8000}\n"))


def test_only_the_sweep_block_sweeps(recipe):
    """A list is a key's value wherever it stands; the schema's or a plugin's types never decide."""
    [point] = load_recipe(recipe("frontend: {image_size: [96, 96]}\n"), overrides=["data.classes=[T1, T2, T3, T4, T5_neutral]"])
    assert point.recipe.frontend.image_size == [96, 96] and point.values == {}
    points = load_recipe(recipe("sweep: {frontend: {image_size: [[64, 64], [96, 96]]}}\n"))  # nested or dotted keys
    assert [p.recipe.frontend.image_size for p in points] == [[64, 64], [96, 96]]
    assert "sweep" not in points[0].to_dict()  # a point is a plain recipe; its hash is its values'
    [plain] = load_recipe(recipe("frontend: {image_size: [64, 64]}\n"))
    assert points[0].hash == plain.hash
    # a list where one value is expected is an error that says how to sweep
    with pytest.raises(RecipeError, match=r"train.lr: expected a number, got a list; to try several values, sweep them: "
                                          r"a sweep: block or --set 'sweep.train.lr=\[...\]'"):
        load_recipe(recipe("train: {lr: [0.1, 0.01]}\n"))
    with pytest.raises(RecipeError, match=r"sweep.train.lr: expected the list of values to try, got 0.1"):
        load_recipe(recipe(), overrides=["sweep.train.lr=0.1"])
    with pytest.raises(RecipeError, match=r"sweep: expected a mapping of recipe keys to lists of values, got a list"):
        load_recipe(recipe("sweep: [1, 2]\n"))
    with pytest.raises(RecipeError, match=r"train.lrr: unknown key; did you mean train.lr\?"):
        load_recipe(recipe("sweep: {train.lrr: [0.1, 0.01]}\n"))


def test_export_section_lists_modes_without_sweeping(recipe):
    [point] = load_recipe(recipe("export: {quantize: [int8, qat], qat_epochs: 2}\n"))
    assert point.recipe.export.quantize == ["int8", "qat"] and point.recipe.export.qat_epochs == 2
    [point] = load_recipe(recipe(""), overrides=["export.quantize=[qat]"])
    assert point.recipe.export.quantize == ["qat"] and point.recipe.export.prune is None


def test_sweep_over_plugin_names(recipe):
    points = load_recipe(recipe(), overrides=["sweep.model.backbone.name=[mobilenet_v2, squeezenet_v1]"])
    assert [p.recipe.model.backbone.name for p in points] == ["mobilenet_v2", "squeezenet_v1"]


def test_every_shipped_recipe_validates():
    recipes = sorted((ROOT / "recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        assert load_recipe(path), path


def test_finetune_layers_count_fraction_or_all(recipe):
    for value, expected in (("85", 85), ("0.5", 0.5), ("all", "all"), ("0", 0)):
        [point] = load_recipe(recipe(), overrides=[f"train.phase2.finetune_layers={value}"])
        assert point.recipe.train.phase2.finetune_layers == expected
    with pytest.raises(RecipeError, match="finetune_layers"):
        load_recipe(recipe(), overrides=["train.phase2.finetune_layers=-3"])
    with pytest.raises(RecipeError, match="finetune_layers"):
        load_recipe(recipe(), overrides=["train.phase2.finetune_layers=most"])


def test_the_pipeline_spec_is_derived_once_from_the_recipe(recipe):
    """What the pre-flight checks and the model builder builds: one PipelineSpec."""
    from dsplug.recipe.spec import PipelineSpec
    from dsplug.task import Task

    [point] = load_recipe(recipe("frontend: {image_size: [96, 128]}\n"),
                          overrides=["data.chunk_seconds=0.75", "data.sample_rate=8000", "model.backbone.name=squeezenet_v1"])
    spec = PipelineSpec.of(point.recipe)
    assert spec.chunk_samples == 6000 and spec.sample_rate == 8000 and spec.hop_seconds == 0.75
    assert spec.input_shape == (96, 128, 3) and spec.image_size == (96, 128) and spec.input_kind == "image"
    assert spec.weights is None and spec.task is Task.CLASSIFICATION and spec.backbone_name == "squeezenet_v1"
    assert type(spec.head).__name__ == "MLPHead" and spec.head.options.units == 64 and spec.name == "t"
    # the backbone's own size when the recipe gives none; its smallest input is refused by name
    [default] = load_recipe(recipe(), overrides=["model.backbone.name=squeezenet_v1"])
    assert PipelineSpec.of(default.recipe).input_shape == (224, 224, 3)
    [tiny] = load_recipe(recipe("frontend: {image_size: [16, 16]}\n"))
    with pytest.raises(RecipeError, match=r"needs images of at least .* choose a larger frontend.image_size"):
        PipelineSpec.of(tiny.recipe)
