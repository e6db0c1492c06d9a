"""The built-in heads: ``mlp`` (DeepSpectrumLite's classifier), ``linear`` and ``regression``.

Each head pools the backbone's feature maps globally and adds its layers with the Keras
functional API. The last layer is an ``Activation`` with ``dtype="float32"``, so the model's
output stays float32 under a ``mixed_float16`` policy.

Layer names all start with ``head_`` (``head_pool``, ``head_dense``, ``head_arelu``,
``head_dropout``, ``head_logits``, ``head_output``), so the head's layers can be found in the
whole model.

Examples
--------
>>> import tf_keras
>>> from dsplug.heads.builtin import MLPHead
>>> features = tf_keras.Input((7, 7, 1024))
>>> head = MLPHead(options=MLPHead.Options(units=512, dropout=0.25))
>>> probs = head.build(features, num_outputs=4, task="classification")
>>> model = tf_keras.Model(features, probs)
"""

from __future__ import annotations

from typing import ClassVar, Literal

import tensorflow as tf
import tf_keras
from pydantic import Field

from dsplug.plugin import Head, Options, PluginError, Task, TaskName, TaskNotSupported
from dsplug.heads.arelu import AReLU

__all__ = ["LinearHead", "MLPHead", "RegressionHead"]

#: Global pooling of the backbone's feature maps (an option of every head).
Pooling = Literal["avg", "max"]


def _check_build_args(head: Head, *, num_outputs: int, task: str) -> None:
    """Raise PluginError if the head cannot build for this task or output count."""
    if task not in head.tasks:
        raise TaskNotSupported(
            f"head {head.name or type(head).__name__!r} does not support task {task!r}; "
            f"it supports {', '.join(head.tasks)}. Choose another head in model.head.name "
            "(e.g. 'regression' for regression, 'mlp' for classification)."
        )
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
        raise PluginError(f"a head needs num_outputs >= 1, got {num_outputs!r}")


def _pool(features: tf.Tensor, *, pooling: str) -> tf.Tensor:
    """Global pooling of feature maps (batch, h, w, c) -> (batch, c).

    Features that are already pooled, of shape (batch, c), pass through unchanged.
    """
    rank = features.shape.rank
    if rank == 2:
        return features
    if rank != 4:
        raise PluginError(
            f"a head expects backbone features of shape (batch, h, w, channels) or "
            f"(batch, channels), got shape {tuple(features.shape)}"
        )
    if pooling == "avg":
        return tf_keras.layers.GlobalAveragePooling2D(name="head_pool")(features)
    return tf_keras.layers.GlobalMaxPooling2D(name="head_pool")(features)


def _hidden(x: tf.Tensor, *, units: int, dropout: float) -> tf.Tensor:
    """Dense(units) + AReLU, then Dropout(dropout) when ``dropout > 0``: (batch, c) -> (batch, units)."""
    x = tf_keras.layers.Dense(units, name="head_dense")(x)
    x = AReLU(name="head_arelu")(x)
    return tf_keras.layers.Dropout(dropout, name="head_dropout")(x) if dropout > 0 else x


def _output(x: tf.Tensor, *, num_outputs: int, task: str) -> tf.Tensor:
    """Dense(num_outputs) + the task's activation, computed in float32."""
    logits = tf_keras.layers.Dense(num_outputs, name="head_logits")(x)
    return tf_keras.layers.Activation(Task(task).activation, dtype="float32", name="head_output")(
        logits
    )


class MLPHead(Head):
    """MLP head: global pooling -> Dense -> AReLU -> Dropout -> Dense -> softmax/sigmoid.

    The DeepSpectrumLite classifier (one hidden layer with AReLU and dropout).
    """

    class Options(Options):
        """Options of the ``mlp`` head (recipe section ``model.head``)."""

        units: int = Field(512, ge=1, le=65536, description="Hidden layer units. Paper: 512 (700 CSS, 128 RAVDESS).")
        dropout: float = Field(
            0.25, ge=0, lt=1, description="Dropout after the hidden layer. Paper: 0.25 (0.4 CSS, 0.5 RAVDESS)."
        )
        pooling: Pooling = Field("avg", description="Global pooling of the backbone's feature maps.")

    tasks: ClassVar[tuple[TaskName, ...]] = ("classification", "multilabel")

    def build(self, features: tf.Tensor, *, num_outputs: int, task: Task) -> tf.Tensor:
        """Pool, Dense(units) + AReLU + Dropout, then the task's output layer; arguments, shapes
        and errors as :meth:`dsplug.plugin.Head.build` (tasks: classification, multilabel).
        """
        _check_build_args(self, num_outputs=num_outputs, task=task)
        x = _pool(features, pooling=self.options.pooling)
        x = _hidden(x, units=self.options.units, dropout=self.options.dropout)
        return _output(x, num_outputs=num_outputs, task=task)


class LinearHead(Head):
    """Linear head: global pooling -> optional dropout -> Dense -> softmax/sigmoid."""

    class Options(Options):
        """Options of the ``linear`` head (recipe section ``model.head``)."""

        dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the pooled features; 0: no dropout layer.")
        pooling: Pooling = Field("avg", description="Global pooling of the backbone's feature maps.")

    tasks: ClassVar[tuple[TaskName, ...]] = ("classification", "multilabel")

    def build(self, features: tf.Tensor, *, num_outputs: int, task: Task) -> tf.Tensor:
        """Pool, optional Dropout, then the task's output layer; arguments, shapes and errors as
        :meth:`dsplug.plugin.Head.build` (tasks: classification, multilabel).
        """
        _check_build_args(self, num_outputs=num_outputs, task=task)
        x = _pool(features, pooling=self.options.pooling)
        if self.options.dropout > 0:
            x = tf_keras.layers.Dropout(self.options.dropout, name="head_dropout")(x)
        return _output(x, num_outputs=num_outputs, task=task)


class RegressionHead(Head):
    """Regression head: global pooling -> optional Dense + AReLU + Dropout -> linear Dense."""

    class Options(Options):
        """Options of the ``regression`` head (recipe section ``model.head``)."""

        units: int = Field(
            512, ge=0, le=65536, description="Units of the hidden layer (with AReLU); 0: no hidden layer (a linear model)."
        )
        dropout: float = Field(0.25, ge=0, lt=1, description="Dropout rate after the hidden layer (none without one).")
        pooling: Pooling = Field("avg", description="Global pooling of the backbone's feature maps.")

    tasks: ClassVar[tuple[TaskName, ...]] = ("regression",)

    def build(self, features: tf.Tensor, *, num_outputs: int, task: Task) -> tf.Tensor:
        """Add the regression head on top of ``features``.

        Parameters
        ----------
        features : tf.Tensor [shape=(batch, h, w, channels) or (batch, channels)]
            The backbone's feature maps (Keras symbolic tensor).
        num_outputs : int
            Number of regression targets (>= 1).
        task : {"regression"}
            The only supported task.

        Returns
        -------
        tf.Tensor [shape=(batch, num_outputs), dtype=float32]
            Predicted values (linear output, unbounded).

        Raises
        ------
        PluginError
            For a task other than ``regression``, or ``num_outputs < 1``.
        """
        _check_build_args(self, num_outputs=num_outputs, task=task)
        x = _pool(features, pooling=self.options.pooling)
        if self.options.units > 0:
            x = _hidden(x, units=self.options.units, dropout=self.options.dropout)
        return _output(x, num_outputs=num_outputs, task=task)
