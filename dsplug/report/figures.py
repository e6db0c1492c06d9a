"""Figures of a run: confusion matrix, training curves and example images per class.

Each function writes one PNG with matplotlib's object API on the Agg canvas (no pyplot, no
global backend change), so it is safe in worker processes and tests. matplotlib is imported when
a figure is drawn, not when the module is imported.

Examples
--------
>>> from dsplug.report import figures
>>> figures.plot_confusion("confusion.png", confusion=[[8, 2], [1, 9]], labels=["no", "yes"],
...                        title="devel (files)")  # doctest: +SKIP
>>> figures.plot_history("training.png", history={"loss": [0.9, 0.5], "devel_uar": [0.6, 0.8]},
...                      phase_boundary=1)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from dsplug.artifacts import write_figure
from dsplug.errors import DataError
from dsplug.evaluate import check_confusion

__all__ = ["plot_confusion", "plot_examples", "plot_history"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def _new_figure(*, width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: PathLike, *, what: str) -> None:
    """Write ``figure`` to ``path`` at 120 dpi (format from the suffix; parent folders are created)."""
    out = Path(path)
    write_figure(figure, out, dpi=120)
    logger.debug("wrote %s to %s", what, out)


def plot_confusion(
    path: PathLike,
    *,
    confusion: Sequence[Sequence[int]] | np.ndarray,
    labels: Sequence[str],
    title: str = "",
) -> None:
    """Draw a confusion matrix with counts and row percentages in every cell (PNG).

    Cell colour is the row percentage (share of the true class predicted as each class), so the
    diagonal shows the per-class recall, as in Figure 3 of the DeepSpectrumLite paper. Figure
    and font sizes adapt to the number of classes (readable up to about 20).

    Parameters
    ----------
    path : str or os.PathLike
        Output image (format from the suffix, e.g. ``.png``); parent folders are created.
    confusion : array-like [shape=(k, k), dtype=int]
        Counts, rows = true class, columns = predicted class.
    labels : sequence of str [length k]
        Class names.
    title : str
        Figure title.

    Raises
    ------
    DataError
        If ``confusion`` is not a square matrix of non-negative counts matching ``labels``.
    """
    counts, names = check_confusion(confusion, labels)
    k = len(names)
    support = counts.sum(axis=1, keepdims=True)
    percent = np.divide(100.0 * counts, support, out=np.zeros(counts.shape), where=support > 0)

    side = min(max(4.5, 0.6 * k + 2.5), 14.0)  # inches; 2.5 for ticks, labels and title
    cell_points = 72.0 * (side - 2.5) / k
    font = float(np.clip(0.24 * cell_points, 6.0, 11.0))
    figure = _new_figure(width=side + 1.0, height=side)
    axes = figure.add_subplot()
    image = axes.imshow(percent, cmap="Blues", vmin=0.0, vmax=100.0)
    colorbar = figure.colorbar(image, ax=axes, shrink=0.8)
    colorbar.set_label("% of true class")
    for row in range(k):
        for col in range(k):
            text = f"{counts[row, col]}\n{percent[row, col]:.1f}%" if support[row, 0] else "0\n–"
            axes.text(col, row, text, ha="center", va="center", fontsize=font,
                      color="white" if percent[row, col] > 55 else "black")
    axes.set_xticks(np.arange(k), labels=names, rotation=45 if k > 4 else 0,
                    ha="right" if k > 4 else "center", fontsize=font + 1)
    axes.set_yticks(np.arange(k), labels=names, fontsize=font + 1)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if title:
        axes.set_title(title)
    _save(figure, path, what="confusion matrix plot")


#: How the training curves are named in the figure (other series: their name with spaces).
SERIES_LABELS = {
    "loss": "training loss",
    "devel_loss": "devel loss",
    "devel_uar": "devel UAR (files)",
    "devel_map": "devel mAP (files)",
    "devel_neg_mse": "devel −MSE (files)",
}


def plot_history(
    path: PathLike,
    *,
    history: Mapping[str, Sequence[float]],
    phase_boundary: int | None = None,
    best_epoch: int | None = None,
    title: str = "",
) -> None:
    """Draw training curves per epoch: losses on the left, other metrics (UAR, ...) on the right.

    A series goes to the loss panel when its name contains ``loss``; series named ``lr``,
    ``learning_rate`` or ``epoch`` are not drawn; every other series goes to the metric panel.
    Epochs are numbered from 1 on the x axis. Series are named as in :data:`SERIES_LABELS`, in
    one legend below the panels (never over the curves).

    Parameters
    ----------
    path : str or os.PathLike
        Output image (format from the suffix); parent folders are created.
    history : mapping of str to sequence of float
        Series name (e.g. ``loss``, ``val_loss``, ``uar``, ``val_uar``) -> one value per epoch.
        NaN values leave gaps.
    phase_boundary : int, optional
        Number of phase-1 epochs, i.e. the 0-based index of the first phase-2 epoch; a dashed
        vertical line is drawn between epoch ``phase_boundary`` and ``phase_boundary + 1``. Give it
        only when phase 2 ran.
    best_epoch : int, optional
        The 1-based epoch whose weights were kept; marked with a dotted line.
    title : str
        Figure title.

    Raises
    ------
    DataError
        If no series can be drawn, a series is not 1-D numeric, or ``phase_boundary`` lies
        outside the epochs.
    """
    skip = {"lr", "learning_rate", "epoch"}
    series: dict[str, np.ndarray] = {}
    for name, values in history.items():
        if name in skip:
            continue
        problem = f"history[{name!r}] must be a non-empty list of numbers (one per epoch)"
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(f"{problem}, got {values!r:.80}") from err
        if arr.ndim != 1 or arr.size == 0:
            raise DataError(f"{problem}, got shape {arr.shape}")
        series[name] = arr
    if not series:
        raise DataError(f"history has no series to plot; got keys {sorted(history)}")
    epochs = max(arr.size for arr in series.values())
    if phase_boundary is not None and not 0 <= phase_boundary <= epochs:
        raise DataError(
            f"phase_boundary must be an epoch index in [0, {epochs}], got {phase_boundary!r}"
        )
    losses = {name: arr for name, arr in series.items() if "loss" in name}
    others = {name: arr for name, arr in series.items() if "loss" not in name}
    metric_label = SERIES_LABELS.get(next(iter(others)), "metric") if len(others) == 1 else "metric"
    panels = [(group, ylabel) for group, ylabel in ((losses, "loss"), (others, metric_label)) if group]

    figure = _new_figure(width=5.0 * len(panels) + 1.0, height=4.4)
    legend: dict[str, Any] = {}  # one legend below the panels: label -> line
    for i, (group, ylabel) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), i)
        for name, arr in group.items():
            (line,) = axes.plot(np.arange(1, arr.size + 1), arr, marker="o" if epochs <= 30 else None,
                                markersize=3, label=SERIES_LABELS.get(name, name.replace("_", " ")))
            legend.setdefault(line.get_label(), line)
        if phase_boundary is not None:
            legend.setdefault("phase 2 starts", axes.axvline(phase_boundary + 0.5, color="grey", linestyle="--", label="phase 2 starts"))
        if best_epoch:
            line = axes.axvline(best_epoch, color="tab:green", linestyle=":", label=f"best epoch ({best_epoch})")
            legend.setdefault(line.get_label(), line)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
    figure.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=min(len(legend), 5), fontsize=8, frameon=False)
    if title:
        figure.suptitle(title)
    _save(figure, path, what="training history plot")


def plot_probe(path: PathLike, *, scores: Mapping[float, float], chosen: float, title: str = "") -> None:
    """The linear probe's model selection: cross-validated UAR against the regularisation C.

    Parameters
    ----------
    path : str or os.PathLike
        Output image (format from the suffix).
    scores : mapping of float to float
        C -> cross-validated file-level UAR (may be empty: then only the chosen C is marked).
    chosen : float
        The C that was used.
    title : str
        Figure title.
    """
    figure = _new_figure(width=5.5, height=3.8)
    axes = figure.add_subplot(1, 1, 1)
    if scores:
        cs = sorted(scores)
        axes.plot(cs, [scores[c] for c in cs], marker="o", markersize=4, label="cross-validated UAR (files)")
    axes.axvline(chosen, color="grey", linestyle="--", label=f"chosen C = {chosen:g}")
    axes.set_xscale("log")
    axes.set_xlabel("C (inverse L2 regularisation)")
    axes.set_ylabel("UAR")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    _save(figure, path, what="probe selection plot")


#: Most example images in a row: a wider figure is shrunk in report.html until its labels are unreadable.
EXAMPLE_COLUMNS = 4


def plot_examples(
    path: PathLike,
    *,
    images: np.ndarray,
    labels: Sequence[str],
    seconds: float,
    freq_ticks: tuple[np.ndarray, list[str]],
    title: str = "",
) -> None:
    """One example image per class (what the model sees), titled by class, with axes.

    Rows of at most :data:`EXAMPLE_COLUMNS` images, as even as the count allows (5 classes: 3 + 2).

    Parameters
    ----------
    path : str or os.PathLike
        Output image (format from the suffix, e.g. ``.png``).
    images : np.ndarray [shape=(n, H, W, 3)]
        Front-end colour images, RGB in [0, 255] (low frequencies in the last row).
    labels : sequence of str [length n]
        The class of each image (its panel title).
    seconds : float
        The chunk length the width spans (time axis in s).
    freq_ticks : (positions, labels)
        Row positions and Hz labels of the frequency axis
        (:func:`dsplug.frontend.plot.freq_ticks`).
    title : str
        Figure title.
    """
    n = len(images)
    rows = math.ceil(n / EXAMPLE_COLUMNS)
    columns = math.ceil(n / rows)
    figure = _new_figure(width=2.4 * columns + 0.6, height=2.6 * rows + 0.3)
    figure.get_layout_engine().set(wspace=0.06)  # a panel's last time label apart from the next one's first
    positions, names = freq_ticks
    for i, (image, label) in enumerate(zip(images, labels)):
        axes = figure.add_subplot(rows, columns, i + 1)
        axes.imshow(np.clip(image, 0, 255).astype(np.uint8), aspect="auto", extent=(0, seconds, image.shape[0] - 0.5, -0.5))
        axes.set_title(label, fontsize=10)
        axes.set_xlabel("time (s)", fontsize=9)
        axes.tick_params(labelsize=8)
        if i % columns == 0:
            axes.set_yticks(positions, names)
            axes.set_ylabel("frequency (Hz)", fontsize=9)
        else:
            axes.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=10)
    _save(figure, path, what="example images")


def plot_roc(path: PathLike, *, y_true: np.ndarray, scores: np.ndarray, positive: str, title: str = "") -> None:
    """ROC curve of a two-class task (files), with its area.

    Parameters
    ----------
    path : str or os.PathLike
        Output image.
    y_true : np.ndarray [shape=(n,), dtype=int]
        1 for the positive class, 0 otherwise.
    scores : np.ndarray [shape=(n,)]
        The positive class's probability.
    positive : str
        The positive class's name.
    title : str
        Figure title.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    figure = _new_figure(width=4.6, height=4.2)
    axes = figure.add_subplot(1, 1, 1)
    if len(np.unique(y_true)) == 2:
        fpr, tpr, _ = roc_curve(y_true, scores)
        axes.plot(fpr, tpr, label=f"{positive} (AUC {roc_auc_score(y_true, scores):.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    if title:
        figure.suptitle(title)
    _save(figure, path, what="ROC curve")


def plot_pr(path: PathLike, *, y_true: np.ndarray, scores: np.ndarray, labels: Sequence[str], title: str = "") -> None:
    """Precision-recall curves of a multi-label task (files), one per class with its AP.

    Parameters
    ----------
    path : str or os.PathLike
        Output image.
    y_true : np.ndarray [shape=(n, k)]
        Multi-hot truth.
    scores : np.ndarray [shape=(n, k)]
        Label probabilities.
    labels : sequence of str [length k]
        Class names.
    title : str
        Figure title.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    figure = _new_figure(width=6.6 if len(labels) <= 12 else 8.0, height=4.4)
    axes = figure.add_subplot(1, 1, 1)
    for k, name in enumerate(labels):
        if y_true[:, k].any():
            precision, recall, _ = precision_recall_curve(y_true[:, k], scores[:, k])
            axes.plot(recall, precision, label=f"{name} (AP {average_precision_score(y_true[:, k], scores[:, k]):.2f})")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(-0.02, 1.02)  # curves along recall 0 or 1 stay visible
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    figure.legend(loc="outside right upper", fontsize=7, ncols=2 if len(labels) > 12 else 1, frameon=False)
    if title:
        figure.suptitle(title)
    _save(figure, path, what="precision-recall curves")
