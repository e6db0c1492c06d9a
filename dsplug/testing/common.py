"""Shared parts of the contract checks: options, registration, TFLite and ``.keras`` round trips."""

from __future__ import annotations

import contextlib
import sys
import typing
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from dsplug import plugin as api
from dsplug import registry

__all__ = [
    "assert_close",
    "check_doc",
    "check_round_trip",
    "check_tflite_builtins",
    "checked_options",
    "registered_name",
    "varied_options",
]


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


def checked_options(cls: type[api.Plugin], options: Mapping[str, Any] | api.Options | None) -> api.Options:
    """Check the ``Options`` contract, then return the options to test with."""
    assert isinstance(cls.Options, type) and issubclass(cls.Options, api.Options), (
        f"{cls.__name__}.Options must subclass dsplug.plugin.Options, got {cls.Options!r}"
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


def check_doc(cls: type[Any]) -> None:
    assert (cls.__doc__ or "").strip(), f"{cls.__name__} needs a docstring: its first line is shown by `dsplug plugins`"


def registered_name(cls: type[api.Plugin], group: str) -> str:
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


def assert_close(got: np.ndarray, want: np.ndarray, *, what: str, rtol: float = 1e-3) -> None:
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)


def check_tflite_builtins(model: Any, inputs: np.ndarray, *, what: str) -> set[str]:
    """Convert with TFLite builtin ops only, batch 1 as ``dsplug export`` does, and compare the
    interpreter with Keras, one input after another on one interpreter (no state may carry over)."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    spec = tf.TensorSpec((1, *inputs.shape[1:]), tf.float32)
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
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]
    keras = model(inputs, training=False).numpy()
    for row in [*range(len(inputs)), 0]:
        interpreter.set_tensor(index, inputs[row : row + 1])
        interpreter.invoke()
        got = interpreter.get_tensor(output)[0]
        assert_close(got, keras[row], what=f"{what}: TFLite differs from Keras on input {row} (after {row or 'none'})")
    return ops


@contextlib.contextmanager
def _direct_zip_seeks() -> Iterator[None]:
    """Seek directly in uncompressed zip members, as Python >= 3.12 does.

    A ``.keras`` file is a zip whose weights (an uncompressed HDF5 member) Keras reads through
    :class:`zipfile.ZipExtFile`; before Python 3.12 every backward seek there re-reads the member
    from its start, which makes loading a deep model take minutes (50 s instead of 5 s for
    DenseNet-201). Only the position bookkeeping changes; the bytes read are the same.
    """
    if sys.version_info >= (3, 12):
        yield
        return
    original = zipfile.ZipExtFile.seek

    def seek(self: zipfile.ZipExtFile, offset: int, whence: int = 0) -> int:
        if self._compress_type != zipfile.ZIP_STORED or self._decrypter is not None:
            return original(self, offset, whence)
        start = {0: 0, 1: self.tell(), 2: self._orig_file_size}[whence]
        position = min(max(start + offset, 0), self._orig_file_size)
        self._fileobj.seek(self._orig_compress_start + position)
        self._expected_crc = None  # a CRC over a partial read would be wrong
        self._left = self._compress_left = self._orig_file_size - position
        self._readbuffer, self._offset, self._eof = b"", 0, False
        return position

    zipfile.ZipExtFile.seek = seek  # type: ignore[method-assign]
    try:
        yield
    finally:
        zipfile.ZipExtFile.seek = original  # type: ignore[method-assign]


def check_round_trip(model: Any, inputs: np.ndarray, *, folder: Path, what: str) -> None:
    """Save as ``.keras``, load, and compare outputs (identical up to float rounding)."""
    import tf_keras

    path = folder / f"{model.name}.keras"
    model.save(path)
    with _direct_zip_seeks():
        loaded = tf_keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded(inputs, training=False).numpy(),
        model(inputs, training=False).numpy(),
        rtol=1e-6,
        atol=1e-6,
        err_msg=f"{what}: outputs differ after a .keras save/load round trip",
    )


