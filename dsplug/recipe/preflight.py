"""The pre-flight: what a run of a valid recipe would reject later, checked before any audio is decoded.

The schema checks each value and the loader checks plugin names and options; the pre-flight
checks the recipe against the installed plugins and this machine, as the run would after
decoding: the head can do the task, the backbone takes the images (``frontend.image_size``
against its smallest input) or the audio (sample rate, no taps, no image augmentation), the
requested weights can be resolved without downloading anything (a ``.pth`` file is read and
checked), and named taps exist. ``dsplug validate`` and ``dsplug run`` call :func:`preflight`.

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
from typing import Any
from pathlib import Path

from dsplug import registry
from dsplug.plugin import Backbone
from dsplug.errors import DsplugError, RecipeError, TaskNotSupported
from dsplug.recipe.loader import plugin_options
from dsplug.recipe.schema import Recipe
from dsplug.weights import check_weights

__all__ = ["preflight"]


@contextlib.contextmanager
def _named(source: str) -> Iterator[None]:
    """Prefix a refusal with the recipe file, as the loader's messages are."""
    try:
        yield
    except DsplugError as err:
        raise type(err)(f"{source}: {err}") from err


def check_head_task(head: type[Any], *, name: str, task: str) -> None:
    """Refuse a head that cannot do the recipe's task.

    Raises
    ------
    TaskNotSupported
        Naming the head, the tasks it supports and the recipe's task.
    """
    if task not in head.tasks:
        raise TaskNotSupported(
            f"model.head.name: head {name!r} supports {', '.join(head.tasks)}, but data.task is {task!r}; "
            "choose another head (e.g. 'regression' for regression, 'linear' or 'mlp' for classification)"
        )


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
        model = recipe.model
        head = registry.load("heads", model.head.name)
        check_head_task(head, name=model.head.name, task=recipe.data.task)
        cls = registry.load("backbones", model.backbone.name)
        backbone = cls(options=plugin_options(cls, model.backbone, key="model.backbone"))
        shape = _input_shape(recipe, backbone)
        weights = model.backbone.weights
        note = check_weights(
            backbone, None if weights.lower() == "none" else weights, input_shape=shape,
            weights_dir=model.backbone.weights_dir,
        )
        if isinstance(model.taps, list):
            _check_taps(backbone, model.taps, name=model.backbone.name, input_shape=shape)
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


def _input_shape(recipe: Recipe, backbone: Backbone) -> tuple[int, ...]:
    """What the backbone is built for: ``(samples,)`` or ``(height, width, 3)``; refuses what it cannot take."""
    name = recipe.model.backbone.name
    if backbone.input_kind == "audio":
        rate = recipe.data.sample_rate
        if backbone.sample_rate and backbone.sample_rate != rate:
            raise RecipeError(
                f"data.sample_rate: backbone {name!r} expects {backbone.sample_rate} Hz audio, the recipe "
                f"gives {rate}; set data.sample_rate: {backbone.sample_rate}"
            )
        if recipe.model.taps != "last":
            raise RecipeError(f"model.taps: {recipe.model.taps!r} needs an image backbone; {name!r} takes raw audio: set model.taps: last")
        augment = recipe.augment
        if recipe.train.method == "finetune" and augment.policy != "none" and augment.methods:
            raise RecipeError(
                f"augment.methods: image augmentations ({', '.join(m.name for m in augment.methods)}) do not "
                f"apply to {name!r}, which takes raw audio; set augment.policy: none"
            )
        integer = [mode for mode in recipe.export.quantize if mode in ("int8", "qat")]
        if integer:
            raise RecipeError(
                f"export.quantize: {integer[0]} (full-integer conversion) of the raw-audio backbone {name!r} crashes "
                "TensorFlow 2.21's converter; use dynamic (int8 weights) or float16"
            )
        return (int(round(recipe.data.chunk_seconds * rate)),)
    height, width = recipe.frontend.image_size or backbone.input_size
    return backbone.image_shape((int(height), int(width), 3), name=name)


def _check_taps(backbone: Backbone, taps: list[str], *, name: str, input_shape: tuple[int, ...]) -> None:
    """Named taps must be layers of the backbone (built with random weights to list them)."""
    layers = [layer.name for layer in backbone.build(input_shape=input_shape).layers]
    unknown = [name for name in taps if name not in layers]
    if unknown:
        raise RecipeError(
            f"model.taps: no layer {', '.join(map(repr, unknown))} in backbone {name!r}; "
            f"its last layers are {', '.join(layers[-5:])} (or use model.taps: auto)"
        )
