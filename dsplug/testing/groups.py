"""The contracts of heads, colour maps and augmentations."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dsplug import plugin as api
from dsplug.testing.common import check_doc, check_round_trip, check_tflite_builtins, checked_options, registered_name

__all__ = ["check_augmentation", "check_colormap", "check_head"]


# ------------------------------------------------------------------------------------- heads
def check_head(
    cls: type[api.Head],
    *,
    options: Mapping[str, Any] | api.Options | None = None,
    features_shape: tuple[int, ...] = (4, 4, 8),
    num_outputs: int = 3,
    batch: int = 4,
) -> dict[str, Any]:
    """Check a head plugin class: outputs per task, TFLite builtins, ``.keras`` round trip.

    For each task in :attr:`~dsplug.plugin.Head.tasks` the head builds on (batch, h, w, c)
    features, gives float32 (batch, num_outputs) outputs (probabilities summing to 1 for
    ``classification``, in (0, 1) for ``multilabel``, finite for ``regression``), converts to
    TFLite with builtin ops only, and survives a ``.keras`` save/load with non-default options.

    Parameters
    ----------
    cls : type
        A :class:`dsplug.plugin.Head` subclass.
    options : mapping, Options or None
        Options to build with (default: :func:`varied_options`).
    features_shape : tuple of int
        (h, w, channels) of the features.
    num_outputs : int
        Classes or targets.
    batch : int
        Inputs in the test batch.

    Returns
    -------
    dict
        ``{"parameters": {task: count}}``.
    """
    import tf_keras

    assert isinstance(cls, type) and issubclass(cls, api.Head), f"{cls!r} is not a dsplug.plugin.Head subclass"
    check_doc(cls)
    assert cls.tasks and set(cls.tasks) <= set(api.Task), f"{cls.__name__}.tasks: names of dsplug.plugin.Task members"
    chosen = checked_options(cls, options)
    inputs = np.random.default_rng(1).normal(size=(batch, *features_shape)).astype(np.float32)
    parameters = {}
    with tempfile.TemporaryDirectory(prefix="dsplug_check_") as tmp:
        for task in map(api.Task, cls.tasks):
            features = tf_keras.Input(features_shape, name="features")
            outputs = cls(options=chosen).build(features, num_outputs=num_outputs, task=task)
            model = tf_keras.Model(features, outputs, name=f"head_{task}")
            out = model(inputs, training=False)
            assert out.dtype == "float32", f"{task}: outputs must be float32, got {out.dtype}"
            out = out.numpy()
            assert out.shape == (batch, num_outputs) and np.isfinite(out).all(), f"{task}: outputs {out.shape}"
            if task.exclusive:
                np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5, err_msg="softmax rows must sum to 1")
            if task.multilabel:
                assert ((out > 0) & (out < 1)).all(), "multilabel: sigmoid outputs must be in (0, 1)"
            check_tflite_builtins(model, inputs, what=f"head {cls.__name__} ({task})")
            check_round_trip(model, inputs, folder=Path(tmp), what=f"head {cls.__name__} ({task})")
            parameters[task] = model.count_params()
    return {"parameters": parameters}


# --------------------------------------------------------------------------------- colormaps
def check_colormap(cls: type[api.Colormap]) -> np.ndarray:
    """Check a colour-map plugin class: a deterministic (256, 3) float32 table in [0, 1].

    Returns
    -------
    np.ndarray [shape=(256, 3), dtype=float32]
        The table.
    """
    assert isinstance(cls, type) and issubclass(cls, api.Colormap), f"{cls!r} is not a dsplug.plugin.Colormap subclass"
    check_doc(cls)
    checked_options(cls, None)
    table = cls().table()
    assert isinstance(table, np.ndarray), f"table() must return a NumPy array, got {type(table)!r}"
    shape, dtype = table.shape, table.dtype
    assert shape == (256, 3) and dtype == np.float32, f"table must be (256, 3) float32, not {shape} {dtype}"
    assert np.isfinite(table).all() and table.min() >= 0.0 and table.max() <= 1.0, "table values must be in [0, 1]"
    np.testing.assert_array_equal(cls().table(), table, err_msg="table() is not deterministic")
    _check_colormap_in_frontend(cls, table)
    return table


def _check_colormap_in_frontend(cls: type[api.Colormap], table: np.ndarray) -> None:
    """By its entry-point name, the map colours the front-end's images (every pixel a table row)."""
    import tensorflow as tf

    from dsplug.frontend.layers import SpectrogramImage
    from dsplug.frontend.colormaps import colormap_table

    name = registered_name(cls, "colormaps")
    np.testing.assert_array_equal(colormap_table(name), table, err_msg=f"colour map {name!r} resolves to another table")
    rate, samples, n_mels = 16000, 8000, 32
    noise = np.random.default_rng(3).normal(scale=0.1, size=samples)
    audio = (np.sin(2 * np.pi * 440 * np.arange(samples) / rate) + noise).astype(np.float32)[None]
    frames = SpectrogramImage(sample_rate=rate, n_mels=n_mels).n_frames(samples)
    # an image of the spectrogram's own size: no resize, so every pixel is one row of the table
    layer = SpectrogramImage(sample_rate=rate, n_mels=n_mels, colormap=colormap_table(name), image_size=(n_mels, frames))
    pixels = layer(tf.constant(audio)).numpy().reshape(-1, 1, 3)
    distance = np.abs(pixels - 255.0 * table[None]).sum(axis=-1).min(axis=1)
    assert distance.max() < 1e-2, f"the front-end's images are not coloured by {name!r}"


