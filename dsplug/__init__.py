"""dsplug: plugin-based on-device audio recognition by transfer learning.

The Python API of an exported model is :func:`load` (light: no TensorFlow is imported)::

    import dsplug
    model = dsplug.load("runs/demo")            # or "model-int8.tflite"
    result = model.predict("clip.ogg")          # or an array with sample_rate=...
    result.label, result.probabilities, result.chunk_labels

Training is :func:`run` (the ``train`` extra), what ``dsplug run`` does::

    result = dsplug.run("recipes/demo.yaml", overrides=["train.final_fit=false"])
    result.test_uar, result.run_dir
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
    from dsplug.workflows.run import RunResult

__all__ = ["__version__", "load", "run"]


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
        :attr:`~dsplug.runtime.Model.classes` and :attr:`~dsplug.runtime.Model.sample_rate`.

    Raises
    ------
    dsplug.errors.ExportError
        The file is missing, not a TFLite model, or carries no (or contradictory) metadata.

    Examples
    --------
    >>> import dsplug
    >>> model = dsplug.load("runs/demo/model-int8.tflite")  # doctest: +SKIP
    >>> model.classes, model.sample_rate  # doctest: +SKIP
    (('T1', 'T2', 'T3', 'T4', 'T5_neutral'), 16000)
    """
    from dsplug.runtime.model import load_model

    return load_model(path, threads=threads)


def run(recipe: str | os.PathLike[str], *, overrides: list[str] | tuple[str, ...] = (), run_dir: str | os.PathLike[str] | None = None) -> RunResult:
    """Train, evaluate and export one recipe, as ``dsplug run RECIPE`` does (needs the ``train`` extra).

    Everything is checked before any work; a finished run of the same recipe in ``run_dir`` is
    reported again, never rewritten, and an interrupted one resumes. Progress goes to
    ``logging`` (logger ``dsplug``), not to the terminal.

    Parameters
    ----------
    recipe : str or os.PathLike
        A recipe YAML file.
    overrides : sequence of str
        ``KEY=VALUE`` recipe changes, as ``--set`` takes them (``"train.lr=0.001"``).
    run_dir : str or os.PathLike, optional
        The run directory (default ``runs/NAME``, as the command line).

    Returns
    -------
    dsplug.workflows.run.RunResult
        ``run_dir``, ``metrics``, ``data``, ``export``, ``reused`` and ``test_uar``.

    Raises
    ------
    dsplug.errors.DsplugError
        A bad recipe, manifest or audio file, a run directory in use or holding another recipe's
        run, or a recipe that sweeps several points (use ``dsplug sweep``).

    Examples
    --------
    >>> import dsplug
    >>> result = dsplug.run("recipes/demo.yaml", run_dir="runs/demo")  # doctest: +SKIP
    >>> round(result.test_uar, 3), result.reused  # doctest: +SKIP
    (0.948, False)
    """
    from dsplug.workflows.run import run_recipe

    return run_recipe(recipe, overrides=overrides, run_dir=run_dir)
