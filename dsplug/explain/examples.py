"""Explanations of a finished run: one audio file, or the most telling devel files per class.

:func:`explain_audio` explains one chunk of a file; :func:`explain_examples` the most confident
correct and incorrect devel files of each class, with a ``report.md`` section (:data:`SECTION`).
Both take a run directory or a run already loaded (:func:`dsplug.explain.view.open_run`).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsplug.artifacts import RunDir, write_atomic
from dsplug.errors import AudioError, DataError
from dsplug.explain.figures import plot_example_grid, plot_explanation
from dsplug.explain.methods import Method, attribute, check_method, predict
from dsplug.explain.view import RunView, open_run
from dsplug.report.markdown import clip_link

if TYPE_CHECKING:
    from dsplug.pipeline import TrainedRun

logger = logging.getLogger(__name__)

__all__ = ["SECTION", "Example", "ExamplesResult", "explain_audio", "explain_examples"]

#: First line of the report section written by :func:`explain_examples`.
SECTION = "## Explanations (devel)"


def _class_index(classes: Sequence[str], name: str) -> int:
    """Index of class ``name``; a :class:`DataError` naming the classes (and the closest) if absent."""
    if name in classes:
        return list(classes).index(name)
    close = difflib.get_close_matches(name, list(classes), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DataError(f"unknown class {name!r}; the model's classes are {', '.join(classes)}{hint}")


# --------------------------------------------------------------------------------------------
# one audio file
# --------------------------------------------------------------------------------------------


def _chunks_of(run: RunView, audio_path: str | os.PathLike[str]) -> Any:
    from dsplug.audio import HOST_PAD_MODE, chunk_signal, load_audio

    data = run.recipe.data
    signal = load_audio(audio_path, sample_rate=data.sample_rate)
    return chunk_signal(
        signal, sample_rate=data.sample_rate, chunk_seconds=data.chunk_seconds,
        hop_seconds=data.hop_seconds or data.chunk_seconds, pad_mode=HOST_PAD_MODE, source=str(audio_path),
    )


def explain_audio(
    run_dir: str | os.PathLike[str] | RunDir | TrainedRun | RunView,
    audio_path: str | os.PathLike[str],
    *,
    method: Method,
    target: str | None,
    out: str | os.PathLike[str],
    chunk: int = 0,
    patch: int | None = None,
    stride: int | None = None,
    steps: int = 32,
    max_evals: int = 500,
) -> dict[str, Any]:
    """Explain the model's prediction for one chunk of an audio file and write the figure.

    Parameters
    ----------
    run_dir : str, os.PathLike, RunDir, TrainedRun or RunView
        A finished run directory (or a run already loaded, see :func:`open_run`).
    audio_path : str or os.PathLike
        Any readable audio file; it is resampled and chunked as in the run's recipe.
    method : {"shap", "occlusion", "gradients"}
        Attribution method.
    target : str or None
        Class to explain; ``None``: the predicted class.
    out : str or os.PathLike
        PNG to write.
    chunk : int
        Index of the chunk of the file to explain.
    patch, stride, steps, max_evals
        Method settings: occlusion patch side and step in pixels, integrated-gradient steps,
        SHAP model evaluations (see :func:`dsplug.explain.methods.attribute`).

    Returns
    -------
    dict
        ``{"path", "predicted", "target", "probabilities": {class: p}, "chunk", "start",
        "method", "attribution"}``; ``attribution`` is the (H, W) float32 map.

    Raises
    ------
    RunError
        Bad run directory (see :func:`open_run`). ExportError: unknown method. AudioError:
        unreadable file, chunk out of range. DataError: unknown target class.
    """
    check_method(method)
    run = open_run(run_dir)
    chunks = _chunks_of(run, audio_path)
    if not 0 <= chunk < len(chunks.frames):
        raise AudioError(
            f"{audio_path}: chunk {chunk} is out of range; the file has {len(chunks.frames)} chunk(s) "
            f"(0..{len(chunks.frames) - 1})"
        )
    colour, normalised = run.images(chunks.frames[chunk : chunk + 1])
    probs = predict(run.classifier, normalised)[0]
    index = int(np.argmax(probs)) if target is None else _class_index(run.classes, target)
    attribution = attribute(
        run.classifier, normalised[0], method=method, target=index, silence=run.silence,
        patch=patch, stride=stride, steps=steps, max_evals=max_evals,
    )
    start = float(chunks.starts[chunk])
    recipe = run.recipe
    path = plot_explanation(
        out, image=colour[0], attribution=attribution, probabilities=probs, classes=run.classes,
        target_class=run.classes[index], sample_rate=recipe.data.sample_rate,
        chunk_seconds=recipe.data.chunk_seconds, fmin=recipe.frontend.fmin, fmax=recipe.frontend.fmax,
        n_mels=recipe.frontend.n_mels, title=f"{Path(audio_path).name} (chunk {chunk})", start=start, method=method,
    )
    logger.info("wrote %s (%s for %s)", path, method, run.classes[index])
    return {
        "path": str(path),
        "predicted": run.classes[int(np.argmax(probs))],
        "target": run.classes[index],
        "probabilities": {name: float(p) for name, p in zip(run.classes, probs, strict=True)},
        "chunk": chunk,
        "start": start,
        "method": method,
        "attribution": attribution,
    }


# --------------------------------------------------------------------------------------------
# devel examples
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Example:
    """One explained devel file.

    Attributes
    ----------
    path : str
        The audio file.
    label : str
        Its true class.
    predicted : str
        The file-level predicted class (the explained class).
    confidence : float
        File-level probability of ``predicted``.
    correct : bool
        ``predicted == label``.
    chunk : int
        The explained chunk: the one with the highest probability of ``predicted``.
    start : float
        Start of that chunk in seconds.
    image : np.ndarray [shape=(H, W, 3), dtype=float32]
        Its colour image, RGB in [0, 255].
    attribution : np.ndarray [shape=(H, W), dtype=float32]
        Attribution for ``predicted``.
    """

    path: str
    label: str
    predicted: str
    confidence: float
    correct: bool
    chunk: int
    start: float
    image: np.ndarray
    attribution: np.ndarray


@dataclasses.dataclass
class ExamplesResult:
    """What :func:`explain_examples` wrote.

    Attributes
    ----------
    figure : Path
        The PNG with every example.
    markdown_path : Path
        The Markdown snippet (``figure`` with suffix ``.md``), for ``report.md``.
    markdown : str
        The snippet's text.
    examples : list[Example]
        The explained files, per class: correct ones first, then incorrect ones.
    """

    figure: Path
    markdown_path: Path
    markdown: str
    examples: list[Example]


def _read_predictions(path: Path, classes: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """File ids, true class indices and probabilities (n, k) from a predictions CSV."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = [f"prob_{name}" for name in classes]
    if not rows or any(col not in rows[0] for col in columns + ["file", "label"]):
        raise DataError(f"{path} has no rows or lacks the columns file, label, {', '.join(columns)}; re-run `dsplug run`")
    files = [row["file"] for row in rows]
    labels = np.array([_class_index(classes, row["label"]) for row in rows], dtype=np.int64)
    probs = np.array([[float(row[col]) for col in columns] for row in rows], dtype=np.float64)
    return files, labels, probs


