"""The plugin contract checks, one per group: run them in your plugin's tests.

    from dsplug.testing import check_backbone

    def test_contract():
        check_backbone(MyBackbone, options={"width": 8})

:func:`check_backbone`, :func:`check_head`, :func:`check_colormap` and
:func:`check_augmentation` each build the plugin on tiny inputs with random weights and raise
``AssertionError`` naming the broken part of the contract (as keras-hub's ``run_backbone_test``,
``run_serialization_test`` and ``run_litert_export_test`` do for its models). dsplug's own test
suite runs them over every installed plugin (``tests/test_plugin_contract.py``), so a broken
third-party plugin shows up there too.

Common to every group: ``Options`` is a :class:`dsplug.api.Options` subclass whose defaults are
valid and which refuses unknown keys, and options survive their plain-data round trip (what a
run's ``recipe.yaml`` and a saved model keep). Backbones and heads are also converted to TFLite
with builtin ops only (outputs equal to Keras') and saved and loaded as ``.keras`` with
non-default options (identical outputs); a backbone's declared weight sources must fail with a
:class:`~dsplug.errors.WeightsError` when their files are nowhere, never give random weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from dsplug import api, registry

__all__ = ["check_augmentation", "check_backbone", "check_colormap", "check_head", "varied_options"]

#: Environment of the weights-missing check: nothing local, no download.
_ISOLATED_ENV = ("HOME", "KERAS_HOME", "TORCH_HOME", "DSPLUG_WEIGHTS_DIR", "DSPLUG_OFFLINE")


# ------------------------------------------------------------------------------------- options
def _candidates(field: Any, default: Any) -> list[Any]:
    """Values other than ``default`` worth trying for one option field."""
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        return [v for v in typing.get_args(annotation) if v != default]
    if isinstance(default, bool):
        return [not default]
    if isinstance(default, int):
        return [default + 1, default - 1]
    if isinstance(default, float):
        return [default / 2 if default else 0.1, default + 0.5, default * 2]
    return []


def varied_options(cls: type[api.Plugin]) -> api.Options:
    """Options of ``cls`` that differ from the defaults wherever a valid other value is found.

    Each field in turn gets another value of its type (the next integer, half the number, the
    other literal, the negated flag) if the options stay valid with it; the rest keep their
    defaults. Used for the save/load checks, so that options that are not serialised show up.
    """
    defaults = cls.Options()
    values: dict[str, Any] = {}
    for name, field in cls.Options.model_fields.items():
        for candidate in _candidates(field, getattr(defaults, name)):
            try:
                cls.Options.model_validate({**values, name: candidate})
            except ValidationError:
                continue
            values[name] = candidate
            break
    return cls.Options.model_validate(values)


def _options(cls: type[api.Plugin], options: Mapping[str, Any] | api.Options | None) -> api.Options:
    """Check the ``Options`` contract, then return the options to test with."""
    assert isinstance(cls.Options, type) and issubclass(cls.Options, api.Options), (
        f"{cls.__name__}.Options must subclass dsplug.api.Options, got {cls.Options!r}"
    )
    try:
        defaults = cls.Options()
    except ValidationError as err:
        raise AssertionError(f"{cls.__name__}.Options: the defaults are not valid: {err}") from err
    try:
        cls.Options.model_validate({"no_such_option_dsplug": 1})
    except ValidationError:
        pass
    else:
        raise AssertionError(f"{cls.__name__}.Options accepts unknown keys (extra='forbid' is required)")
    if options is None:
        chosen = varied_options(cls)
    elif isinstance(options, api.Options):
        chosen = options
    else:
        chosen = cls.Options.model_validate(dict(options))
    for opts in (defaults, chosen):
        revived = cls.Options.model_validate_json(opts.model_dump_json())
        assert revived == opts, f"{cls.__name__}.Options do not survive model_dump_json -> model_validate_json"
    return chosen


def _check_doc(cls: type[Any]) -> None:
    assert (cls.__doc__ or "").strip(), f"{cls.__name__} needs a docstring: its first line is shown by `dsplug plugins`"


def _registered_name(cls: type[api.Plugin], group: str) -> str:
    """The entry-point name ``cls`` is installed under (serialised models name it)."""
    if cls.name and cls.name in registry.names(group) and registry.load(group, cls.name) is cls:
        return cls.name
    for name in registry.names(group):
        if registry.load(group, name) is cls:
            return name
    raise AssertionError(
        f"{cls.__module__}.{cls.__qualname__} is not installed under the entry-point group "
        f"{api.GROUPS[group]!r}; register it in pyproject.toml and install the package"
    )


# ----------------------------------------------------------------------------- keras helpers
def _assert_close(got: np.ndarray, want: np.ndarray, *, what: str, rtol: float = 1e-3) -> None:
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)


def _check_tflite_builtins(model: Any, inputs: np.ndarray, *, what: str) -> set[str]:
    """Convert with TFLite builtin ops only and compare the interpreter with Keras."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    spec = tf.TensorSpec((None, *inputs.shape[1:]), tf.float32)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    # Convert the frozen graph directly: lowering to a SavedModel first traces every layer
    # again (minutes for the largest Keras Applications) and gives the same builtin ops.
    converter.experimental_lower_to_saved_model = False
    try:
        content = converter.convert()
    except Exception as err:  # the converter raises ConverterError and others
        raise AssertionError(f"{what} does not convert to TFLite builtin ops: {err}") from err
    interpreter = Interpreter(model_content=content)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(op.startswith("Flex") for op in ops), f"{what} needs Flex (select TF) ops: {sorted(ops)}"
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(inputs.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, inputs)
    interpreter.invoke()
    lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    _assert_close(lite, model(inputs, training=False).numpy(), what=f"{what}: TFLite differs from Keras")
    return ops


