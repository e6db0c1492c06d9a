"""What a run does with a plugin, for the plugin's own tests (which import only ``dsplug.plugin``
and ``dsplug.testing``): the recipe's pipeline, its TFLite model, a whole run; and where an
installed package keeps a declared weights file.

Examples
--------
>>> from dsplug.testing import recipe_pipeline, tflite
>>> pipeline = recipe_pipeline("recipes/lean.yaml", num_outputs=5)  # doctest: +SKIP
>>> content = tflite(pipeline.end_to_end, samples=16000)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsplug.plugin import PackageWeights
from dsplug.errors import RecipeError

__all__ = ["installed_file", "recipe_pipeline", "run_recipe", "tflite"]


def installed_file(source: PackageWeights) -> Path:
    """The file (or folder) of a package source in its installed distribution.

    Read from the distribution's metadata, independently of dsplug's search, so a test can
    compare what dsplug loads with the published file.

    Raises
    ------
    AssertionError
        The distribution is not installed or lacks the file; the message has the install command.
    """
    try:
        distribution = importlib.metadata.distribution(source.distribution)
    except importlib.metadata.PackageNotFoundError as err:
        raise AssertionError(f"{source.distribution} is not installed: {source.pip_install}") from err
    path = Path(str(distribution.locate_file(source.path_in_distribution)))
    assert path.exists(), f"{source.distribution} has no {source.path_in_distribution}: {source.pip_install}"
    return path


def _point(recipe: str | os.PathLike[str], overrides: Sequence[str]) -> Any:
    from dsplug.recipe.loader import load_recipe

    points = load_recipe(recipe, overrides=overrides)
    if len(points) != 1:
        raise RecipeError(f"{os.fspath(recipe)}: a sweep of {len(points)} points; a test needs one recipe")
    return points[0]


def recipe_pipeline(recipe: str | os.PathLike[str], *, overrides: Sequence[str] = (), num_outputs: int) -> Any:
    """The model a run builds from a recipe file (front-end, backbone with its weights, head).

    Parameters
    ----------
    recipe : path
        A recipe YAML file (one point, no sweep).
    overrides : sequence of str
        ``KEY=VALUE`` overrides, as ``dsplug run --set``.
    num_outputs : int
        Classes (or regression targets).

    Returns
    -------
    dsplug.pipeline.Pipeline
        With ``end_to_end`` (audio in, outputs out), ``frontend``, ``backbone``, ``head``.
    """
    from dsplug.pipeline import build_pipeline
    from dsplug.recipe.spec import PipelineSpec

    return build_pipeline(PipelineSpec.of(_point(recipe, overrides).recipe), num_outputs=num_outputs)


def tflite(model: Any, *, samples: int) -> bytes:
    """Convert an audio-in Keras model to TFLite as ``dsplug export`` does (float32, builtin ops).

    Raises
    ------
    ExportError
        The model needs ops that TFLite builtins do not provide (the message names them).
    """
    from dsplug.deploy.convert import convert

    return convert(model, samples=samples)


def run_recipe(recipe: str | os.PathLike[str], *, overrides: Sequence[str] = (), run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Run a recipe as ``dsplug run`` does: data, training, evaluation, export into ``run_dir``.

    Returns
    -------
    dict
        ``{"run_dir", "data", "metrics", "export", "reused"}``.
    """
    from dsplug.workflows.run import run_point

    return run_point(_point(recipe, overrides), run_dir=run_dir)
