"""The model a recipe describes, derived once and checked: :class:`PipelineSpec`.

The pre-flight (:func:`dsplug.recipe.preflight.preflight`) and the model builder
(:func:`dsplug.pipeline.build_pipeline`) both read a spec, so the plugin instances, the chunk
length in samples, the backbone's input shape and the weights are computed in one place and the
two cannot disagree.

>>> from dsplug.recipe.loader import load_recipe
>>> from dsplug.recipe.spec import PipelineSpec
>>> [point] = load_recipe("recipes/demo.yaml")  # doctest: +SKIP
>>> spec = PipelineSpec.of(point.recipe)  # doctest: +SKIP
>>> spec.chunk_samples, spec.input_shape  # doctest: +SKIP
(16000, (224, 224, 3))
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from dsplug import registry
from dsplug.errors import RecipeError, TaskNotSupported
from dsplug.plugin import Backbone, Head
from dsplug.recipe.loader import plugin_options
from dsplug.recipe.schema import FrontendConfig, Recipe
from dsplug.task import Task


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """Everything the model is built from, derived from a recipe by :meth:`of`.

    Attributes
    ----------
    name : str
        The recipe's ``name`` (the model's).
    backbone, head : Backbone, Head
        The plugin instances with the recipe's options.
    backbone_name, head_name : str
        Their names (``model.backbone.name``, ``model.head.name``).
    task : Task
        ``data.task``.
    frontend : FrontendConfig
        The recipe's ``frontend`` section (unused by a raw-audio backbone).
    sample_rate : int
        Hz (``data.sample_rate``).
    chunk_seconds, hop_seconds : float
        One model input, and the hop between inputs on files and streams (``data.hop_seconds``,
        default the chunk), in seconds.
    chunk_samples : int
        Samples in one model input (``chunk_seconds`` at ``sample_rate``).
    pad_mode : {"zero", "repeat"}
        ``data.pad_mode``: ``repeat`` tiles a short window inside the model.
    input_shape : tuple of int
        What the backbone takes: ``(height, width, 3)`` images, or ``(chunk_samples,)`` audio.
    weights : str or None
        ``model.backbone.weights``; None for random initialisation (``none``).
    weights_dir : str or None
        ``model.backbone.weights_dir``.
    taps : str or list of str
        ``model.taps``: ``last``, ``auto`` or layer names.
    seed : int
        Seeds the model's initial weights.
    """

    name: str
    backbone: Backbone
    head: Head
    backbone_name: str
    head_name: str
    task: Task
    frontend: FrontendConfig
    sample_rate: int
    chunk_seconds: float
    hop_seconds: float
    chunk_samples: int
    pad_mode: Literal["zero", "repeat"]
    input_shape: tuple[int, ...]
    weights: str | None
    weights_dir: str | None
    taps: str | list[str]
    seed: int

    @property
    def input_kind(self) -> Literal["image", "audio"]:
        """``image`` (dsplug's spectrogram front-end feeds the backbone) or ``audio``."""
        return self.backbone.input_kind

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the spectrogram image: the backbone's input; for a raw-audio
        backbone, the image ``dsplug view`` draws (``frontend.image_size`` or 224 x 224)."""
        if self.input_kind == "image":
            return (self.input_shape[0], self.input_shape[1])
        height, width = self.frontend.image_size or self.backbone.input_size
        return (int(height), int(width))

    @classmethod
    def of(cls, recipe: Recipe) -> PipelineSpec:
        """The spec of a validated recipe (one sweep point).

        Raises
        ------
        TaskNotSupported
            The head cannot do ``data.task``.
        RecipeError
            Images smaller than the backbone takes; an audio backbone with another sample rate,
            taps, image augmentations or full-integer export. The message names the recipe key.
        PluginNotFound, PluginBroken
            A plugin name that is not installed, or does not load.
        """
        model = recipe.model
        head_cls = registry.load("heads", model.head.name)
        check_head_task(head_cls, name=model.head.name, task=recipe.data.task)
        backbone_cls = registry.load("backbones", model.backbone.name)
        backbone = backbone_cls(options=plugin_options(backbone_cls, model.backbone, key="model.backbone"))
        weights = model.backbone.weights
        return cls(
            name=recipe.name,
            backbone=backbone,
            head=head_cls(options=plugin_options(head_cls, model.head, key="model.head")),
            backbone_name=model.backbone.name,
            head_name=model.head.name,
            task=recipe.data.task,
            frontend=recipe.frontend,
            sample_rate=recipe.data.sample_rate,
            chunk_seconds=recipe.data.chunk_seconds,
            hop_seconds=recipe.data.hop_seconds or recipe.data.chunk_seconds,
            chunk_samples=int(round(recipe.data.chunk_seconds * recipe.data.sample_rate)),
            pad_mode=recipe.data.pad_mode,
            input_shape=_input_shape(recipe, backbone),
            weights=None if weights.lower() == "none" else weights,
            weights_dir=model.backbone.weights_dir,
            taps=model.taps,
            seed=recipe.seed,
        )


def check_head_task(head: type[Head], *, name: str, task: str) -> None:
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
