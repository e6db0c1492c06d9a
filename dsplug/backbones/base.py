"""Shared logic of the built-in backbones: pretrained facts as data, input normalisation in
plain TF ops, the Keras-Applications backbone base class, and partial unfreezing.

Each built-in Keras Applications backbone is a :class:`KerasApplicationBackbone` subclass whose
only content is a :class:`KerasAppSpec` (constructor, default input size, preprocessing mode,
minimum input size, notop weight files), in the spirit of timm's pretrained configs and
keras-hub's presets.

Examples
--------
>>> from dsplug import registry
>>> from dsplug.backbones.base import unfreeze_top
>>> backbone = registry.load("backbones", "densenet121")()  # doctest: +SKIP
>>> model = backbone.build(input_shape=(224, 224, 3))  # doctest: +SKIP
>>> unfreeze_top(model, layers=128)  # doctest: +SKIP
92

(the top 128 of DenseNet121's 426 layers, less the 36 BatchNormalization layers among them).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import ClassVar, Literal

import tensorflow as tf
import tf_keras

from dsplug.plugin import Backbone, KerasWeights
from dsplug.errors import TrainError

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGENET_MEAN_RGB",
    "IMAGENET_MEAN_TORCH_RGB",
    "IMAGENET_STD_RGB",
    "KerasAppSpec",
    "KerasApplicationBackbone",
    "PreprocessingMode",
    "preprocess_images",
    "unfreeze_top",
]

PreprocessingMode = Literal["caffe", "tf", "torch"]

#: ImageNet channel means in RGB order, on the [0, 255] scale ("caffe" mode subtracts them).
IMAGENET_MEAN_RGB: tuple[float, float, float] = (123.68, 116.779, 103.939)
#: ImageNet channel means in RGB order, on the [0, 1] scale ("torch" mode, as in torchvision).
IMAGENET_MEAN_TORCH_RGB: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: ImageNet channel standard deviations in RGB order, on the [0, 1] scale ("torch" mode).
IMAGENET_STD_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)

_BATCH_NORM_TYPES: tuple[type, ...] = (
    tf_keras.layers.BatchNormalization,
    tf_keras.layers.experimental.SyncBatchNormalization,
)


def preprocess_images(images: tf.Tensor, *, mode: PreprocessingMode) -> tf.Tensor:
    """Normalise RGB images the way an ImageNet backbone was trained (TFLite builtin ops only).

    The three modes of ``tf_keras.applications.imagenet_utils.preprocess_input``, written
    with plain TF ops (slice, subtract, multiply) so they convert to builtin TFLite ops:

    - ``"caffe"``: RGB -> BGR, then subtract the ImageNet mean per channel (no scaling);
      VGG16, VGG19, ResNet50.
    - ``"tf"``: ``x / 127.5 - 1``, i.e. [-1, 1]; Xception, Inception, MobileNet, NASNet.
    - ``"torch"``: ``x / 255``, then subtract the ImageNet mean and divide by its standard
      deviation per channel; DenseNet.

    Parameters
    ----------
    images : tf.Tensor [shape=(batch, height, width, 3), dtype=float32]
        RGB images with values in [0, 255].
    mode : {"caffe", "tf", "torch"}
        The normalisation.

    Returns
    -------
    tf.Tensor [shape=(batch, height, width, 3), dtype=float32]
        Normalised images (BGR channel order in ``"caffe"`` mode).
    """
    x = tf.cast(images, tf.float32)
    if mode == "caffe":
        mean_bgr = tf.constant(IMAGENET_MEAN_RGB[::-1], dtype=tf.float32)
        return x[..., ::-1] - mean_bgr
    if mode == "tf":
        return x * (1.0 / 127.5) - 1.0
    if mode == "torch":
        mean = tf.constant(IMAGENET_MEAN_TORCH_RGB, dtype=tf.float32)
        std = tf.constant(IMAGENET_STD_RGB, dtype=tf.float32)
        return (x * (1.0 / 255.0) - mean) / std
    raise ValueError(f"unknown preprocessing mode {mode!r}; use 'caffe', 'tf' or 'torch'")


@dataclasses.dataclass(frozen=True)
class KerasAppSpec:
    """Pretrained facts of one ``tf_keras.applications`` backbone.

    Attributes
    ----------
    constructor : callable
        The ``tf_keras.applications`` function, e.g. ``tf_keras.applications.DenseNet121``.
    input_size : int
        Default (and ImageNet training) height = width in pixels.
    preprocessing : {"caffe", "tf", "torch"}
        Input normalisation (see :func:`preprocess_images`).
    min_input_size : int
        Smallest height and width Keras accepts without the top.
    weights : tuple of KerasWeights
        The ImageNet notop weight files; several (each with ``rows``) only for families with
        one file per input size (MobileNet). Empty if no ImageNet weights exist.
    """

    constructor: Callable[..., tf_keras.Model]
    input_size: int
    preprocessing: PreprocessingMode
    min_input_size: int
    weights: tuple[KerasWeights, ...] = ()


class KerasApplicationBackbone(Backbone):
    """A backbone built by a ``tf_keras.applications`` constructor without its top.

    Subclasses set :attr:`spec`; :attr:`input_size`, :attr:`min_input_size` and
    :attr:`weight_sources` (``imagenet``: the notop file, or one file per input size) are
    derived from it when the subclass is defined.

    Class attributes
    ----------------
    spec : KerasAppSpec
        The backbone's pretrained facts.
    min_input_size : int
        Smallest height and width accepted (used by the contract checks with ``weights=None``).
    """

    spec: ClassVar[KerasAppSpec]
    min_input_size: ClassVar[int] = 32

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        spec = cls.__dict__.get("spec")
        if spec is not None:
            cls.input_size = (spec.input_size, spec.input_size)
            cls.min_input_size = spec.min_input_size
            files = spec.weights
            cls.weight_sources = {"imagenet": files[0] if len(files) == 1 else files} if files else {}

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """Normalise RGB images in [0, 255] as the backbone's ImageNet weights expect (``spec``'s
        preprocessing mode); shapes as :meth:`dsplug.plugin.Backbone.preprocess`."""
        return preprocess_images(images, mode=self.spec.preprocessing)

    def build(self, *, input_shape: tuple[int, ...]) -> tf_keras.Model:
        """Build the feature extractor (no top, no pooling), randomly initialised.

        Parameters
        ----------
        input_shape : tuple[int, int, int]
            (height, width, 3) of the preprocessed images.

        Returns
        -------
        tf_keras.Model
            Maps (batch, height, width, 3) float32 to feature maps (batch, h, w, channels).

        Raises
        ------
        RecipeError
            If ``input_shape`` is too small or not RGB.
        """
        shape = self.image_shape(input_shape, name=self.name or type(self).__name__)
        return self.spec.constructor(include_top=False, weights=None, input_shape=shape, pooling=None)


def _is_batch_norm(layer: tf_keras.layers.Layer) -> bool:
    return isinstance(layer, _BATCH_NORM_TYPES)


def unfreeze_top(model: tf_keras.Model, *, layers: int | float, freeze_batchnorm: bool = True) -> int:
    """Freeze a backbone, then make its top ``layers`` layers trainable (fine-tuning phase 2).

    Layers are counted in the order of ``model.layers`` without the ``InputLayer``, from the
    output end, as in DeepSpectrumLite's "fine-tuned layers" (Table 2: e.g. 85, 128, 298 for
    DenseNet121). Layers without weights (activations, pooling, concatenation) count too.

    BatchNormalization layers stay frozen (``trainable=False``) even inside the top layers: in
    Keras 2 a frozen BatchNormalization layer runs in inference mode, so its moving mean and
    variance keep their ImageNet values instead of drifting on small audio datasets, and its
    scale and offset are not trained. With ``freeze_batchnorm=False`` (for backbones trained from
    random initialisation, whose statistics are meaningless until trained) they are unfrozen too.

    The top-level ``model.trainable`` is left ``True`` (otherwise Keras would hide every
    weight); recompile a compiled model after calling this.

    Parameters
    ----------
    model : tf_keras.Model
        The backbone (as returned by :meth:`dsplug.plugin.Backbone.build`).
    layers : int or float
        An ``int`` >= 0 is a count of layers (0 freezes everything; a count larger than the
        number of layers unfreezes all, with a warning). A ``float`` in (0, 1] is a fraction of
        the layers, rounded to the nearest count and at least 1.
    freeze_batchnorm : bool
        Keep BatchNormalization layers frozen (in inference mode). True for pretrained weights.

    Returns
    -------
    int
        The number of layers made trainable (the top layers minus the BatchNormalization ones).

    Raises
    ------
    TrainError
        If ``layers`` is negative, a fraction outside (0, 1], or not a number.
    """
    candidates = [
        layer for layer in model.layers if not isinstance(layer, tf_keras.layers.InputLayer)
    ]
    total = len(candidates)
    if isinstance(layers, bool) or not isinstance(layers, (int, float)):
        raise TrainError(
            f"layers to fine-tune must be a count (int) or a fraction (float); got {layers!r}"
        )
    if isinstance(layers, float):
        if not 0.0 < layers <= 1.0:
            raise TrainError(
                f"fraction of layers to fine-tune must be in (0, 1]; got {layers!r} "
                "(use an int for a count, 0 to freeze everything)"
            )
        count = max(1, int(layers * total + 0.5))
    else:
        if layers < 0:
            raise TrainError(f"number of layers to fine-tune must be >= 0; got {layers!r}")
        if layers > total:
            logger.warning(
                "asked to fine-tune %d layers of %r, which has only %d; fine-tuning all",
                layers,
                model.name,
                total,
            )
        count = min(layers, total)

    model.trainable = True
    for layer in candidates:
        layer.trainable = False
    made_trainable = 0
    for layer in candidates[total - count :] if count else []:
        if freeze_batchnorm and _is_batch_norm(layer):
            continue
        layer.trainable = True
        made_trainable += 1
        for sub in layer.submodules:  # a nested model may hold BatchNormalization layers
            if freeze_batchnorm and _is_batch_norm(sub):
                sub.trainable = False
    logger.info(
        "%s: %d of %d layers trainable (top %d, BatchNormalization %s)",
        model.name,
        made_trainable,
        total,
        count,
        "kept frozen" if freeze_batchnorm else "trainable",
    )
    return made_trainable
