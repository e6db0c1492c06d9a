"""Repeat padding inside the model: what a host zero-pads, the model tiles.

A clip shorter than the model's window reaches the model zero-padded in every host: MediaPipe's
``AudioClassifier`` cuts audio into windows and zero-fills the last one, the browser's
``classify a recording`` path does the same, and so do ``dsplug predict`` and dsplug's own data
pipeline. A recipe with ``data.pad_mode: repeat`` therefore puts :class:`RepeatPad` first in the
model: it finds the window's trailing run of exact zeros and, when that run is at least
``min_zeros`` samples long, fills it by repeating the samples before it. Training, evaluation
and every host then see the same input, so they decide the same.

The rule is on exact zeros (``x == 0``), the value every host pads with. A window of digital
silence (all zeros) is left as it is; a window ending in fewer than ``min_zeros`` zeros (a
recording whose quiet tail happens to round to zero) is left as it is too.

The ops (NOT_EQUAL, CAST, MUL, REDUCE_MAX, GREATER_EQUAL, SELECT, FLOOR_MOD, GATHER) are TFLite
builtins, and the layer sits outside the quantised classifier, so it runs in float32 in every
export mode.

Examples
--------
>>> import numpy as np
>>> layer = RepeatPad(min_zeros=2)
>>> layer(np.array([[1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0]], np.float32)).numpy()
array([[1., 2., 3., 1., 2., 3., 1.]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

__all__ = ["RepeatPad", "min_zeros_for"]

#: The shortest trailing run of zeros treated as padding, in seconds (10 ms).
MIN_PADDING_SECONDS = 0.01


def min_zeros_for(sample_rate: int) -> int:
    """Samples in :data:`MIN_PADDING_SECONDS` at ``sample_rate`` Hz (at least 1)."""
    return max(1, round(MIN_PADDING_SECONDS * sample_rate))


@tf_keras.utils.register_keras_serializable(package="dsplug")
class RepeatPad(tf_keras.layers.Layer):
    """Fill each window's trailing zeros by tiling the samples before them.

    Parameters
    ----------
    min_zeros : int
        The shortest trailing run of exact zeros (samples) that counts as padding; shorter runs
        and all-zero windows pass unchanged.

    Notes
    -----
    Input and output have shape (batch, samples), float32. For a window ``x`` of ``n`` samples
    whose last non-zero sample is at index ``k - 1`` with ``n - k >= min_zeros`` and ``k >= 1``,
    the output is ``x[i mod k]`` for ``i = 0..n-1`` (``numpy.resize(x[:k], n)``).
    """

    def __init__(self, *, min_zeros: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if min_zeros < 1:
            raise ValueError(f"min_zeros must be >= 1, got {min_zeros}")
        self.min_zeros = int(min_zeros)

    def call(self, audio: tf.Tensor) -> tf.Tensor:
        """Tile the signal of each (batch, samples) window over its zero padding."""
        n = tf.shape(audio)[1]
        positions = tf.cast(tf.range(1, n + 1), tf.float32)[tf.newaxis, :]  # 1..n
        nonzero = tf.cast(tf.not_equal(audio, 0.0), tf.float32)
        # k: the count of samples up to and including the last non-zero one (0: silent window)
        signal = tf.cast(tf.reduce_max(nonzero * positions, axis=1), tf.int32)
        padded = tf.logical_and(signal > 0, n - signal >= self.min_zeros)
        period = tf.where(padded, signal, tf.fill(tf.shape(signal), n))
        index = tf.math.floormod(tf.range(n)[tf.newaxis, :], period[:, tf.newaxis])
        return tf.gather(audio, index, batch_dims=1)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        """Unchanged: (batch, samples)."""
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "min_zeros": self.min_zeros}