def _devel_predictions(run: RunView) -> tuple[list[str], np.ndarray, np.ndarray]:
    """File-level devel predictions: from the run directory if written, else recomputed."""
    folder = run.trained.run
    if folder.predictions_file("devel", last=False).is_file():
        return _read_predictions(folder.predictions_file("devel", last=False), run.classes)
    if (folder / RunDir.METRICS).is_file() and list(folder.metrics()) == ["devel"]:
        return _read_predictions(folder.predictions_file("devel", last=True), run.classes)  # devel was the only partition

    from dsplug import data as data_stage
    from dsplug.evaluate import aggregate_chunks

    recipe = run.recipe
    manifest = data_stage.manifest_for(recipe.data, seed=recipe.seed)
    items = manifest.partition("devel")
    if not items:
        raise DataError(f"the manifest {recipe.data.manifest} has no devel partition to draw examples from")
    logger.info("computing devel predictions of %d files", len(items))
    decoded = data_stage.decode_for(items, config=recipe.data, on_bad_file="skip")
    probs = run.probabilities(decoded.audio)
    ids = [str(i) for i in decoded.file_index]
    order, file_probs = aggregate_chunks(file_ids=ids, probs=probs, method=recipe.evaluate.aggregate)
    file_probs = file_probs[np.argsort([int(i) for i in order])]
    if list(manifest.classes) != run.classes:
        raise DataError(
            f"the manifest {recipe.data.manifest} now has classes {manifest.classes}, but the model was "
            f"trained on {run.classes}; restore the manifest or re-run `dsplug run`"
        )
    labels = np.asarray(manifest.targets(decoded.files), dtype=np.int64)
    return [str(item.path) for item in decoded.files], labels, file_probs


def _select(labels: np.ndarray, probs: np.ndarray, *, n: int, n_classes: int) -> list[tuple[int, bool]]:
    """(row, correct) of the ``n`` most confident correct and incorrect files of each class."""
    predicted = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    chosen: list[tuple[int, bool]] = []
    for cls in range(n_classes):
        for correct in (True, False):
            rows = np.flatnonzero((labels == cls) & ((predicted == cls) == correct))
            rows = rows[np.argsort(-confidence[rows], kind="stable")][:n]
            chosen += [(int(r), correct) for r in rows]
    return chosen


