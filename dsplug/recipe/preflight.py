"""The pre-flight: what a run of a valid recipe would reject later, checked before any audio is decoded.

The schema checks each value and the loader checks plugin names and options; the pre-flight
checks the recipe against the installed plugins and this machine, as the run would after
decoding: the head can do the task, the backbone takes the images (``frontend.image_size``
against its smallest input) or the audio (sample rate, no taps, no image augmentation), the
requested weights can be resolved without downloading anything (a ``.pth`` file is read and
checked), and named taps exist. The first half is deriving the model's
:class:`~dsplug.recipe.spec.PipelineSpec`, as the model builder does. ``dsplug validate`` and
``dsplug run`` call :func:`preflight`.

Examples
--------
>>> [point] = load_recipe("recipes/demo.yaml")  # doctest: +SKIP
>>> preflight(point.recipe, source="recipes/demo.yaml")  # doctest: +SKIP
['imagenet weights: .../efficientnet_lite0.h5']
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from dsplug.errors import DsplugError, RecipeError
from dsplug.plugin import Backbone
from dsplug.recipe.schema import Recipe
from dsplug.recipe.spec import PipelineSpec
from dsplug.weights import check_weights

__all__ = ["preflight"]


@contextlib.contextmanager
def _named(source: str) -> Iterator[None]:
    """Prefix a refusal with the recipe file, as the loader's messages are."""
    try:
        yield
    except DsplugError as err:
        raise type(err)(f"{source}: {err}") from err


def preflight(recipe: Recipe, *, source: str = "recipe") -> list[str]:
    """Refuse, before any decoding, what a run of ``recipe`` would refuse later.

    Parameters
    ----------
    recipe : Recipe
        A validated recipe (one sweep point).
    source : str
        The recipe file, for messages.

    Returns
    -------
    list of str
        Notes for the user (which weights will be loaded, or downloaded when the run starts).

    Raises
    ------
    RecipeError
        A head that cannot do ``data.task``; images smaller than the backbone takes; an audio
        backbone with another sample rate, taps, image augmentations or full-integer export; a
        tap layer the backbone lacks. The message names the recipe key.
    WeightsError
        ``model.backbone.weights`` cannot be resolved (or, offline, is not on this machine), or a
        ``.pth`` file is damaged, oversized or refused.
    """
    with _named(source):
        spec = PipelineSpec.of(recipe)
        note = check_weights(spec.backbone, spec.weights, input_shape=spec.input_shape, weights_dir=spec.weights_dir)
        if isinstance(spec.taps, list):
            _check_taps(spec.backbone, spec.taps, name=spec.backbone_name, input_shape=spec.input_shape)
        if recipe.data.cache_dir is not None:
            _check_cache_dir(recipe.data.cache_dir)
    return [f"model.backbone.weights: {note}"]


def _check_cache_dir(path: str) -> None:
    """``data.cache_dir`` must be a folder dsplug can create and write."""
    folder = Path(path).expanduser()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if folder.exists() and not folder.is_dir():
        raise RecipeError(f"data.cache_dir: {path!r} is not a folder (a file or a device); give a folder for the decoded chunks")
    if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
        raise RecipeError(f"data.cache_dir: {path!r} cannot be created or written ({str(existing)!r}); give a writable folder")


def _check_taps(backbone: Backbone, taps: list[str], *, name: str, input_shape: tuple[int, ...]) -> None:
    """Named taps must be layers of the backbone (built with random weights to list them)."""
    layers = [layer.name for layer in backbone.build(input_shape=input_shape).layers]
    unknown = [name for name in taps if name not in layers]
    if unknown:
        raise RecipeError(
            f"model.taps: no layer {', '.join(map(repr, unknown))} in backbone {name!r}; "
            f"its last layers are {', '.join(layers[-5:])} (or use model.taps: auto)"
        )
