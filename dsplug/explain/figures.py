"""Figures of attributions: the image the model saw with the attribution map over it.

Attribution maps are drawn with a diverging colour map centred at 0 (red: evidence for the
class, blue: against) over a grey copy of the colour image, with the front-end's time and
Mel-spaced frequency axes (:func:`dsplug.frontend.plot.freq_ticks`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsplug.artifacts import write_figure

if TYPE_CHECKING:
    from dsplug.explain.examples import Example
    from dsplug.recipe.schema import Recipe

__all__ = ["plot_example_grid", "plot_explanation"]

#: Diverging colour map of attributions (red: for the class, blue: against), centred at 0.
DIVERGING = "RdBu_r"


def _overlay(ax: Any, *, image: np.ndarray, attribution: np.ndarray, extent: tuple[float, float, float, float], limit: float) -> Any:
    """Draw the image in grey with the attribution over it; return the attribution artist."""
    grey = (np.clip(image, 0, 255) / 255.0) @ np.array([0.299, 0.587, 0.114])
    ax.imshow(grey, cmap="gray", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest", extent=extent)
    return ax.imshow(
        attribution, cmap=DIVERGING, vmin=-limit, vmax=limit, alpha=0.65, aspect="auto",
        interpolation="nearest", extent=extent,
    )


def plot_explanation(
    out: str | os.PathLike[str],
    *,
    image: np.ndarray,
    attribution: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    target_class: str,
    sample_rate: int,
    chunk_seconds: float,
    fmin: float,
    fmax: float | None,
    n_mels: int,
    title: str,
    start: float = 0.0,
    method: str = "",
) -> Path:
    """Write a two-panel PNG: the image the model saw, and the attribution map over it.

    Parameters
    ----------
    out : str or os.PathLike
        PNG file to write (parent folders are created).
    image : np.ndarray [shape=(H, W, 3)]
        The colour image (front-end output before normalisation), RGB in [0, 255], low
        frequencies in the last row.
    attribution : np.ndarray [shape=(H, W)]
        Attribution map (positive: for ``target_class``), drawn with a diverging colour map
        centred at 0 over a grey copy of the image.
    probabilities : np.ndarray [shape=(k,)]
        The model's class probabilities for the chunk.
    classes : sequence of str [length k]
        Class names.
    target_class : str
        The explained class.
    sample_rate : int
        Sample rate in Hz.
    chunk_seconds : float
        Chunk length in seconds (the time axis).
    fmin, fmax : float
        The front-end's Mel range in Hz (``fmax=None``: ``sample_rate / 2``).
    n_mels : int
        Mel bands of the front-end (for the Mel-spaced frequency ticks).
    title : str
        First line of the title (e.g. the file name).
    start : float
        Start of the chunk in its file, in seconds.
    method : str
        Attribution method, named in the right panel's title.

    Returns
    -------
    Path
        ``out``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from dsplug.frontend.plot import freq_ticks

    image = np.asarray(image, np.float32)
    attribution = np.asarray(attribution, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3 or attribution.shape != image.shape[:2]:
        raise ValueError(f"image (H, W, 3) and attribution (H, W) must match, got {image.shape} and {attribution.shape}")
    probs = np.asarray(probabilities, np.float64).reshape(-1)
    if probs.size != len(classes):
        raise ValueError(f"{probs.size} probabilities for {len(classes)} classes")
    height = image.shape[0]
    ticks = freq_ticks(height, n_mels=n_mels, sample_rate=sample_rate, fmin=fmin, fmax=fmax)
    extent = (start, start + chunk_seconds, height - 0.5, -0.5)
    limit = float(np.max(np.abs(attribution))) or 1.0

    fig = Figure(figsize=(10.0, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    left.imshow(np.clip(image / 255.0, 0, 1), aspect="auto", interpolation="nearest", extent=extent)
    left.set_title("image the model saw", fontsize=9)
    artist = _overlay(right, image=image, attribution=attribution, extent=extent, limit=limit)
    right.set_title(f"{method or 'attribution'} for class {target_class!r} (red: for, blue: against)", fontsize=9)
    for ax in (left, right):
        ax.set_yticks(ticks[0], ticks[1])
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (Hz, Mel scale)")
    fig.colorbar(artist, ax=right, label="attribution (probability units)")
    order = np.argsort(probs)[::-1][:6]
    shown = ", ".join(f"{classes[i]} {probs[i]:.2f}" for i in order)
    fig.suptitle(f"{title}\npredicted {classes[int(order[0])]}; p: {shown}", fontsize=10)
    return write_figure(fig, out, dpi=100)


def plot_example_grid(
    out: str | os.PathLike[str],
    *,
    examples: Sequence[Example],
    classes: Sequence[str],
    n: int,
    method: str,
    recipe: Recipe,
) -> Path:
    """Write a grid of overlays: one row per class, ``n`` correct then ``n`` incorrect files.

    Parameters
    ----------
    out : str or os.PathLike
        PNG file to write (parent folders are created).
    examples : sequence of Example
        The explained files (:func:`dsplug.explain.explain_examples`); a class with fewer than
        ``n`` files of a kind leaves panels empty.
    classes : sequence of str
        Class names, one row each.
    n : int
        Files per class and kind (columns: ``2 * n``).
    method : str
        Attribution method, named in the title.
    recipe : Recipe
        The run's recipe: its name, chunk length and front-end frequency range (the axes).

    Returns
    -------
    Path
        ``out``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from dsplug.frontend.plot import freq_ticks

    fig = Figure(figsize=(max(7.0, 2.8 * 2 * n + 1.5), 2.6 * len(classes) + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(classes), 2 * n, squeeze=False)
    artist = None
    for g, cls in enumerate(classes):
        for half, correct in enumerate((True, False)):
            chosen = [e for e in examples if e.label == cls and e.correct == correct]
            for j in range(n):
                ax = axes[g, half * n + j]
                if j >= len(chosen):
                    ax.set_axis_off()
                    if j == 0:
                        kind = "correct" if correct else "incorrect"
                        ax.text(0.5, 0.5, f"{cls}:\nno {kind} devel files", ha="center", va="center", fontsize=8, transform=ax.transAxes)
                    continue
                e = chosen[j]
                height = e.image.shape[0]
                ticks = freq_ticks(
                    height, n_mels=recipe.frontend.n_mels, sample_rate=recipe.data.sample_rate,
                    fmin=recipe.frontend.fmin, fmax=recipe.frontend.fmax,
                )
                limit = float(np.max(np.abs(e.attribution))) or 1.0
                extent = (e.start, e.start + recipe.data.chunk_seconds, height - 0.5, -0.5)
                artist = _overlay(ax, image=e.image, attribution=e.attribution / limit, extent=extent, limit=1.0)
                ax.set_yticks(ticks[0], ticks[1])
                ax.tick_params(labelsize=7)
                kind = "correct" if correct else "WRONG"
                ax.set_title(f"{Path(e.path).name}\n{kind}: {e.label} -> {e.predicted} (p {e.confidence:.2f})", fontsize=7)
                if half * n + j == 0:
                    ax.set_ylabel(f"{cls}\nHz (Mel)", fontsize=8)
                if g == len(classes) - 1:
                    ax.set_xlabel("time (s)", fontsize=7)
    if artist is not None:
        fig.colorbar(artist, ax=axes, shrink=0.6, label="attribution / max |attribution| of the panel")
    fig.suptitle(
        f"{recipe.name}: most confident correct (left) and incorrect (right) devel files per class\n"
        f"{method} for the predicted class (red: for, blue: against)",
        fontsize=9,
    )
    return write_figure(fig, out, dpi=100)