# ----------------------------------------------------------------------------- augmentations
def check_augmentation(
    cls: type[api.Augmentation],
    *,
    options: Mapping[str, Any] | api.Options | None = None,
    image_size: tuple[int, int] = (32, 48),
    batch: int = 4,
    classes: int = 3,
) -> None:
    """Check an augmentation plugin class on a tiny batch of normalised images.

    Strength 0 leaves images and labels unchanged; any strength keeps shapes and dtypes and
    gives finite images and labels in [0, 1]; the same seed gives the same result; it runs
    inside a ``tf.function`` with an unknown batch size (TF ops only).

    Parameters
    ----------
    cls : type
        A :class:`dsplug.plugin.Augmentation` subclass.
    options : mapping, Options or None
        Options to apply with (default: :func:`varied_options`).
    image_size : tuple of int
        (height, width) of the images.
    batch, classes : int
        Samples and classes of the test batch.
    """
    import tensorflow as tf

    assert isinstance(cls, type) and issubclass(cls, api.Augmentation), f"{cls!r} is not an Augmentation subclass"
    check_doc(cls)
    augmentation = cls(options=checked_options(cls, options))
    rng = np.random.default_rng(2)
    images = tf.constant(rng.normal(size=(batch, *image_size, 3)).astype(np.float32))
    labels = tf.one_hot(np.arange(batch) % classes, classes)
    fill = tf.constant([-1.0, 0.5, 2.0], tf.float32)
    seed = tf.constant([3, 4], tf.int32)

    specs = [tf.TensorSpec((None, *image_size, 3)), tf.TensorSpec((None, classes)), tf.TensorSpec((None,))]

    @tf.function(input_signature=specs)
    def apply(x: tf.Tensor, y: tf.Tensor, strength: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return augmentation.apply(x, y, strength, fill_value=fill, seed=seed)

    out, out_labels = augmentation.apply(images, labels, tf.zeros([batch]), fill_value=fill, seed=seed)
    np.testing.assert_array_equal(out.numpy(), images.numpy(), err_msg="strength 0 changed the images")
    np.testing.assert_array_equal(out_labels.numpy(), labels.numpy(), err_msg="strength 0 changed the labels")
    for strength in (tf.ones([batch]), tf.linspace(0.0, 1.0, batch)):
        eager = augmentation.apply(images, labels, strength, fill_value=fill, seed=seed)
        for x, y in (eager, apply(images, labels, strength)):
            assert x.shape == images.shape and x.dtype == images.dtype, f"images became {x.shape} {x.dtype}"
            assert y.shape == labels.shape and y.dtype == labels.dtype, f"labels became {y.shape} {y.dtype}"
            assert np.isfinite(x.numpy()).all(), "augmented images are not finite"
            assert ((y.numpy() >= 0) & (y.numpy() <= 1)).all(), "augmented labels left [0, 1]"
            np.testing.assert_array_equal(x.numpy(), eager[0].numpy(), err_msg="the same seed gave different images")