def _check_round_trip(model: Any, inputs: np.ndarray, *, folder: Path, what: str) -> None:
    """Save as ``.keras``, load, and compare outputs (identical up to float rounding)."""
    import tf_keras

    path = folder / f"{model.name}.keras"
    model.save(path)
    loaded = tf_keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded(inputs, training=False).numpy(),
        model(inputs, training=False).numpy(),
        rtol=1e-6,
        atol=1e-6,
        err_msg=f"{what}: outputs differ after a .keras save/load round trip",
    )


@contextlib.contextmanager
def _isolated(folder: Path) -> Iterator[Path]:
    """No weights anywhere: empty home and caches, no weights folder, no download."""
    saved = {key: os.environ.get(key) for key in _ISOLATED_ENV}
    for sub in ("home", "keras", "torch", "weights"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    os.environ.update(
        HOME=str(folder / "home"), KERAS_HOME=str(folder / "keras"), TORCH_HOME=str(folder / "torch"), DSPLUG_OFFLINE="1"
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
                    raise AssertionError(f"{name}: weights={key!r} with no file anywhere gave a model, not a WeightsError")
                source = declared_source(plugin, key, input_shape=input_shape)
                if source is not None:
                    assert source.file_name in message and str(empty) in message, (
                        f"{name}: the missing-weights error must name the file and where to put it: {message}"
                    )
        finally:
            del plugin.weight_sources  # back to the class's declaration


# --------------------------------------------------------------------------------- backbones
def _check_backbone_class(cls: type[api.Backbone]) -> None:
    _check_doc(cls)
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


def _check_train_step(model: Any, inputs: np.ndarray) -> None:
    """One step of a probe classifier changes every kernel and (almost) every weight."""
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
    tf_keras.optimizers.Adam(1e-3).apply_gradients(zip(grads, probe.trainable_weights))
    assert np.isfinite(float(loss)), "the training loss is not finite"
    changed = {v.name: not np.array_equal(before[v.name], v.numpy()) for v in model.trainable_weights}
    kernels = [name for name in changed if "kernel" in name]
    stuck = [name for name in kernels if not changed[name]]
    assert kernels and not stuck, f"one training step left kernels unchanged: {stuck[:5]}"
    # a BatchNormalization offset followed by another one gets a zero gradient, nothing else
    assert sum(changed.values()) >= 0.9 * len(changed), "one training step changed too few weights"


def _check_freezing(model: Any) -> None:
    """unfreeze_top: 0 freezes all; a count and a fraction unfreeze the top layers (not BN)."""
    import tf_keras

    from dsplug.backbones.base import unfreeze_top

    def is_bn(layer: Any) -> bool:
        return isinstance(layer, tf_keras.layers.BatchNormalization)

    layers = [layer for layer in model.layers if not isinstance(layer, tf_keras.layers.InputLayer)]
    assert unfreeze_top(model, layers=0) == 0 and model.trainable_weights == [], "freezing (layers=0) left trainable weights"
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
    assert made == sum(not is_bn(layer) for layer in layers) and model.trainable_weights, "unfreezing all exposed no weight"
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

    Checks: class attributes and ``Options``; :meth:`~dsplug.api.Backbone.preprocess` keeps
    shape and dtype, is finite and deterministic; :meth:`~dsplug.api.Backbone.build` returns a
    ``tf_keras.Model`` with float32, finite features (4-D for image backbones); preprocessing +
    backbone convert to TFLite with builtin ops only and give Keras' outputs; they survive a
    ``.keras`` save/load with non-default options; one training step changes every kernel;
    ``unfreeze_top`` freezes and unfreezes the top layers (BatchNormalization kept frozen); each
    declared weight source, and an undeclared name, fails with a WeightsError when the file is
    nowhere (never random weights).

    Parameters
    ----------
    cls : type
        A :class:`dsplug.api.Backbone` subclass, installed under ``dsplug.backbones``.
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

    from dsplug.model import BackbonePreprocess

    assert isinstance(cls, type) and issubclass(cls, api.Backbone), f"{cls!r} is not a dsplug.api.Backbone subclass"
    _check_backbone_class(cls)
    chosen = _options(cls, options)
    name = _registered_name(cls, "backbones")
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
    assert features.shape == (batch, *model.output_shape[1:]), f"features {features.shape} != output_shape {model.output_shape}"
    assert np.isfinite(features).all(), "features are not finite"

    raw_input = tf_keras.Input(input_shape, name="raw")
    normalised = raw_input if audio else BackbonePreprocess(backbone=name, options=chosen.model_dump(mode="json"))(raw_input)
    deployed = tf_keras.Model(raw_input, model(normalised), name="deployed")
    ops = _check_tflite_builtins(deployed, raw, what=f"backbone {name!r}")
    with tempfile.TemporaryDirectory(prefix="dsplug_check_") as tmp:
        _check_round_trip(deployed, raw, folder=Path(tmp), what=f"backbone {name!r}")
        _check_weights_missing(plugin, input_shape=input_shape, folder=Path(tmp) / "weights")
    _check_train_step(model, inputs)
    _check_freezing(model)
    return {"features_shape": features.shape[1:], "parameters": model.count_params(), "layers": len(model.layers), "tflite_ops": ops}


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

    For each task in :attr:`~dsplug.api.Head.tasks` the head builds on (batch, h, w, c)
    features, gives float32 (batch, num_outputs) outputs (probabilities summing to 1 for
    ``classification``, in (0, 1) for ``multilabel``, finite for ``regression``), converts to
    TFLite with builtin ops only, and survives a ``.keras`` save/load with non-default options.

    Parameters
    ----------
    cls : type
        A :class:`dsplug.api.Head` subclass.
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

    assert isinstance(cls, type) and issubclass(cls, api.Head), f"{cls!r} is not a dsplug.api.Head subclass"
    _check_doc(cls)
    assert cls.tasks and set(cls.tasks) <= {"classification", "multilabel", "regression"}, f"{cls.__name__}.tasks"
    chosen = _options(cls, options)
    inputs = np.random.default_rng(1).normal(size=(batch, *features_shape)).astype(np.float32)
    parameters = {}
    with tempfile.TemporaryDirectory(prefix="dsplug_check_") as tmp:
        for task in cls.tasks:
            features = tf_keras.Input(features_shape, name="features")
            model = tf_keras.Model(features, cls(options=chosen).build(features, num_outputs=num_outputs, task=task), name=f"head_{task}")
            out = model(inputs, training=False)
            assert out.dtype == "float32", f"{task}: outputs must be float32, got {out.dtype}"
            out = out.numpy()
            assert out.shape == (batch, num_outputs) and np.isfinite(out).all(), f"{task}: outputs {out.shape}, finite expected"
            if task == "classification":
                np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5, err_msg="classification: softmax rows must sum to 1")
            if task == "multilabel":
                assert ((out > 0) & (out < 1)).all(), "multilabel: sigmoid outputs must be in (0, 1)"
            _check_tflite_builtins(model, inputs, what=f"head {cls.__name__} ({task})")
            _check_round_trip(model, inputs, folder=Path(tmp), what=f"head {cls.__name__} ({task})")
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
    assert isinstance(cls, type) and issubclass(cls, api.Colormap), f"{cls!r} is not a dsplug.api.Colormap subclass"
    _check_doc(cls)
    _options(cls, None)
    table = cls().table()
    assert isinstance(table, np.ndarray), f"table() must return a NumPy array, got {type(table)!r}"
    assert table.shape == (256, 3) and table.dtype == np.float32, f"table must be (256, 3) float32, got {table.shape} {table.dtype}"
    assert np.isfinite(table).all() and table.min() >= 0.0 and table.max() <= 1.0, "table values must be in [0, 1]"
    np.testing.assert_array_equal(cls().table(), table, err_msg="table() is not deterministic")
    return table


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
        A :class:`dsplug.api.Augmentation` subclass.
    options : mapping, Options or None
        Options to apply with (default: :func:`varied_options`).
    image_size : tuple of int
        (height, width) of the images.
    batch, classes : int
        Samples and classes of the test batch.
    """
    import tensorflow as tf

    assert isinstance(cls, type) and issubclass(cls, api.Augmentation), f"{cls!r} is not a dsplug.api.Augmentation subclass"
    _check_doc(cls)
    augmentation = cls(options=_options(cls, options))
    rng = np.random.default_rng(2)
    images = tf.constant(rng.normal(size=(batch, *image_size, 3)).astype(np.float32))
    labels = tf.one_hot(np.arange(batch) % classes, classes)
    fill = tf.constant([-1.0, 0.5, 2.0], tf.float32)
    seed = tf.constant([3, 4], tf.int32)

    @tf.function(input_signature=[tf.TensorSpec((None, *image_size, 3), tf.float32), tf.TensorSpec((None, classes), tf.float32), tf.TensorSpec((None,), tf.float32)])
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
