"""A complete dsplug backbone plugin: a small VGG-style CNN for spectrogram images."""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf
import tf_keras
from pydantic import Field

from dsplug.plugin import Backbone, Options


class TinyConv(Backbone):
    """Small VGG-style CNN (four conv blocks); random init or a weights file."""

    class Options(Options):
        width: int = Field(32, ge=1, le=512, description="Filters of the first block; doubled in each following block.")

    input_size: ClassVar[tuple[int, int]] = (128, 128)
    min_input_size: ClassVar[int] = 32
    # No pretrained weights: weight_sources stays empty, so `weights: none` or a file path.

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """[0, 255] RGB -> [-1, 1]."""
        return images / 127.5 - 1.0

    def build(self, *, input_shape: tuple[int, ...]) -> tf_keras.Model:
        """Four blocks of conv + batch norm + ReLU + pooling; features (batch, h/16, w/16, 8 x width)."""
        shape = self.image_shape(input_shape, name=self.name or "tinyconv")  # RGB, sides >= min_input_size
        inputs = tf_keras.Input(shape)
        x = inputs
        for block in range(4):
            x = tf_keras.layers.Conv2D(self.options.width * 2**block, 3, padding="same", use_bias=False)(x)
            x = tf_keras.layers.BatchNormalization()(x)
            x = tf_keras.layers.ReLU()(x)
            x = tf_keras.layers.MaxPooling2D()(x)
        return tf_keras.Model(inputs, x, name="tinyconv")
