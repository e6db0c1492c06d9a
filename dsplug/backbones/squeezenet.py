"""SqueezeNet 1.1 (Iandola et al. 2016, "SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters and <0.5MB model size", v1.1 variant of the DeepScale release) as a feature extractor.

Layout (stride-2 stages as in v1.1; ``fire(s, e)`` = 1x1 squeeze conv with ``s`` filters, then
1x1 and 3x3 expand convs with ``e`` filters each, concatenated to ``2e`` channels; every conv is
followed by ReLU)::

    conv1 64 3x3/2 valid -> maxpool 3/2 -> fire2(16,64) fire3(16,64) -> maxpool 3/2
    -> fire4(32,128) fire5(32,128) -> maxpool 3/2
    -> fire6(48,192) fire7(48,192) fire8(64,256) fire9(64,256)  => (batch, h, w, 512)

The classifier (dropout, conv10, global pooling) is left out: the head brings its own dropout.
At 224x224 the features are 13x13x512; the smallest input is 32x32 (1x1 features).

Keras ships no SqueezeNet weights, so :attr:`SqueezeNetV1.weight_sources` is empty and
``weights: imagenet`` is an error; pass the path of a weights file instead. The layers are
created in the order of the widely used Keras port (rcmalli/keras-squeezenet, converted from the
Caffe release, also used by DeepSpectrumLite), so its notop HDF5 file is expected to load by
layer order; that file was not available offline to check.

Preprocessing is ``"caffe"`` (RGB -> BGR, ImageNet mean subtracted, no scaling), because the
Caffe-trained SqueezeNet 1.1 weights and their Keras port expect it.
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf
import tf_keras

from dsplug.plugin import Backbone
from dsplug.backbones.base import preprocess_images

__all__ = ["SqueezeNetV1", "squeezenet_v1_1"]

#: (fire id, squeeze filters, expand filters); a max pool follows fire3 and fire5.
_FIRES: tuple[tuple[int, int, int], ...] = (
    (2, 16, 64),
    (3, 16, 64),
    (4, 32, 128),
    (5, 32, 128),
    (6, 48, 192),
    (7, 48, 192),
    (8, 64, 256),
    (9, 64, 256),
)
_POOL_AFTER = {3: "pool3", 5: "pool5"}


def _fire(x: tf.Tensor, *, fire_id: int, squeeze: int, expand: int) -> tf.Tensor:
    prefix = f"fire{fire_id}_"
    x = tf_keras.layers.Conv2D(squeeze, 1, padding="valid", name=prefix + "squeeze1x1")(x)
    x = tf_keras.layers.ReLU(name=prefix + "relu_squeeze1x1")(x)
    left = tf_keras.layers.Conv2D(expand, 1, padding="valid", name=prefix + "expand1x1")(x)
    left = tf_keras.layers.ReLU(name=prefix + "relu_expand1x1")(left)
    right = tf_keras.layers.Conv2D(expand, 3, padding="same", name=prefix + "expand3x3")(x)
    right = tf_keras.layers.ReLU(name=prefix + "relu_expand3x3")(right)
    return tf_keras.layers.Concatenate(axis=-1, name=prefix + "concat")([left, right])


def squeezenet_v1_1(*, input_shape: tuple[int, int, int]) -> tf_keras.Model:
    """Build SqueezeNet 1.1 without its classifier, randomly initialised.

    Parameters
    ----------
    input_shape : tuple[int, int, int]
        (height, width, 3), height and width >= 32.

    Returns
    -------
    tf_keras.Model
        Maps (batch, height, width, 3) float32 to (batch, h, w, 512) features.
    """
    inputs = tf_keras.Input(shape=input_shape, name="input")
    x = tf_keras.layers.Conv2D(64, 3, strides=2, padding="valid", name="conv1")(inputs)
    x = tf_keras.layers.ReLU(name="relu_conv1")(x)
    x = tf_keras.layers.MaxPooling2D(pool_size=3, strides=2, name="pool1")(x)
    for fire_id, squeeze, expand in _FIRES:
        x = _fire(x, fire_id=fire_id, squeeze=squeeze, expand=expand)
        if fire_id in _POOL_AFTER:
            x = tf_keras.layers.MaxPooling2D(pool_size=3, strides=2, name=_POOL_AFTER[fire_id])(x)
    return tf_keras.Model(inputs, x, name="squeezenet_v1_1")


class SqueezeNetV1(Backbone):
    """SqueezeNet 1.1 (Iandola et al. 2016): 224 px, caffe preprocessing, 512 channels, no
    bundled weights."""

    input_size: ClassVar[tuple[int, int]] = (224, 224)
    #: Smallest height and width accepted.
    min_input_size: ClassVar[int] = 32

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """RGB -> BGR and ImageNet mean subtraction ("caffe" mode): BGR images, mean-free, roughly in
        [-124, 152]; shapes as :meth:`dsplug.plugin.Backbone.preprocess`."""
        return preprocess_images(images, mode="caffe")

    def build(self, *, input_shape: tuple[int, ...]) -> tf_keras.Model:
        """Build SqueezeNet 1.1 features, randomly initialised (see :func:`squeezenet_v1_1`)."""
        shape = self.image_shape(input_shape, name=self.name or type(self).__name__)
        return squeezenet_v1_1(input_shape=shape)
