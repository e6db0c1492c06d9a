"""PyTorch ``.pth`` state dicts converted once into a cached Keras file.

The state dict is read without PyTorch (:func:`dsplug.weights.pth.load_torch_state_dict`),
mapped layer by layer onto the Keras model with the backbone's
:meth:`~dsplug.plugin.Backbone.torch_mapping` (:func:`assign_torch_state`) and saved as
``<backbone>-<sha256[:16]>-keras<version>.h5`` in the cache folder: ``weights_dir`` if given,
else ``~/.cache/dsplug/weights``. Later builds load that file. If no cache folder is writable the
conversion is simply redone at each build (about a second).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dsplug.errors import WeightsError
from dsplug.weights.locate import digest
from dsplug.weights.pth import load_torch_state_dict

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

logger = logging.getLogger(__name__)

__all__ = ["CONVERTER_VERSION", "assign_torch_state", "default_cache_dir", "load_torch_file"]

#: Bumped whenever the Keras layer order or the conversion changes (old caches are ignored).
CONVERTER_VERSION = 1


def default_cache_dir() -> Path:
    """Return ``~/.cache/dsplug/weights`` (converted Keras weights)."""
    return Path.home() / ".cache" / "dsplug" / "weights"


def _torch_arrays(layer: tf_keras.layers.Layer, module: str, state: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The layer's weights, in Keras order and layout, from the PyTorch tensors of ``module``."""
    import tf_keras

    def get(suffix: str) -> np.ndarray:
        key = f"{module}.{suffix}"
        if key not in state:
            raise KeyError(key)
        return state[key]

    if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
        arrays = [get("weight").transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        if layer.use_bias:
            arrays.append(get("bias"))
        return arrays
    if isinstance(layer, tf_keras.layers.Conv2D):
        arrays = [get("weight").transpose(2, 3, 1, 0)]  # (O, I, kh, kw) -> (kh, kw, I, O)
        if layer.use_bias:
            arrays.append(get("bias"))
        return arrays
    if isinstance(layer, tf_keras.layers.BatchNormalization):
        return [get("weight"), get("bias"), get("running_mean"), get("running_var")]
    if isinstance(layer, tf_keras.layers.Dense):
        return [get("weight").T, get("bias")]  # (out, in) -> (in, out)
    raise TypeError(f"no PyTorch conversion for layer type {type(layer).__name__}")


def assign_torch_state(
    model: tf_keras.Model,
    state: dict[str, np.ndarray],
    *,
    mapping: dict[str, str],
    source: str,
    unused_prefixes: tuple[str, ...] = (),
) -> None:
    """Set every weight of ``model`` from a PyTorch state dict, checking names and shapes.

    Parameters
    ----------
    model : tf_keras.Model
        The Keras model; each layer with weights must be in ``mapping``.
    state : dict of str to np.ndarray
        The PyTorch state dict (see :func:`dsplug.weights.pth.load_torch_state_dict`).
    mapping : dict of str to str
        Keras layer name -> PyTorch module name (:meth:`dsplug.plugin.Backbone.torch_mapping`).
    source : str
        The file the state dict came from, for messages.
    unused_prefixes : tuple of str
        Tensors that may be left over (e.g. the classifier, ``_fc.``, for a model without top).
        ``num_batches_tracked`` counters are always ignored.

    Raises
    ------
    WeightsError
        If a tensor is missing, has the wrong shape, or a tensor of the file is not used (the
        file is for another architecture).
    """
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        module = mapping.get(layer.name)
        if module is None:
            raise WeightsError(f"layer {layer.name!r} has no PyTorch counterpart in {source!r}")
        try:
            arrays = _torch_arrays(layer, module, state)
        except KeyError as err:
            raise WeightsError(
                f"{source!r} has no tensor {err.args[0]!r} for layer {layer.name!r}: the file "
                f"is not a state dict of {model.name}"
            ) from err
        expected = [tuple(w.shape) for w in layer.weights]
        got = [a.shape for a in arrays]
        if expected != got:
            raise WeightsError(
                f"{source!r}: tensors of {module!r} have shapes {got}, layer {layer.name!r} of "
                f"{model.name} needs {expected}; the file is for another architecture"
            )
        layer.set_weights([a.astype(np.float32) for a in arrays])
        used.update(k for k in state if k.startswith(module + "."))
    left = [
        k
        for k in state
        if k not in used and not k.endswith(".num_batches_tracked") and not k.startswith(unused_prefixes)
    ]
    if left:
        raise WeightsError(
            f"{source!r} has {len(left)} tensors that {model.name} does not use (first: "
            f"{left[0]!r}); the file is for another architecture"
        )


def _cache_file(folder: Path, *, backbone: str, sha256: str) -> Path:
    return folder / f"{backbone}-{sha256[:16]}-keras{CONVERTER_VERSION}.h5"


def _save_atomic(model: tf_keras.Model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.h5")
    try:
        model.save_weights(str(partial))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_torch_file(
    model: tf_keras.Model,
    *,
    path: Path,
    backbone: str,
    mapping: dict[str, str],
    weights_dir: str | os.PathLike[str] | None,
    unused_prefixes: tuple[str, ...] = (),
    sha256: str | None = None,
) -> None:
    """Load a ``.pth`` state dict into a freshly built model, through the conversion cache.

    Parameters
    ----------
    model : tf_keras.Model
        The backbone, randomly initialised.
    path : Path
        A PyTorch ``.pth``/``.pt`` state dict.
    backbone : str
        The backbone's name (cache file name, messages).
    mapping : dict of str to str
        Keras layer name -> PyTorch module name.
    weights_dir : str or path-like or None
        The recipe's weights folder: the cache goes there if given and writable.
    unused_prefixes : tuple of str
        State-dict tensors the model does not need (its classifier).
    sha256 : str or None
        The file's digest if already known.

    Raises
    ------
    WeightsError
        If the file cannot be read or does not fit the architecture.
    """
    sha = sha256 or digest(path, algorithm="sha256")
    folders = [Path(weights_dir).expanduser()] if weights_dir is not None else []
    folders.append(default_cache_dir())
    for folder in folders:
        cached = _cache_file(folder, backbone=backbone, sha256=sha)
        if not cached.is_file():
            continue
        try:
            model.load_weights(str(cached))
        except Exception as err:  # a damaged cache is rebuilt, never trusted
            logger.warning("ignoring unreadable cache %s (%s: %s)", cached, type(err).__name__, err)
            continue
        logger.info("loaded %s weights from cache %s", backbone, cached)
        return
    state = load_torch_state_dict(path)
    assign_torch_state(model, state, mapping=mapping, source=str(path), unused_prefixes=unused_prefixes)
    for folder in folders:
        cached = _cache_file(folder, backbone=backbone, sha256=sha)
        try:
            _save_atomic(model, cached)
        except Exception as err:  # a read-only or full folder: caching is optional
            logger.warning("cannot cache converted weights in %s (%s)", folder, err)
            continue
        logger.info("converted %s to Keras weights cached in %s", path, cached)
        return
