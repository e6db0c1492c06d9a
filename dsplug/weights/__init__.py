"""Pretrained backbone weights: the one path that resolves and loads them.

A backbone declares its sources as data (:attr:`dsplug.plugin.Backbone.weight_sources`) and only
builds its architecture; :func:`build_backbone` resolves the recipe's ``model.backbone.weights``
before building (so a missing file fails fast), builds, then loads:

- ``None`` (``weights: none``): random initialisation, asked for explicitly;
- a source name (``imagenet``, ``audioset``, ...): the declared file, found offline (see
  :mod:`dsplug.weights.locate`), a :class:`~dsplug.plugin.KerasWeights` file downloaded if allowed
  (:mod:`dsplug.weights.keras`), a :class:`~dsplug.plugin.TorchWeights` state dict converted once
  (:mod:`dsplug.weights.torch`), a :class:`~dsplug.plugin.PackageWeights` read by the backbone's
  :meth:`~dsplug.plugin.Backbone.load_pretrained`;
- a path: a ``.pth`` state dict (converted like a TorchWeights source), else a file (or folder)
  handed to :meth:`~dsplug.plugin.Backbone.load_pretrained` (Keras' ``load_weights`` by default).

Requested weights are never replaced by random ones: every failure is a
:class:`~dsplug.errors.WeightsError` naming the file, where to put it and the fix.

Examples
--------
>>> from dsplug import registry
>>> from dsplug.weights import build_backbone
>>> plugin = registry.load("backbones", "densenet121")()  # doctest: +SKIP
>>> model = build_backbone(plugin, input_shape=(224, 224, 3), weights="imagenet")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dsplug.plugin import Backbone, KerasWeights, PackageWeights, TorchWeights, WeightSource
from dsplug.errors import WeightsError
from dsplug.weights.keras import DOWNLOAD_TIMEOUT_S, offline, pick_file, resolve_keras_file
from dsplug.weights.locate import (
    ENV_OFFLINE,
    ENV_WEIGHTS_DIR,
    RECIPE_KEY,
    check_weights_dir,
    find_file,
    missing_package_message,
    search_dirs,
)
from dsplug.weights.pth import load_torch_state_dict
from dsplug.weights.torch import load_torch_file

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

logger = logging.getLogger(__name__)

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "ENV_OFFLINE",
    "ENV_WEIGHTS_DIR",
    "RECIPE_KEY",
    "ResolvedWeights",
    "build_backbone",
    "check_weights",
    "declared_source",
    "load_weights",
    "resolve_weights",
    "search_dirs",
]

_TORCH_SUFFIXES = (".pth", ".pt")
_HDF5_SUFFIXES = (".h5", ".hdf5")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclasses.dataclass(frozen=True)
class ResolvedWeights:
    """A ``weights`` value resolved to what will be loaded.

    Attributes
    ----------
    key : str
        The recipe value (a source name or a path).
    path : Path
        The local file or folder.
    source : KerasWeights, PackageWeights or None
        The declared source it comes from; ``None`` for a path given by the user.
    """

    key: str
    path: Path
    source: WeightSource | None


def _name(plugin: Backbone) -> str:
    return plugin.name or type(plugin).__name__


def declared_source(plugin: Backbone, key: str, *, input_shape: tuple[int, ...]) -> WeightSource | None:
    """The declared source called ``key`` for this input shape (``None`` if not declared).

    A tuple of :class:`~dsplug.plugin.KerasWeights` (one file per input size) is narrowed to the
    file for ``input_shape`` (see :func:`dsplug.weights.keras.pick_file`).
    """
    declared = plugin.weight_sources.get(key)
    if isinstance(declared, tuple):
        return pick_file(declared, input_shape=input_shape, default_rows=int(plugin.input_size[0]))
    return declared


def _overrides_loader(plugin: Backbone) -> bool:
    return type(plugin).load_pretrained is not Backbone.load_pretrained


def _not_a_source(plugin: Backbone, key: str) -> WeightsError:
    offered = ", ".join(repr(s) for s in plugin.weight_sources) or "none"
    choices = "".join(f"{s!r}, " for s in plugin.weight_sources)
    missing = ""
    if os.sep in key or "." in key:  # looks like a path, not a source name
        missing = f" (the file {str(Path(key).expanduser())!r} does not exist; check the path)"
    return WeightsError(
        f"backbone {_name(plugin)!r} has no {key!r} weights (named sources: {offered}) and "
        f"{key!r} is not a file; pass {choices}none, or the path of a weights file of this "
        f"architecture as model.backbone.weights{missing}"
    )


def resolve_weights(
    plugin: Backbone,
    weights: str | os.PathLike[str] | None,
    *,
    input_shape: tuple[int, ...],
    weights_dir: str | os.PathLike[str] | None = None,
) -> ResolvedWeights | None:
    """Turn a ``weights`` value into the local file to load (before the model is built).

    Parameters
    ----------
    plugin : Backbone
        The backbone plugin instance.
    weights : str or path-like or None
        ``None`` (random initialisation), a key of ``plugin.weight_sources``, or a path.
    input_shape : tuple of int
        The shape the backbone will be built for (picks a per-size file).
    weights_dir : str or path-like or None
        The recipe's ``model.backbone.weights_dir``, searched first.

    Returns
    -------
    ResolvedWeights or None
        ``None`` for random initialisation.

    Raises
    ------
    WeightsError
        ``weights_dir`` is not a folder, the source is not declared and no such file exists, or
        the declared file is nowhere (the message says what to install or where to put it).
    """
    if weights is None:
        return None
    key = os.fspath(weights)
    name = _name(plugin)
    source = declared_source(plugin, key, input_shape=input_shape)
    check_weights_dir(weights_dir, backbone=name, wanted=source.file_name if source else "")
    if isinstance(source, KerasWeights):
        return ResolvedWeights(key, resolve_keras_file(source, key=key, backbone=name, weights_dir=weights_dir), source)
    if isinstance(source, PackageWeights):
        found = find_file(source, weights_dir=weights_dir)
        if found is None:
            raise WeightsError(missing_package_message(source, key=key, backbone=name, weights_dir=weights_dir))
        return ResolvedWeights(key, found, source)
    path = Path(key).expanduser()
    if not path.exists():
        raise _not_a_source(plugin, key)
    if path.is_dir() and not _overrides_loader(plugin):
        raise WeightsError(
            f"weights {key!r} for backbone {name!r} is a folder, not a weights file; pass a file "
            f"path, or put the file in a folder given as {RECIPE_KEY}"
        )
    return ResolvedWeights(key, path, None)


def check_weights(
    plugin: Backbone,
    weights: str | os.PathLike[str] | None,
    *,
    input_shape: tuple[int, ...],
    weights_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Check, without downloading or building anything, that ``weights`` can be loaded: the pre-flight.

    What :func:`resolve_weights` would raise is raised; a Keras file that is not on this machine
    is fine while downloads are allowed. A ``.pth`` path is read (its format, sizes and pickle
    checked) and needs a backbone that maps PyTorch names.

    Returns
    -------
    str
        What will be loaded, for the user (``random initialisation``, the file, or the download).

    Raises
    ------
    WeightsError
        As :func:`resolve_weights`; also an unreadable ``.pth`` or one the backbone cannot map.
    """
    if weights is None:
        return "random initialisation"
    key = os.fspath(weights)
    source = declared_source(plugin, key, input_shape=input_shape)
    if isinstance(source, KerasWeights) and not offline() and find_file(source, weights_dir=weights_dir) is None:
        check_weights_dir(weights_dir, backbone=_name(plugin), wanted=source.file_name)
        return f"{key} weights: {source.file_name}, downloaded from {source.url} when the run starts"
    resolved = resolve_weights(plugin, key, input_shape=input_shape, weights_dir=weights_dir)
    assert resolved is not None
    if resolved.source is None and resolved.path.suffix in _TORCH_SUFFIXES:
        if type(plugin).torch_mapping is Backbone.torch_mapping:
            raise WeightsError(
                f"backbone {_name(plugin)!r} cannot read PyTorch state dicts such as {key!r} (it maps no "
                "PyTorch names); pass a Keras weights file as model.backbone.weights"
            )
        load_torch_state_dict(resolved.path)
    elif resolved.source is None and resolved.path.is_file() and not _overrides_loader(plugin):
        _check_weights_file(resolved.path, key=key, backbone=_name(plugin))
    return f"{key} weights: {resolved.path}"


