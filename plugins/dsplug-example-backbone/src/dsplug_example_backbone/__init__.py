"""A complete dsplug backbone plugin: a small VGG-style CNN for spectrogram images."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import tensorflow as tf
import tf_keras

from dsplug.api import Backbone, WeightsError


class TinyConv(Backbone):
    """Small VGG-style CNN (four conv blocks); random init or a weights file."""

    @dataclasses.dataclass
    class Options:
        width: int = 32  # filters of the first block; doubled in each following block

    input_size: ClassVar[tuple[int, int]] = (128, 128)
    weight_sources: ClassVar[tuple[str, ...]] = ()  # no pretrained weights: none or a file path
    min_input_size: ClassVar[int] = 32

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """[0, 255] RGB -> [-1, 1]."""
        return images / 127.5 - 1.0

    def build(self, *, weights: str | None, input_shape: tuple[int, ...], weights_dir: str | None = None) -> tf_keras.Model:
        """Four blocks of conv + batch norm + ReLU + pooling; features (batch, h/16, w/16, 8 x width)."""
        if weights is not None and not tf.io.gfile.exists(weights):
            raise WeightsError(f"tinyconv has no {weights!r} weights; use weights: none or a weights file path")
        shape = self.image_shape(input_shape, name=self.name or "tinyconv")  # RGB, sides >= min_input_size
        inputs = tf_keras.Input(shape)
        x = inputs
        for block in range(4):
            x = tf_keras.layers.Conv2D(self.options.width * 2**block, 3, padding="same", use_bias=False)(x)
            x = tf_keras.layers.BatchNormalization()(x)
            x = tf_keras.layers.ReLU()(x)
            x = tf_keras.layers.MaxPooling2D()(x)
        model = tf_keras.Model(inputs, x, name="tinyconv")
        if weights is not None:
            model.load_weights(weights)
        return model
