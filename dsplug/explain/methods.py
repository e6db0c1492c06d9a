"""Attribution methods: which pixels of a normalised spectrogram image drove one class probability.

Every method explains ``classifier`` (normalised images -> probabilities) at one image, against
the same reference, *silence*: every pixel set to the normalised value of colour-map row 0
(``Pipeline.fill_value``). Each returns an ``(H, W)`` float32 map (summed over the colour
channels); positive values are evidence for the class, negative values evidence against it.

* :func:`integrated_gradients` -- integrated gradients (Sundararajan et al. 2017); the map sums
  (about) to ``p(image) - p(silence)`` (completeness).
* :func:`occlusion_map` -- a patch of silence slid over the image (Zeiler & Fergus 2014).
* :func:`shap_map` -- Owen values from the ``shap`` package's partition explainer.

Their common parameters:

classifier : tf_keras.Model
    Normalised images (batch, H, W, 3) -> probabilities (batch, k).
image : np.ndarray [shape=(H, W, 3), dtype=float32]
    Normalised image (the classifier's input).
target : int
    Index of the explained class.
silence : np.ndarray [shape=(3,)]
    Normalised value of silence, the reference (baseline image, patch fill, hidden pixels).

Examples
--------
>>> attribution = attribute(classifier, image, method="occlusion", target=1,
...                         silence=pipeline.fill_value)  # doctest: +SKIP
>>> band_fraction(attribution, rows=rows)  # doctest: +SKIP
0.83
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from dsplug.errors import ExportError, install_extra

__all__ = [
    "BATCH",
    "METHODS",
    "Method",
    "attribute",
    "band_fraction",
    "check_method",
    "integrated_gradients",
    "occlusion_map",
    "predict",
    "shap_map",
]

Method = Literal["shap", "occlusion", "gradients"]
#: The attribution methods, by name.
METHODS: tuple[str, ...] = ("shap", "occlusion", "gradients")
#: Images per forward pass of the classifier.
BATCH = 32


def predict(model: Any, inputs: np.ndarray) -> np.ndarray:
    """Outputs of ``model`` for ``inputs`` in batches of :data:`BATCH`, inference mode.

    Parameters
    ----------
    model : tf_keras.Model
        Any model of the pipeline (classifier, end-to-end).
    inputs : np.ndarray [shape=(n, ...)]
        Images (n, H, W, 3) or audio chunks (n, samples).

    Returns
    -------
    np.ndarray [shape=(n, k), dtype=float32]
    """
    from dsplug.pipeline import predict_batches

    return predict_batches(model, np.asarray(inputs, np.float32), batch_size=BATCH).astype(np.float32)


def check_method(method: str) -> None:
    """Raise :class:`ExportError` unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise ExportError(f"unknown explanation method {method!r}; choose one of {', '.join(METHODS)}")


def _check_image(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image, dtype=np.float32)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {array.shape}")
    return array


def integrated_gradients(
    classifier: Any, image: np.ndarray, *, target: int, silence: np.ndarray, steps: int = 32
) -> np.ndarray:
    """Integrated gradients of one class probability, from the silence image to ``image``.

    ``attribution = (x - x0) * mean_a grad p_target(x0 + a (x - x0))`` over ``steps`` midpoints
    ``a = (i + 0.5) / steps`` (the midpoint Riemann sum), summed over the colour channels.

    Parameters
    ----------
    classifier, image, target, silence
        As in the module docstring.
    steps : int
        Points on the path (more: a closer approximation of the integral).

    Returns
    -------
    np.ndarray [shape=(H, W), dtype=float32]
        Attribution per pixel in probability units; the total approximates
        ``p(image) - p(silence)``.
    """
    import tensorflow as tf

    x = _check_image(image)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    baseline = np.broadcast_to(np.asarray(silence, np.float32).reshape(1, 1, 3), x.shape)
    alphas = ((np.arange(steps, dtype=np.float32) + 0.5) / steps).reshape(-1, 1, 1, 1)
    total = np.zeros(x.shape, np.float64)
    for i in range(0, steps, BATCH):
        path = tf.constant(baseline + alphas[i : i + BATCH] * (x - baseline))
        with tf.GradientTape() as tape:
            tape.watch(path)
            probs = classifier(path, training=False)[:, target]
        total += tape.gradient(probs, path).numpy().sum(axis=0)
    return ((x - baseline) * total / steps).sum(axis=-1).astype(np.float32)


