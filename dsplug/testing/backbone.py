"""The backbone contract: :func:`check_backbone`."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dsplug import plugin as api
from dsplug.testing.common import check_doc, check_round_trip, check_tflite_builtins, checked_options, registered_name

__all__ = ["check_backbone"]

#: Environment of the weights-missing check: nothing local, no download.
_ISOLATED_ENV = ("HOME", "KERAS_HOME", "TORCH_HOME", "DSPLUG_WEIGHTS_DIR", "DSPLUG_OFFLINE")


@contextlib.contextmanager
def _isolated(folder: Path) -> Iterator[Path]:
    """No weights anywhere: empty home and caches, no weights folder, no download."""
    saved = {key: os.environ.get(key) for key in _ISOLATED_ENV}
    for sub in ("home", "keras", "torch", "weights"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    os.environ.update(
        HOME=str(folder / "home"),
        KERAS_HOME=str(folder / "keras"),
        TORCH_HOME=str(folder / "torch"),
        DSPLUG_OFFLINE="1",
    )
    os.environ.pop("DSPLUG_WEIGHTS_DIR", None)
    try:
        yield folder / "weights"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _absent(source: Any) -> Any:
    """The same source, its distribution (if any) not installed."""
    if isinstance(source, tuple):
        return tuple(_absent(s) for s in source)
    if isinstance(source, api.PackageWeights):
        return dataclasses.replace(source, distribution=f"{source.distribution}-absent-dsplug-check")
    return source


def _check_weights_missing(plugin: api.Backbone, *, input_shape: tuple[int, ...], folder: Path) -> None:
    """Declared sources whose files are nowhere, and an undeclared name, are WeightsErrors."""
    from dsplug.weights import build_backbone, declared_source

    name = plugin.name or type(plugin).__name__
    declared = dict(plugin.weight_sources)
    for key, value in declared.items():
        assert isinstance(key, str) and key and key != "none", f"{name}: weight source names must be non-empty strings"
        for source in value if isinstance(value, tuple) else (value,):
            assert isinstance(source, (api.KerasWeights, api.PackageWeights)), (
                f"{name}: weight_sources[{key!r}] must be KerasWeights/PackageWeights data, got {source!r}"
            )
    with _isolated(folder) as empty:
        plugin.weight_sources = {key: _absent(value) for key, value in declared.items()}
        try:
            for key in [*declared, "no_such_source_dsplug"]:
                try:
                    build_backbone(plugin, input_shape=input_shape, weights=key, weights_dir=str(empty))
                except api.WeightsError as err:
                    message = str(err)
                else:
                    raise AssertionError(f"{name}: weights={key!r} with no file anywhere gave a model, not an error")
                source = declared_source(plugin, key, input_shape=input_shape)
                if source is not None:
                    assert source.file_name in message and str(empty) in message, (
                        f"{name}: the missing-weights error must name the file and where to put it: {message}"
                    )
        finally:
            del plugin.weight_sources  # back to the class's declaration


def _check_backbone_class(cls: type[api.Backbone]) -> None:
    check_doc(cls)
    assert isinstance(cls.input_size, tuple) and len(cls.input_size) == 2, f"{cls.__name__}.input_size: (height, width)"
    assert all(isinstance(v, int) and v > 0 for v in cls.input_size), f"{cls.__name__}.input_size: positive ints"
    assert isinstance(cls.min_input_size, int) and cls.min_input_size > 0, f"{cls.__name__}.min_input_size"
    assert cls.input_kind in ("image", "audio"), f"{cls.__name__}.input_kind: 'image' or 'audio'"
    assert isinstance(cls.weight_sources, Mapping), f"{cls.__name__}.weight_sources: a mapping name -> source"


def _check_preprocess(plugin: api.Backbone, raw: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    out = plugin.preprocess(tf.constant(raw))
    assert tuple(out.shape) == raw.shape, f"preprocess changed the shape {raw.shape} -> {tuple(out.shape)}"
    assert out.dtype == tf.float32, f"preprocess must return float32, got {out.dtype}"
    assert np.isfinite(out.numpy()).all(), "preprocess gave non-finite values"
    again = plugin.preprocess(tf.constant(raw)).numpy()
    np.testing.assert_array_equal(out.numpy(), again, err_msg="preprocess is not deterministic")
    return out.numpy()


def _check_train_step(model: Any, inputs: np.ndarray, *, strict: bool) -> None:
    """One step of a probe classifier reaches every weight and changes the kernels.

    Every trainable weight must get a gradient (no weight cut off from the output). With
    ``strict`` (image backbones) every kernel must change and at least 90 % of the weights (a
    BatchNormalization offset followed by another one gets a zero gradient, nothing else); else
    (audio backbones, whose random-init front-end or frozen pretrained branch may give vanishing
    activations) every kernel with a non-vanishing gradient must change, and at least one does.
    """
    import tensorflow as tf
    import tf_keras

    model.trainable = True
    pooled = tf_keras.layers.GlobalAveragePooling2D()(model.output) if len(model.output_shape) == 4 else model.output
    probe = tf_keras.Model(model.input, tf_keras.layers.Dense(2, activation="softmax")(pooled))
    labels = tf.one_hot(np.arange(len(inputs)) % 2, 2)
    before = {v.name: v.numpy().copy() for v in model.trainable_weights}
    assert before, "the backbone has no trainable weights"
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf_keras.losses.categorical_crossentropy(labels, probe(inputs, training=True)))
    grads = tape.gradient(loss, probe.trainable_weights)
    assert np.isfinite(float(loss)), "the training loss is not finite"
    by_name = {v.name: g for v, g in zip(probe.trainable_weights, grads)}
    cut_off = [name for name in before if by_name.get(name) is None]
    assert not cut_off, f"no gradient reaches these weights: {cut_off[:5]}"
    tf_keras.optimizers.Adam(1e-3).apply_gradients(zip(grads, probe.trainable_weights))
    changed = {v.name: not np.array_equal(before[v.name], v.numpy()) for v in model.trainable_weights}
    kernels = [name for name in changed if "kernel" in name]
    assert kernels and any(changed[name] for name in kernels), "one training step changed no kernel"
    relevant = kernels if strict else [n for n in kernels if float(tf.reduce_max(tf.abs(by_name[n]))) > 1e-12]
    stuck = [name for name in relevant if not changed[name]]
    assert not stuck, f"one training step left kernels unchanged: {stuck[:5]}"
    if strict:
        assert sum(changed.values()) >= 0.9 * len(changed), "one training step changed too few weights"


def _check_freezing(model: Any) -> None:
    """unfreeze_top: 0 freezes all; a count and a fraction unfreeze the top layers (not BN)."""
    import tf_keras

    from dsplug.backbones.base import unfreeze_top

    def is_bn(layer: Any) -> bool:
        return isinstance(layer, tf_keras.layers.BatchNormalization)

    layers = [layer for layer in model.layers if not isinstance(layer, tf_keras.layers.InputLayer)]
    assert unfreeze_top(model, layers=0) == 0 and not model.trainable_weights, "layers=0 left trainable weights"
    made = unfreeze_top(model, layers=5)
    expected = [layer for layer in layers[-5:] if not is_bn(layer)]
    assert made == len(expected), f"unfreeze_top(5) made {made} layers trainable, expected {len(expected)}"
    wrong = [layer.name for layer in layers if layer.trainable != (layer in expected)]
    assert not wrong, f"unfreeze_top(5): wrong trainable flags on {wrong[:5]}"
    assert not any(layer.trainable for layer in layers if is_bn(layer)), "BatchNormalization must stay frozen"
    count = max(1, int(0.25 * len(layers) + 0.5))
    made = unfreeze_top(model, layers=0.25)
    assert made == sum(not is_bn(layer) for layer in layers[len(layers) - count :]), "unfreeze_top(0.25): wrong count"
    made = unfreeze_top(model, layers=1.0)
    assert made == sum(not is_bn(layer) for layer in layers) and model.trainable_weights, "unfreezing all failed"
    bn_weights = {id(w) for layer in layers if is_bn(layer) for w in layer.weights}
    assert not bn_weights & {id(w) for w in model.trainable_weights}, "BatchNormalization weights became trainable"


def check_backbone(
    cls: type[api.Backbone],
    *,
    options: Mapping[str, Any] | api.Options | None = None,
    input_shape: tuple[int, ...] | None = None,
    batch: int = 2,
) -> dict[str, Any]:
    """Check a backbone plugin class against the contract, with random weights on a tiny input.

    Checks: class attributes and ``Options``; :meth:`~dsplug.plugin.Backbone.preprocess` keeps
    shape and dtype, is finite and deterministic; :meth:`~dsplug.plugin.Backbone.build` returns a
    ``tf_keras.Model`` with float32, finite features (4-D for image backbones); preprocessing +
    backbone convert to TFLite with builtin ops only and give Keras' outputs; they survive a
    ``.keras`` save/load with non-default options; one training step changes every kernel;
    ``unfreeze_top`` freezes and unfreezes the top layers (BatchNormalization kept frozen); each
    declared weight source, and an undeclared name, fails with a WeightsError when the file is
    nowhere (never random weights).

    Parameters
    ----------
    cls : type
        A :class:`dsplug.plugin.Backbone` subclass, installed under ``dsplug.backbones``.
    options : mapping, Options or None
        Options to build with (default: :func:`varied_options`, non-default values).
    input_shape : tuple of int, optional
        Default: ``(min_input_size, min_input_size, 3)``; 1 s of audio for audio backbones.
    batch : int
        Inputs in the test batch.

    Returns
    -------
    dict
        ``{"features_shape", "parameters", "layers", "tflite_ops"}``.

    Raises
    ------
    AssertionError
        Naming the part of the contract that failed.
    """
    import tf_keras

    from dsplug.pipeline import BackbonePreprocess

    assert isinstance(cls, type) and issubclass(cls, api.Backbone), f"{cls!r} is not a dsplug.plugin.Backbone subclass"
    _check_backbone_class(cls)
    chosen = checked_options(cls, options)
    name = registered_name(cls, "backbones")
    plugin = cls(options=chosen)
    rng = np.random.default_rng(0)
    audio = plugin.input_kind == "audio"
    if input_shape is None:
        side = int(cls.min_input_size)
        input_shape = (int(cls.sample_rate or 16000),) if audio else (side, side, 3)
    if audio:
        raw = rng.uniform(-0.5, 0.5, (batch, *input_shape)).astype(np.float32)
        inputs = raw
    else:
        raw = rng.uniform(0.0, 255.0, (batch, *input_shape)).astype(np.float32)
        inputs = _check_preprocess(plugin, raw)

    model = plugin.build(input_shape=input_shape)
    assert isinstance(model, tf_keras.Model), f"build() must return a tf_keras.Model, got {type(model)!r}"
    features = model(inputs, training=False)
    assert features.dtype == "float32", f"features must be float32, got {features.dtype}"
    features = features.numpy()
    assert features.ndim == 4 or (audio and features.ndim == 2), (
        f"features must be (batch, h, w, channels){' or (batch, channels)' if audio else ''}, got {features.shape}"
    )
    assert features.shape == (batch, *model.output_shape[1:]), f"features {features.shape} vs {model.output_shape}"
    assert np.isfinite(features).all(), "features are not finite"

    raw_input = tf_keras.Input(input_shape, name="raw")
    options_data = chosen.model_dump(mode="json")
    normalised = raw_input if audio else BackbonePreprocess(backbone=name, options=options_data)(raw_input)
    deployed = tf_keras.Model(raw_input, model(normalised), name="deployed")
    ops = check_tflite_builtins(deployed, raw, what=f"backbone {name!r}")
    with tempfile.TemporaryDirectory(prefix="dsplug_check_") as tmp:
        check_round_trip(deployed, raw, folder=Path(tmp), what=f"backbone {name!r}")
        _check_weights_missing(plugin, input_shape=input_shape, folder=Path(tmp) / "weights")
    _check_train_step(model, inputs, strict=not audio)
    _check_freezing(model)
    return {
        "features_shape": features.shape[1:],
        "parameters": model.count_params(),
        "layers": len(model.layers),
        "tflite_ops": ops,
    }


