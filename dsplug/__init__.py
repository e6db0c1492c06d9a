"""dsplug: plugin-based on-device audio recognition by transfer learning.

The Python API of an exported model is :func:`load` (light: no TensorFlow is imported)::

    import dsplug
    model = dsplug.load("runs/demo")            # or "model-int8.tflite"
    result = model.predict("clip.ogg")          # or an array with sample_rate=...
    result.label, result.probabilities, result.chunk_labels
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# Models are built with tf_keras (Keras 2): tensorflow-model-optimization only supports it.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ start-up noise (CUDA probing, oneDNN notes)

from dsplug.version import __version__

if TYPE_CHECKING:  # pragma: no cover - typing only: the runtime is imported when load() runs
    from dsplug.runtime.model import Model

__all__ = ["__version__", "load"]


def load(path: str | os.PathLike[str], *, threads: int | None = None) -> Model:
    """Load an exported model for inference: a ``.tflite`` file or a run directory.

    Needs only the light runtime (ai-edge-litert, numpy, soundfile, soxr; no TensorFlow). The
    ``.tflite`` carries its own metadata (labels, sample rate, chunk length), so no other file
    is needed.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tflite`` exported by dsplug (any quantisation), or a run directory holding
        ``model.tflite``.
    threads : int, optional
        CPU threads of the interpreter (default: one).

    Returns
    -------
    dsplug.runtime.Model
        With :meth:`~dsplug.runtime.Model.predict`, :meth:`~dsplug.runtime.Model.stream`,
        :attr:`~dsplug.runtime.Model.labels` and :attr:`~dsplug.runtime.Model.sample_rate`.

    Raises
    ------
    dsplug.errors.ExportError
        The file is missing, not a TFLite model, or carries no (or contradictory) metadata.

    Examples
    --------
    >>> import dsplug
    >>> model = dsplug.load("runs/demo/model-int8.tflite")  # doctest: +SKIP
    >>> model.labels, model.sample_rate  # doctest: +SKIP
    (('T1', 'T2', 'T3', 'T4', 'T5_neutral'), 16000)
    """
    from dsplug.runtime.model import load_model

    return load_model(path, threads=threads)