def explain_examples(
    run_dir: str | os.PathLike[str] | RunDir | TrainedRun | RunView,
    *,
    n: int,
    method: Method,
    out: str | os.PathLike[str] | None = None,
    patch: int | None = None,
    stride: int | None = None,
    steps: int = 32,
    max_evals: int = 500,
) -> ExamplesResult:
    """Explain, per class, the ``n`` most confident correct and incorrect devel files.

    Devel predictions come from ``run_dir/predictions_devel.csv`` (or ``predictions.csv`` when
    devel was the only evaluated partition); otherwise they are recomputed from the manifest.
    Each file's explained chunk is the one with the highest probability of the file's predicted
    class, and the map explains that class (for a wrong prediction: what misled the model).

    Parameters
    ----------
    run_dir : str, os.PathLike, RunDir, TrainedRun or RunView
        A finished run directory (or a run already loaded, see :func:`open_run`).
    n : int
        Files per class and kind (correct / incorrect), >= 1.
    method : {"shap", "occlusion", "gradients"}
        Attribution method.
    out : str or os.PathLike, optional
        PNG to write; default ``run_dir/explanations.png``. The Markdown snippet goes next to it
        (suffix ``.md``).
    patch, stride, steps, max_evals
        Method settings (see :func:`explain_audio`).

    Returns
    -------
    ExamplesResult
        The figure, the Markdown snippet (path and text; its image link is relative to the run
        directory when the figure is inside it) and the examples.

    Raises
    ------
    RunError
        Bad run directory (see :func:`open_run`). ExportError: unknown method. DataError: not
        a classification run, no devel files, bad predictions file.
    """
    if n < 1:
        raise DataError(f"--examples must be >= 1 file per class, got {n}")
    check_method(method)
    run = open_run(run_dir)
    if not run.recipe.data.task.exclusive:
        raise DataError(f"devel examples need a classification run; {run.run_dir} is {run.recipe.data.task}")
    files, labels, probs = _devel_predictions(run)
    examples: list[Example] = []
    for row, correct in _select(labels, probs, n=n, n_classes=len(run.classes)):
        cls = int(probs[row].argmax())
        chunks = _chunks_of(run, files[row])
        colour, normalised = run.images(chunks.frames)
        best = int(np.argmax(predict(run.classifier, normalised)[:, cls]))
        attribution = attribute(
            run.classifier, normalised[best], method=method, target=cls, silence=run.silence,
            patch=patch, stride=stride, steps=steps, max_evals=max_evals,
        )
        examples.append(Example(
            path=files[row], label=run.classes[int(labels[row])], predicted=run.classes[cls],
            confidence=float(probs[row, cls]), correct=correct, chunk=best, start=float(chunks.starts[best]),
            image=colour[best], attribution=attribution,
        ))
    figure = Path(out) if out is not None else run.run_dir / "explanations.png"
    plot_example_grid(figure, examples=examples, classes=run.classes, n=n, method=method, recipe=run.recipe)
    trained_on = run.recipe.train.final_fit
    text = _markdown(figure, run=run, examples=examples, n=n, method=method, trained_on=trained_on)
    markdown_path = write_atomic(figure.with_suffix(".md"), text)
    logger.info("wrote %s and %s (%d examples)", figure, markdown_path, len(examples))
    return ExamplesResult(figure=figure, markdown_path=markdown_path, markdown=text, examples=examples)


def _markdown(figure: Path, *, run: RunView, examples: Sequence[Example], n: int, method: str, trained_on: bool) -> str:
    """A ``report.md`` section: the figure and a table of the examples (each file linked, so
    ``report.html`` plays it). ``trained_on``: devel was part of the final fit (say so)."""
    try:
        link = figure.resolve().relative_to(run.run_dir.resolve()).as_posix()
    except ValueError:
        link = str(figure.resolve())
    lines = [
        SECTION,
        "",
        f"Per class, the {n} most confident correct and incorrect devel files; each map ({method}) "
        "explains the predicted class on the file's most confident chunk, measured against silence "
        "(red: evidence for the class, blue: against).",
        "",
    ]
    if trained_on:
        lines += [
            "Devel was part of the final fit (`train.final_fit: true`): the model was trained on these files, so "
            "they show what it learned, and few of them are wrong. For its mistakes, see the misclassified test "
            "files above; `dsplug explain RUN_DIR FILE` explains any one of them.",
            "",
        ]
    lines += [
        f"![explanations]({link})",
        "",
        "| file | label | predicted | p | correct | chunk start (s) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {clip_link(e.path, run.run_dir)} | {e.label} | {e.predicted} | {e.confidence:.3f} | {'yes' if e.correct else 'no'} | {e.start:.2f} |"
        for e in examples
    ]
    return "\n".join(lines) + "\n"