def _check_weights_file(path: Path, *, key: str, backbone: str) -> None:
    """A weights file given by path must be what Keras reads: HDF5 (``.h5``, ``.hdf5``)."""
    fix = "pass weights saved by Keras (model.save_weights('x.weights.h5')) as model.backbone.weights"
    if path.suffix.lower() not in _HDF5_SUFFIXES:
        what = "a whole saved model (.keras), not its weights" if path.suffix.lower() == ".keras" else f"not a weights file ({path.suffix or 'no extension'})"
        raise WeightsError(f"weights file {key!r} for backbone {backbone!r} is {what}; {fix}")
    with path.open("rb") as handle:
        if handle.read(8) != _HDF5_SIGNATURE:
            raise WeightsError(f"weights file {key!r} for backbone {backbone!r} is not an HDF5 file (no HDF5 signature); {fix}")


def load_weights(
    plugin: Backbone,
    model: tf_keras.Model,
    resolved: ResolvedWeights,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Load resolved weights into a freshly built backbone, or fail loudly.

    Parameters
    ----------
    plugin : Backbone
        The backbone plugin instance that built ``model``.
    model : tf_keras.Model
        The model ``plugin.build`` returned.
    resolved : ResolvedWeights
        From :func:`resolve_weights`.
    weights_dir : str or path-like or None
        The recipe's weights folder (where converted PyTorch weights are cached first).

    Raises
    ------
    WeightsError
        The file cannot be read or does not fit the architecture.
    """
    name = _name(plugin)
    source, path = resolved.source, resolved.path
    if isinstance(source, TorchWeights) or (source is None and path.suffix in _TORCH_SUFFIXES):
        # a user's .pth: the classifier tensors the backbone's own TorchWeights sources leave out
        declared = [s for s in plugin.weight_sources.values() if isinstance(s, TorchWeights)]
        unused = sum((s.unused_prefixes for s in ([source] if isinstance(source, TorchWeights) else declared)), ())
        load_torch_file(
            model,
            path=path,
            backbone=name,
            mapping=plugin.torch_mapping(model),
            weights_dir=weights_dir,
            unused_prefixes=unused,
            sha256=source.sha256 if source is not None else None,
        )
        return
    try:
        if isinstance(source, KerasWeights):
            model.load_weights(str(path))  # Keras Applications files: by layer order
        else:
            plugin.load_pretrained(model, path)
    except WeightsError:
        raise
    except Exception as err:  # h5py, TF and Keras raise many unrelated types here
        raise WeightsError(
            f"cannot load weights file {str(path)!r} into backbone {name!r} "
            f"({type(err).__name__}: {err}); the file must hold weights of this exact "
            "architecture without its top (notop), e.g. saved by model.save_weights"
        ) from err
    logger.info("loaded weights for %s from %s", name, path)


def build_backbone(
    plugin: Backbone,
    *,
    input_shape: tuple[int, ...],
    weights: str | os.PathLike[str] | None,
    weights_dir: str | os.PathLike[str] | None = None,
) -> tf_keras.Model:
    """Build a backbone and load the weights a recipe asks for: the one way to do both.

    Parameters
    ----------
    plugin : Backbone
        The backbone plugin instance (with its options).
    input_shape : tuple of int
        (height, width, 3) of the preprocessed images; ``(samples,)`` for an audio backbone.
    weights : str or path-like or None
        ``None`` (random initialisation), a declared source name, or a path.
    weights_dir : str or path-like or None
        The recipe's ``model.backbone.weights_dir``.

    Returns
    -------
    tf_keras.Model
        The feature extractor, with the requested weights.

    Raises
    ------
    WeightsError
        Requested weights are missing or unreadable (before the model is built where possible).
    RecipeError
        The backbone cannot take ``input_shape``.
    """
    resolved = resolve_weights(plugin, weights, input_shape=input_shape, weights_dir=weights_dir)
    model = plugin.build(input_shape=input_shape)
    if resolved is not None:
        load_weights(plugin, model, resolved, weights_dir=weights_dir)
    return model