def occlusion_map(
    classifier: Any,
    image: np.ndarray,
    *,
    target: int,
    silence: np.ndarray,
    patch: int | None = None,
    stride: int | None = None,
) -> np.ndarray:
    """Drop of one class probability when square patches of the image are replaced by silence.

    Parameters
    ----------
    classifier, image, target, silence
        As in the module docstring.
    patch : int, optional
        Patch side in pixels; default ``max(2, min(H, W) // 8)``.
    stride : int, optional
        Step between patches in pixels; default ``max(1, patch // 2)``. The last patch of a
        row/column is aligned with the image edge, so every pixel is covered.

    Returns
    -------
    np.ndarray [shape=(H, W), dtype=float32]
        Per pixel, the mean of ``p(image) - p(image with the patch silenced)`` over the patches
        covering it (positive: the region supports the class).
    """
    x = _check_image(image)
    height, width = x.shape[:2]
    size = patch if patch is not None else max(2, min(height, width) // 8)
    if not 1 <= size <= min(height, width):
        raise ValueError(f"patch must be in [1, {min(height, width)}] pixels, got {size}")
    step = stride if stride is not None else max(1, size // 2)
    if step < 1:
        raise ValueError(f"stride must be >= 1 pixel, got {step}")

    def starts(length: int) -> list[int]:
        positions = list(range(0, length - size + 1, step))
        return positions if positions[-1] == length - size else positions + [length - size]

    corners = [(r, c) for r in starts(height) for c in starts(width)]
    fill = np.asarray(silence, np.float32).reshape(1, 1, 3)
    reference = float(predict(classifier, x[None])[0, target])
    drops = np.empty(len(corners), np.float32)
    for i in range(0, len(corners), BATCH):
        batch = np.repeat(x[None], len(corners[i : i + BATCH]), axis=0)
        for j, (r, c) in enumerate(corners[i : i + BATCH]):
            batch[j, r : r + size, c : c + size] = fill
        drops[i : i + len(batch)] = reference - predict(classifier, batch)[:, target]
    total = np.zeros((height, width), np.float64)
    count = np.zeros((height, width), np.float64)
    for drop, (r, c) in zip(drops, corners, strict=True):
        total[r : r + size, c : c + size] += drop
        count[r : r + size, c : c + size] += 1
    return (total / count).astype(np.float32)


def shap_map(
    classifier: Any,
    image: np.ndarray,
    *,
    target: int,
    silence: np.ndarray,
    max_evals: int = 500,
) -> np.ndarray:
    """Owen values (hierarchical SHAP) of one class probability, hidden pixels set to silence.

    Uses ``shap.Explainer`` with a ``shap.maskers.Image`` whose mask value is the silence image,
    which selects shap's partition explainer. Why this explainer: it only calls the model on
    NumPy batches, so it works with any Keras model (shap's Deep/GradientExplainer inspect the
    framework's graph and do not support ``tf_keras`` under Keras 3 reliably); its cost is bounded
    by ``max_evals`` whatever the image size; and masking with silence (not blur or inpainting,
    which need OpenCV) gives the same reference as the ``occlusion`` and ``gradients`` methods.

    Parameters
    ----------
    classifier, image, target, silence
        As in the module docstring.
    max_evals : int
        Model evaluations (more: finer regions, slower).

    Returns
    -------
    np.ndarray [shape=(H, W), dtype=float32]
        SHAP value per pixel (summed over colour channels); the total is
        ``p(image) - p(silence)``.

    Raises
    ------
    ExportError
        The ``shap`` package is not installed.
    """
    try:
        with warnings.catch_warnings():  # shap 0.51 uses matplotlib calls deprecated in 3.10
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            import shap
    except ImportError as err:
        raise ExportError(f"the shap method needs the shap package: {install_extra('explain')} (or use --method gradients)") from err
    x = _check_image(image)
    background = np.broadcast_to(np.asarray(silence, np.float32).reshape(1, 1, 3), x.shape).copy()
    masker = shap.maskers.Image(background, shape=x.shape)

    def model(batch: np.ndarray) -> np.ndarray:
        return predict(classifier, np.asarray(batch, np.float32))[:, target : target + 1]

    explainer = shap.Explainer(model, masker)
    values = explainer(x[None], max_evals=max_evals, batch_size=BATCH, silent=True).values
    return np.asarray(values, np.float32).reshape(*x.shape, -1)[..., 0].sum(axis=-1)


def attribute(
    classifier: Any,
    image: np.ndarray,
    *,
    method: Method,
    target: int,
    silence: np.ndarray,
    patch: int | None = None,
    stride: int | None = None,
    steps: int = 32,
    max_evals: int = 500,
) -> np.ndarray:
    """Attribution map of one normalised image by ``method``.

    Parameters
    ----------
    classifier, image, target, silence
        As in the module docstring.
    method : {"shap", "occlusion", "gradients"}
        :func:`shap_map`, :func:`occlusion_map` or :func:`integrated_gradients`.
    patch, stride : int, optional
        Occlusion patch side and step in pixels.
    steps : int
        Integrated-gradient steps.
    max_evals : int
        SHAP model evaluations.

    Returns
    -------
    np.ndarray [shape=(H, W), dtype=float32]
        Positive: evidence for class ``target``; negative: against it.

    Raises
    ------
    ExportError
        Unknown ``method`` (or shap missing).
    """
    check_method(method)
    if method == "gradients":
        return integrated_gradients(classifier, image, target=target, silence=silence, steps=steps)
    if method == "occlusion":
        return occlusion_map(classifier, image, target=target, silence=silence, patch=patch, stride=stride)
    return shap_map(classifier, image, target=target, silence=silence, max_evals=max_evals)


def band_fraction(attribution: np.ndarray, *, rows: np.ndarray) -> float:
    """Share of the positive attribution mass that lies in the given image rows.

    Parameters
    ----------
    attribution : np.ndarray [shape=(H, W)]
        An attribution map.
    rows : np.ndarray [shape=(H,), dtype=bool]
        The rows of interest (e.g. a frequency band, from
        :func:`dsplug.frontend.layers.image_freq_axis`).

    Returns
    -------
    float
        ``sum(max(a, 0)[rows]) / sum(max(a, 0))`` in [0, 1] (0 when nothing is positive).
    """
    positive = np.clip(np.asarray(attribution, np.float64), 0, None)
    total = positive.sum()
    return float(positive[np.asarray(rows, bool)].sum() / total) if total > 0 else 0.0
