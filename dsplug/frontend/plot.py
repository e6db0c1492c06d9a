"""Plot front-end images exactly as the model sees them, with time and frequency axes.

Examples
--------
>>> plot_images(images, starts=chunks.starts, chunk_seconds=3.0, sample_rate=16000,
...             fmin=0.0, fmax=None, n_mels=128, out="chunks.png", title="a.wav")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dsplug.artifacts import write_figure
from dsplug.frontend.layers import image_freq_axis

logger = logging.getLogger(__name__)

__all__ = ["freq_ticks", "plot_images"]

#: Candidate frequency ticks in Hz; those inside the image's range are used.
_TICKS_HZ = (0, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)
_MAX_PANELS = 64


def freq_ticks(
    height: int, *, n_mels: int, sample_rate: int, fmin: float, fmax: float | None
) -> tuple[np.ndarray, list[str]]:
    """Frequency-axis ticks of a front-end image: row positions and labels in Hz.

    Candidate frequencies (0, 250, 500 Hz, 1, 2, 4, 8, 16, 32 kHz) inside ``[fmin, fmax]`` are
    placed on the image's Mel-spaced rows; a tick closer than ``height / 16`` rows to the one
    below it is dropped.

    Parameters
    ----------
    height : int
        Image height in pixels (rows; low frequencies in the last row).
    n_mels : int
        Mel bands of the front-end.
    sample_rate : int
        Sample rate in Hz.
    fmin, fmax : float
        The front-end's Mel range in Hz (``fmax=None``: ``sample_rate / 2``).

    Returns
    -------
    positions : np.ndarray [shape=(t,), dtype=float64]
        Row coordinates of the ticks (0 = top row), for ``Axes.set_yticks``.
    labels : list of str [length t]
        Their labels, e.g. ``"500"``, ``"2k"``.

    Examples
    --------
    >>> positions, labels = freq_ticks(128, n_mels=128, sample_rate=16000, fmin=0.0, fmax=None)
    >>> labels
    ['0', '250', '500', '1k', '2k', '4k', '8k']
    """
    rows_hz = image_freq_axis(
        height=height, n_mels=n_mels, sample_rate=sample_rate, fmin=fmin, fmax=fmax
    )
    rows_mel = librosa.hz_to_mel(rows_hz)[::-1]  # increasing, for np.interp
    rows = np.arange(height, dtype=np.float64)[::-1]
    top = sample_rate / 2 if fmax is None else fmax
    candidates = np.asarray([f for f in _TICKS_HZ if fmin <= f <= top], dtype=np.float64)
    # np.interp clamps: fmin and fmax land on the bottom and top rows.
    positions = np.interp(librosa.hz_to_mel(candidates), rows_mel, rows)
    keep: list[int] = []
    for i in range(candidates.size):  # drop ticks closer than 1/16 of the height
        if not keep or abs(positions[i] - positions[keep[-1]]) >= height / 16:
            keep.append(i)
    labels = [f"{f / 1000:g}k" if f >= 1000 else f"{f:g}" for f in candidates[keep]]
    return positions[keep], labels


def _draw(
    ax: Axes,
    image: np.ndarray,
    *,
    start: float,
    chunk_seconds: float,
    ticks: tuple[np.ndarray, list[str]],
) -> None:
    height = image.shape[0]
    ax.imshow(
        np.clip(image / 255.0, 0.0, 1.0),
        aspect="auto",
        interpolation="nearest",
        extent=(start, start + chunk_seconds, height - 0.5, -0.5),
    )
    ax.set_yticks(ticks[0], ticks[1])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz, Mel scale)")


def plot_images(
    images: np.ndarray,
    *,
    starts: Sequence[float] | np.ndarray,
    chunk_seconds: float,
    sample_rate: int,
    fmin: float,
    fmax: float | None,
    n_mels: int,
    out: str | os.PathLike[str],
    title: str,
    grid: bool = True,
) -> list[Path]:
    """Write front-end images to PNG: pixels unchanged, with time and frequency axes.

    Parameters
    ----------
    images : np.ndarray [shape=(n, height, width, 3)]
        Front-end output, RGB in [0, 255], low frequencies in the last row.
    starts : sequence of float [shape=(n,)]
        Start of each chunk in seconds (the time axis runs from start to start + chunk_seconds).
    chunk_seconds : float
        Chunk length in seconds.
    sample_rate : int
        Sample rate in Hz.
    fmin, fmax : float
        The front-end's Mel range in Hz (``fmax=None``: ``sample_rate / 2``).
    n_mels : int
        Number of Mel bands of the front-end.
    out : str or os.PathLike
        PNG file to write.
    title : str
        Figure title (e.g. the audio file).
    grid : bool
        True: all chunks in one figure, as a grid of panels (at most 64; more are left out with
        a warning). False: one figure per chunk, written to ``out`` for a single chunk, else to
        ``<out stem>_<i>.png`` (i = 000, 001, ...).

    Returns
    -------
    list[Path]
        The files written.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (n, height, width, 3), got {images.shape}")
    starts_arr = np.asarray(starts, dtype=np.float64).reshape(-1)
    if starts_arr.size != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {starts_arr.size} start times")
    ticks = freq_ticks(
        images.shape[1], n_mels=n_mels, sample_rate=sample_rate, fmin=fmin, fmax=fmax
    )
    out_path = Path(out)  # write_figure creates the parent folders

    if not grid:
        written = []
        for i, (image, start) in enumerate(zip(images, starts_arr, strict=True)):
            path = (
                out_path
                if images.shape[0] == 1
                else out_path.with_name(f"{out_path.stem}_{i:03d}{out_path.suffix or '.png'}")
            )
            fig = Figure(figsize=(5.0, 4.0), layout="constrained")
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            _draw(ax, image, start=start, chunk_seconds=chunk_seconds, ticks=ticks)
            ax.set_title(f"{title}  [{start:.2f}-{start + chunk_seconds:.2f} s]", fontsize=9)
            write_figure(fig, path, dpi=100)
            written.append(path)
        return written

    count = images.shape[0]
    if count > _MAX_PANELS:
        logger.warning("%s: plotting the first %d of %d chunks", title, _MAX_PANELS, count)
        count = _MAX_PANELS
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(3.2 * cols, 2.8 * rows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= count:
            ax.set_axis_off()
            continue
        _draw(ax, images[i], start=starts_arr[i], chunk_seconds=chunk_seconds, ticks=ticks)
        ax.set_title(f"chunk {i}: {starts_arr[i]:.2f} s", fontsize=8)
    fig.suptitle(title)
    write_figure(fig, out_path, dpi=100)
    return [out_path]
