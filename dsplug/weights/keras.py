"""Keras weight files (:class:`dsplug.plugin.KerasWeights`): choose, find offline, else download.

A named source resolves to one exact file, looked for in the folders of
:mod:`dsplug.weights.locate`. If the file is in none of them, Keras' own downloader
(:func:`tf_keras.utils.get_file`) fetches it into Keras' cache, with a socket timeout of
:data:`DOWNLOAD_TIMEOUT_S` seconds, unless the environment variable ``DSPLUG_OFFLINE`` is ``1``
(or ``true``/``yes``). If that fails, a :class:`~dsplug.errors.WeightsError` names the file, its
URL and the folders to put it in. Requested weights are never replaced by random ones.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from dsplug.plugin import KerasWeights
from dsplug.errors import WeightsError
from dsplug.weights.locate import ENV_OFFLINE, ENV_WEIGHTS_DIR, RECIPE_KEY, find_file, keras_cache_dir, search_dirs

logger = logging.getLogger(__name__)

__all__ = ["DOWNLOAD_TIMEOUT_S", "download_file", "offline", "pick_file", "resolve_keras_file"]

#: Socket timeout of a download attempt in seconds (connect and each read).
DOWNLOAD_TIMEOUT_S = 30.0

_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """True if ``$DSPLUG_OFFLINE`` forbids downloading weights (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in _TRUE


def pick_file(files: tuple[KerasWeights, ...], *, input_shape: tuple[int, ...], default_rows: int) -> KerasWeights:
    """The file Keras would load for this input shape, among one file per input size.

    A file trained at the input's size is preferred (square inputs only, as in Keras);
    otherwise the one for ``default_rows`` (the backbone's input size) or a size-independent one.

    Parameters
    ----------
    files : tuple of KerasWeights
        The alternatives, each with ``rows`` (or ``None`` for any size).
    input_shape : tuple of int
        (height, width, channels) the backbone is built for.
    default_rows : int
        The backbone's default input height (= width).
    """
    rows, cols = input_shape[0], input_shape[1]
    for wf in files:
        if wf.rows is not None and wf.rows == rows == cols:
            return wf
    for wf in files:
        if wf.rows is None or wf.rows == default_rows:
            return wf
    return files[0]


def download_file(source: KerasWeights, *, timeout_s: float) -> Path:
    """Download a weights file into Keras' cache with Keras' own downloader.

    Parameters
    ----------
    source : KerasWeights
        The file to fetch from its URL; checked against its MD5 digest when known.
    timeout_s : float
        Socket timeout in seconds for connecting and for each read.

    Returns
    -------
    Path
        The downloaded file (in ``$KERAS_HOME/models`` or ``~/.keras/models``).

    Raises
    ------
    OSError, ValueError, Exception
        Whatever :func:`tf_keras.utils.get_file` raises (no network, HTTP error, bad hash).
    """
    import tf_keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        path = tf_keras.utils.get_file(
            source.file_name,
            origin=source.url,
            file_hash=source.md5,
            cache_subdir="models",
            cache_dir=str(keras_cache_dir()),
        )
    finally:
        socket.setdefaulttimeout(previous)
    return Path(path)


def _where_to_put(source: KerasWeights, *, weights_dir: str | os.PathLike[str] | None) -> str:
    places = [
        f"{folder} ({label})" if folder is not None else f"<not set> ({label})"
        for folder, label in search_dirs(weights_dir=weights_dir)
    ]
    alias = source.file_names[1:]
    named = f" (named {source.file_name} or {alias[0]})" if alias else ""
    return (
        f"Download {source.file_name} from {source.url} and put it{named} in one of: "
        + "; ".join(places)
        + f". Set {RECIPE_KEY} (or ${ENV_WEIGHTS_DIR}) to the folder that holds it, "
        "or pass the file's path as model.backbone.weights."
    )


def resolve_keras_file(
    source: KerasWeights, *, key: str, backbone: str, weights_dir: str | os.PathLike[str] | None
) -> Path:
    """The local file of a Keras source: found offline, else downloaded (unless offline).

    Parameters
    ----------
    source : KerasWeights
        The declared file.
    key : str
        The source's name (``imagenet``), for messages.
    backbone : str
        The backbone's name, for messages.
    weights_dir : str or path-like or None
        The recipe's ``model.backbone.weights_dir``, searched first.

    Raises
    ------
    WeightsError
        The file is nowhere and may not or cannot be downloaded, or a local copy is corrupt.
    """
    found = find_file(source, weights_dir=weights_dir)
    if found is not None:
        return found
    where = _where_to_put(source, weights_dir=weights_dir)
    if offline():
        raise WeightsError(
            f"{key} weights for backbone {backbone!r} are not on this machine and "
            f"${ENV_OFFLINE} forbids downloading them. {where}"
        )
    logger.info("downloading %s weights for %s from %s", key, backbone, source.url)
    try:
        return download_file(source, timeout_s=DOWNLOAD_TIMEOUT_S)
    except Exception as err:  # get_file raises bare Exception on URL errors
        raise WeightsError(
            f"{key} weights for backbone {backbone!r} are not on this machine and downloading "
            f"them failed ({type(err).__name__}: {err}). {where}"
        ) from err
