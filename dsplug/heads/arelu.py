"""AReLU, the attention-based rectified linear unit (Chen et al., 2020), as a tf_keras layer.

AReLU has two learnable scalars, ``alpha`` and ``beta``::

    f(x) = (1 + sigmoid(beta)) * x          for x >= 0
    f(x) = clip(alpha, 0.01, 0.99) * x      for x < 0

``alpha`` starts at 0.90 and ``beta`` at 2.0 (the paper's initial values). Both are trained
with the rest of the network: the original DeepSpectrumLite code used fixed slopes instead.
The layer is built from RELU, MINIMUM, LOGISTIC, MUL and ADD, which convert to TFLite builtin
ops (the scalar parameters are constant-folded at conversion).

Examples
--------
>>> import tf_keras
>>> from dsplug.heads.arelu import AReLU
>>> inputs = tf_keras.Input((8,))
>>> outputs = AReLU()(tf_keras.layers.Dense(4)(inputs))
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

__all__ = ["AReLU"]

#: Bounds of the negative slope ``alpha`` (the paper's clamp).
ALPHA_MIN = 0.01
ALPHA_MAX = 0.99


@tf_keras.utils.register_keras_serializable(package="dsplug")
class AReLU(tf_keras.layers.Layer):
    """Attention-based ReLU with a learnable negative slope and a learnable positive gain.

    Parameters
    ----------
    alpha : float
        Initial value of the negative-slope parameter (clamped to [0.01, 0.99] when applied).
    beta : float
        Initial value of the positive-gain parameter; the gain is ``1 + sigmoid(beta)``, in (1, 2).
    name : str or None
        Layer name (unique within a model).
    trainable : bool
        Whether ``alpha`` and ``beta`` are trained (default: yes).
    dtype : str, tf_keras.mixed_precision.Policy or None
        Layer dtype policy; ``None`` uses the global policy.

    Notes
    -----
    Input and output have the same shape and dtype (any shape). The parameters are float32
    variables, cast to the input dtype in :meth:`call` (mixed precision works).
    """

    def __init__(
        self,
        *,
        alpha: float = 0.90,
        beta: float = 2.0,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, trainable=trainable, dtype=dtype)
        self.alpha_init = float(alpha)
        self.beta_init = float(beta)

    def build(self, input_shape: tf.TensorShape) -> None:
        self.alpha = self.add_weight(
            name="alpha",
            shape=(),
            initializer=tf_keras.initializers.Constant(self.alpha_init),
            trainable=True,
        )
        self.beta = self.add_weight(
            name="beta",
            shape=(),
            initializer=tf_keras.initializers.Constant(self.beta_init),
            trainable=True,
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """Apply AReLU element-wise.

        Parameters
        ----------
        inputs : tf.Tensor [shape=(...), dtype=float]
            Pre-activations.

        Returns
        -------
        tf.Tensor [shape=(...), same dtype]
            ``(1 + sigmoid(beta)) * relu(x) + clip(alpha, 0.01, 0.99) * min(x, 0)``.

        Notes
        -----
        ``min(x, 0)`` is computed as ``x - relu(x)`` (exactly equal in floating point). With
        ``tf.minimum``, TFLite's int8 converter gives the pre-activation that feeds it the
        range of the minimum's output, [min, 0], so its positive half is clipped: harmless
        there, but it reads as a 45-step quantisation error and kept the preceding dense layer
        float32 in :func:`dsplug.deploy.convert.convert` (and if ``x`` also fed another op, that op
        would get the clipped values).
        """
        alpha = tf.clip_by_value(tf.cast(self.alpha, inputs.dtype), ALPHA_MIN, ALPHA_MAX)
        gain = 1.0 + tf.sigmoid(tf.cast(self.beta, inputs.dtype))
        positive = tf.nn.relu(inputs)
        return gain * positive + alpha * (inputs - positive)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"alpha": self.alpha_init, "beta": self.beta_init})
        return config
