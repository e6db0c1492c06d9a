"""The public plugin API of dsplug: the only module a plugin should import.

A plugin is a class registered under one of four entry-point groups (see :data:`GROUPS`) in the
plugin distribution's ``pyproject.toml``::

    [project.entry-points."dsplug.colormaps"]
    sunset = "my_package.colormaps:Sunset"

Every plugin class derives from one of :class:`Backbone`, :class:`Colormap`, :class:`Head` or
:class:`Augmentation`. Its recipe options are declared as a nested dataclass called ``Options``;
dsplug validates the recipe section against it (unknown keys and wrong types are errors) and
passes the instance to the constructor as ``options``.

Tensors are TensorFlow tensors; models are built with ``tf_keras`` (Keras 2), because
tensorflow-model-optimization (pruning, QAT) only works with Keras 2 models. Every plugin must
build from TensorFlow ops that convert to TFLite builtin ops, so the whole pipeline can be
exported.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from dsplug.errors import DsplugError, PluginError, RecipeError, WeightsError
from dsplug.pth import load_torch_state_dict
from dsplug.torch_weights import TorchWeightsFile, assign_torch_state, find_torch_weights, load_weights, resolve_weights


if TYPE_CHECKING:  # pragma: no cover - imports for type checkers only
    import tensorflow as tf
    import tf_keras

__all__ = [
    "API_VERSION",
    "TorchWeightsFile",
    "assign_torch_state",
    "find_torch_weights",
    "load_torch_state_dict",
    "load_weights",
    "resolve_weights",
    "GROUPS",
    "Augmentation",
    "Backbone",
    "Colormap",
    "DsplugError",
    "Head",
    "Plugin",
    "PluginError",
    "RecipeError",
    "WeightsError",
]

#: Version of this contract. A plugin may set ``api_version``; a different major version is
#: reported as broken at load time.
API_VERSION = "1.0"

#: Entry-point group of each plugin kind.
GROUPS: dict[str, str] = {
    "backbones": "dsplug.backbones",
    "colormaps": "dsplug.colormaps",
    "augmentations": "dsplug.augmentations",
    "heads": "dsplug.heads",
}

Task = Literal["classification", "multilabel", "regression"]



class Plugin:
    """Base of every plugin.

    Attributes
    ----------
    Options : type
        A dataclass of the plugin's recipe options, all with defaults. Subclasses override it.
    api_version : str
        The :data:`API_VERSION` the plugin was written against.
    name : str
        The entry-point name the plugin was loaded under (set by the registry).
    """

    @dataclasses.dataclass
    class Options:
        """No options."""

    api_version: ClassVar[str] = API_VERSION
    name: str = ""

    def __init__(self, *, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()


class Colormap(Plugin):
    """A colour map: the 256-entry RGB lookup table that turns a [0, 255] image into colour."""

    def table(self) -> np.ndarray:
        """Return the lookup table.

        Returns
        -------
        table : np.ndarray [shape=(256, 3), dtype=float32]
            RGB values in [0, 1]; row 0 colours the lowest level (silence), row 255 the highest.
        """
        raise NotImplementedError


class Backbone(Plugin):
    """An image CNN used as a feature extractor (features only: no pooling, no classifier).

    Class attributes
    ----------------
    input_size : tuple[int, int]
        (height, width) in pixels the backbone expects; the front-end resizes to it.
    weight_sources : tuple[str, ...]
        Values of ``model.backbone.weights`` it accepts besides ``none`` and a file path
        (usually ``("imagenet",)``).
    min_input_size : int
        Smallest image side it builds for with random weights (used by the contract tests).
    input_kind : {"image", "audio"}
        ``image`` (default): the backbone takes dsplug's colour spectrogram images.
        ``audio``: it takes the raw chunk (batch, samples) float32 in [-1, 1] and has its own
        front-end inside :meth:`build` (e.g. YAMNet's log-Mel patches); then ``input_size`` and
        :meth:`preprocess` are unused, ``build`` gets ``input_shape=(samples,)`` and image
        augmentations do not apply. Features may be (batch, h, w, channels) or (batch, channels).
    """

    input_size: ClassVar[tuple[int, int]] = (224, 224)
    min_input_size: ClassVar[int] = 32
    input_kind: ClassVar[Literal["image", "audio"]] = "image"
    #: For ``audio`` backbones: the sample rate their front-end expects (None: any).
    sample_rate: ClassVar[int | None] = None
    weight_sources: ClassVar[tuple[str, ...]] = ("imagenet",)

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """Apply the backbone's own input normalisation (TF ops only).

        Parameters
        ----------
        images : tf.Tensor [shape=(batch, height, width, 3), dtype=float32]
            RGB images with values in [0, 255].

        Returns
        -------
        tf.Tensor [shape=(batch, height, width, 3), dtype=float32]
            What :meth:`build`'s model expects as input.
        """
        raise NotImplementedError

    def build(
        self,
        *,
        weights: str | None,
        input_shape: tuple[int, ...],
        weights_dir: str | None = None,
    ) -> tf_keras.Model:
        """Build the feature extractor.

        Parameters
        ----------
        weights : str or None
            ``None`` for random initialisation, one of :attr:`weight_sources` (e.g.
            ``"imagenet"``), or the path of a weights file.
        input_shape : tuple[int, ...]
            (height, width, channels) of the preprocessed images; ``(samples,)`` for an
            ``audio`` backbone.
        weights_dir : str or None
            An extra folder to look for pretrained weight files in before any download.

        Returns
        -------
        tf_keras.Model
            Maps (batch, height, width, 3) to features of shape (batch, h, w, channels).

        Raises
        ------
        WeightsError
            If requested weights cannot be found or read. Never fall back to random weights.
        """
        raise NotImplementedError

    def image_shape(self, input_shape: tuple[int, ...], *, name: str) -> tuple[int, int, int]:
        """Check that this backbone can take images of ``input_shape`` (for :meth:`build`).

        Parameters
        ----------
        input_shape : tuple[int, ...]
            (height, width, channels) in pixels, as :meth:`build` receives it.
        name : str
            The backbone's name, for messages.

        Returns
        -------
        tuple[int, int, int]
            ``input_shape`` as a tuple of ints.

        Raises
        ------
        RecipeError
            If the shape is not (height, width, 3) with height and width >=
            :attr:`min_input_size`; the message names the shape and the fix.
        """
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3 or shape[2] != 3:
            raise RecipeError(
                f"backbone {name!r} takes RGB images of shape (height, width, 3); "
                f"got input_shape={tuple(input_shape)!r}"
            )
        if min(shape[:2]) < self.min_input_size:
            raise RecipeError(
                f"backbone {name!r} needs images of at least {self.min_input_size}x{self.min_input_size} "
                f"pixels; got {shape[0]}x{shape[1]}: choose a larger frontend.image_size"
            )
        return (shape[0], shape[1], shape[2])


class Head(Plugin):
    """The classifier or regressor on top of the backbone's feature maps.

    Class attributes
    ----------------
    tasks : tuple[str, ...]
        The tasks it supports: ``classification`` (softmax), ``multilabel`` (sigmoid),
        ``regression`` (linear).
    """

    tasks: ClassVar[tuple[Task, ...]] = ("classification", "multilabel")

    def build(self, features: tf.Tensor, *, num_outputs: int, task: Task) -> tf.Tensor:
        """Add the head's layers (Keras functional API) on top of ``features``.

        Parameters
        ----------
        features : tf.Tensor [shape=(batch, h, w, channels)]
            The backbone's feature maps.
        num_outputs : int
            Number of classes (or regression targets).
        task : str
            One of :attr:`tasks`; decides the output activation.

        Returns
        -------
        tf.Tensor [shape=(batch, num_outputs), dtype=float32]
            Class probabilities (softmax), label probabilities (sigmoid) or values (linear).
        """
        raise NotImplementedError


class Augmentation(Plugin):
    """A batch augmentation whose strength per sample is set by the augmentation policy.

    Augmentations run on the images after the backbone's input normalisation, in training only.
    """

    def apply(
        self,
        images: tf.Tensor,
        labels: tf.Tensor,
        strength: tf.Tensor,
        *,
        fill_value: tf.Tensor,
        seed: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Augment every sample of a batch with its own strength.

        Parameters
        ----------
        images : tf.Tensor [shape=(batch, height, width, 3), dtype=float32]
            Normalised images (after :meth:`Backbone.preprocess`). Time runs along the width
            (axis 2), frequency along the height (axis 1) with low frequencies at the bottom.
        labels : tf.Tensor [shape=(batch, num_classes), dtype=float32]
            One-hot (or multi-hot / mixed) targets.
        strength : tf.Tensor [shape=(batch,), dtype=float32]
            Per-sample strength in [0, 1]; 0 must leave the sample unchanged.
        fill_value : tf.Tensor [shape=(3,), dtype=float32]
            The normalised pixel value of silence, for masks.
        seed : tf.Tensor [shape=(2,), dtype=int32]
            Seed for ``tf.random.stateless_*`` ops.

        Returns
        -------
        images, labels : tf.Tensor
            Same shapes and dtypes as the inputs.
        """
        raise NotImplementedError
