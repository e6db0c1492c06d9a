"""The run wiring: one validated recipe point -> a run directory.

The stages (data, model, training, evaluation, export) are called here in order; the CLI only
parses arguments and prints. Long work reports through a :class:`Reporter` so the CLI can draw
progress bars while library code stays free of printing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dsplug import data as data_stage
from dsplug.artifacts import RunDir, write_atomic, writing
from dsplug.distribute import chief_from_environment
from dsplug.errors import DataError, RecipeError, RunError
from dsplug.recipe.loader import RecipePoint, load_recipe
from dsplug.recipe.preflight import preflight
from dsplug.recipe.spec import PipelineSpec
from dsplug.task import Task

logger = logging.getLogger(__name__)


class Reporter(Protocol):
    """How a run reports progress (the CLI draws bars; tests pass :class:`SilentReporter`)."""

    def info(self, message: str) -> None:
        """Report a line of information."""

    def progress(self, *, total: int, description: str) -> contextlib.AbstractContextManager[Callable[[int], None]]:
        """A context yielding ``update(done)`` for ``total`` steps of work."""


class SilentReporter:
    """A reporter that only logs."""

    def info(self, message: str) -> None:
        """Log the message."""
        logger.info(message)

    @contextlib.contextmanager
    def progress(self, *, total: int, description: str) -> Iterator[Callable[[int], None]]:
        """Yield a no-op update function."""
        yield lambda done: None


def default_run_dir(point: RecipePoint, *, out: str | Path | None, sweep: bool) -> Path:
    """The run directory of a point: ``OUT`` (or ``runs/NAME``), plus the point's slug in a sweep.

    Sweep points are siblings in one folder, never nested in one another.
    """
    base = Path(out) if out else Path("runs") / point.recipe.name
    return base / point.slug if sweep else base


def _splits(manifest: Any, chunks: dict[str, Any]) -> dict[str, Any]:
    """Each decoded partition's chunks with the targets of their files (:class:`~dsplug.data.LabelledChunks`)."""
    return {name: data_stage.LabelledChunks.of(source, manifest=manifest) for name, source in chunks.items()}


def _evaluate(task: Task, split: Any, outputs: np.ndarray, chunk_set: Any, classes: list[str], recipe: Any) -> tuple[dict[str, Any], np.ndarray]:
    """File-level metrics of one partition (with chunk-level UAR) and the file outputs."""
    from dsplug import evaluate

    ev = recipe.evaluate
    ids = [str(i) for i in split.file_index]
    order, file_outputs = evaluate.aggregate_chunks(file_ids=ids, probs=outputs, method=task.aggregation(ev.aggregate))
    file_outputs = file_outputs[np.argsort([int(i) for i in order])]  # file-index order
    if task.exclusive and ev.bootstrap == 0:
        metrics = evaluate.classification_metrics(y_true=split.file_targets, probs=file_outputs, labels=classes)
        metrics.update(level="file", uar_ci95=None, accuracy_ci95=None)
    elif task.exclusive:
        metrics = evaluate.evaluate_partition(
            y_true=split.file_targets, probs=file_outputs, labels=classes, level="file",
            n_resamples=ev.bootstrap, confidence=ev.confidence, seed=recipe.seed,
        )
        chunk = evaluate.classification_metrics(y_true=split.targets.argmax(axis=1), probs=outputs, labels=classes)
        metrics["chunk_level"] = {"uar": chunk["uar"], "accuracy": chunk["accuracy"], "n": chunk["n"]}
    elif task.multilabel:
        metrics = evaluate.multilabel_metrics(y_true=split.file_targets, scores=file_outputs, labels=classes)
        metrics["level"] = "file"
    else:
        metrics = evaluate.regression_metrics(y_true=split.file_targets, y_pred=file_outputs.reshape(-1))
        metrics["level"] = "file"
    return metrics, file_outputs


def trainer_for(recipe: Any, *, pipeline: Any, run_dir: str | Path, progress: Any = None, strategy: Any = None) -> Any:
    """A :class:`~dsplug.train.Trainer` for a recipe: its augmentation plugins and policy loaded here.

    Parameters
    ----------
    recipe : Recipe
        The validated recipe.
    pipeline : Pipeline
        Built from the recipe (in ``strategy``'s scope).
    run_dir : path
        Checkpoints go to ``run_dir/checkpoints``.
    """
    from dsplug import registry
    from dsplug.augment.policy import SapAugmentPolicy
    from dsplug.recipe.loader import plugin_options
    from dsplug.train import Trainer

    aug = recipe.augment
    augmentations = []
    if aug.policy != "none":
        for index, method in enumerate(aug.methods):
            cls = registry.load("augmentations", method.name)
            augmentations.append(cls(options=plugin_options(cls, method, key=f"augment.methods.{index}")))
    policy = SapAugmentPolicy(a=aug.a, s=aug.s, p_min=aug.p_min, p_max=aug.p_max) if augmentations else None
    return Trainer(
        config=recipe.train, pipeline=pipeline, task=recipe.data.task, checkpoints=Path(run_dir) / "checkpoints",
        augmentations=augmentations, policy=policy, seed=recipe.seed, balance=recipe.data.balance,
        pretrained=recipe.model.backbone.weights.lower() != "none", progress=progress, strategy=strategy,
    )


def load_manifest_of(recipe: Any) -> data_stage.Manifest:
    """The recipe's manifest, validated, with partitions (column or seeded group split), and
    something to evaluate on (devel or test)."""
    manifest = data_stage.manifest_for(recipe.data, seed=recipe.seed)
    data_stage.check_evaluable(manifest)
    if recipe.train.final_fit and not manifest.partition("test"):
        raise DataError(
            f"manifest {manifest.source}: train.final_fit trains on train and devel, so it is evaluated on "
            "test, but the test partition is empty; mark some rows partition=test, or set "
            "train.final_fit: false"
        )
    return manifest


def plan_runs(recipe: str | Path, *, overrides: list[str], out: str | Path | None = None) -> list[tuple[RecipePoint, Path]]:
    """The points of a recipe file and their run directories, every one checked before any work.

    Each point's directory must not hold a run of another recipe, and each point passes the
    pre-flight (:func:`~dsplug.recipe.preflight.preflight`), so a sweep stops at its first bad
    point before anything is trained.

    Returns
    -------
    list of (RecipePoint, Path)
        In sweep order.
    """
    points = load_recipe(recipe, overrides=overrides)
    planned = [(point, default_run_dir(point, out=out, sweep=len(points) > 1)) for point in points]
    for point, run_dir in planned:
        RunDir(run_dir).check_recipe(point.hash)
        preflight(point.recipe, source=str(recipe))
    return planned


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`dsplug.run` produced; every file is in ``run_dir``.

    Attributes
    ----------
    run_dir : Path
        The run directory (``model.tflite``, ``report.html``, ``metrics.json`` ...).
    metrics : dict
        ``metrics.json``: per evaluated partition (``devel``, ``test``) the task's metrics with
        their confidence intervals (``uar``, ``accuracy``, ... for classification).
    data : dict
        ``data.json``: files, chunks and skipped files per partition.
    export : dict
        ``export.json``: the exported models with their sizes and parity.
    reused : bool
        The run had finished before: it was reported again, not rerun.
    """

    run_dir: Path
    metrics: dict[str, Any]
    data: dict[str, Any]
    export: dict[str, Any]
    reused: bool

    @property
    def test_uar(self) -> float | None:
        """Test UAR (file level) of a classifier; None without a test partition or for other tasks."""
        value = self.metrics.get("test", {}).get("uar")
        return None if value is None else float(value)


def run_recipe(recipe: str | Path, *, overrides: list[str] | tuple[str, ...] = (), run_dir: str | Path | None = None,
               reporter: Reporter | None = None) -> RunResult:
    """Run one recipe file as ``dsplug run`` does (see :func:`dsplug.run`).

    Raises
    ------
    RecipeError
        The recipe (with ``overrides``) sweeps several points: run them with ``dsplug sweep``.
    """
    planned = plan_runs(recipe, overrides=list(overrides), out=run_dir)
    if len(planned) > 1:
        raise RecipeError(
            f"{recipe}: the recipe sweeps {len(planned)} points ({', '.join(p.slug for p, _ in planned[:3])}"
            f"{', ...' if len(planned) > 3 else ''}); dsplug.run runs one: give single values, or run them with `dsplug sweep`"
        )
    [(point, folder)] = planned
    result = run_point(point, run_dir=folder, reporter=reporter)
    return RunResult(run_dir=Path(result["run_dir"]), metrics=result["metrics"], data=result["data"],
                     export=result.get("export") or {}, reused=bool(result.get("reused")))


def check_recipe_file(recipe: str | Path, *, overrides: list[str]) -> tuple[list[RecipePoint], data_stage.Manifest, list[str]]:
    """What ``dsplug validate`` checks: every point of the recipe file (keys, types, plugins, the
    pre-flight) and the manifest of the first.

    Returns
    -------
    points : list of RecipePoint
    manifest : Manifest
        The first point's manifest, validated and partitioned.
    notes : list of str
        The pre-flight's notes, each once.
    """
    points = load_recipe(recipe, overrides=overrides)
    notes = {note: None for point in points for note in preflight(point.recipe, source=str(recipe))}
    return points, load_manifest_of(points[0].recipe), list(notes)


def run_point(point: RecipePoint, *, run_dir: str | Path, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run one recipe point into ``run_dir``: data, training, evaluation, export.

    Everything that can be checked is checked before anything is written (the output folder, the
    manifest, a run of another recipe already there); then the directory is locked, the run record
    (``run.json``, ``recipe.yaml``) is written and the stages follow (see
    :class:`~dsplug.artifacts.RunDir`). A finished run of the same recipe is a record: it is
    reported again, never rewritten. An interrupted one resumes from its last epoch.

    Returns
    -------
    dict
        ``{"run_dir", "data", "metrics", "export", "reused"}``.

    Raises
    ------
    RunError
        The folder cannot be written, is in use, or holds a run of another recipe.
    """
    reporter = reporter or SilentReporter()
    recipe = point.recipe
    if recipe.train.distribute == "multiworker" and not chief_from_environment():
        # every worker trains; only the chief writes the run directory
        with tempfile.TemporaryDirectory(prefix="dsplug-worker-") as scratch:
            return _run(point, run=RunDir(scratch), reporter=reporter)
    return _run(point, run=RunDir(run_dir), reporter=reporter)


def _run(point: RecipePoint, *, run: RunDir, reporter: Reporter) -> dict[str, Any]:
    recipe = point.recipe
    preflight(recipe)  # the CLI has run it already (and shown its notes); library callers get it here
    run.check_writable()
    manifest = load_manifest_of(recipe)
    with run.lock():
        if run.begin(recipe_hash=point.hash, name=recipe.name, recipe_yaml=point.to_yaml()):
            reporter.info(f"{run.path} already holds this recipe's finished run; reporting it (delete the folder to train again)")
            return {"run_dir": str(run.path), "data": run.data_summary(), "metrics": run.metrics(), "export": run.export_summary(), "reused": True}
        reporter.info(f"run directory: {run.path}")
        chunks, skipped, storage = _decode(recipe, manifest, reporter=reporter)
        summary = {**data_stage.with_skipped(data_stage.summarize(manifest), skipped), "storage": storage}
        run.write_data_summary(summary)
        reporter.info(data_stage.format_summary(summary))
        if skipped:
            write_atomic(run / RunDir.SKIPPED, data_stage.skipped_csv(skipped))
            reporter.info(f"skipped {len(skipped)} undecodable file(s); see {run / RunDir.SKIPPED}")
        data_stage.check_decoded(manifest, chunks["train"])
        result = _train_evaluate_export(point, run_dir=run.path, manifest=manifest, chunks=chunks, summary=summary, reporter=reporter)
        run.finish()
        return {**result, "reused": False}


def _decode(recipe: Any, manifest: data_stage.Manifest, *, reporter: Reporter) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    """Decode every file once (all partitions), before any training starts, into memory or into
    shards on disk (``data.storage``; ``auto`` chooses by the decoded size, logged and recorded)."""
    choice = data_stage.choose_storage(manifest.items, config=recipe.data)
    chunks = {
        name: data_stage.decode_for(
            manifest.partition(name), config=recipe.data, storage=choice.storage, progress=reporter.progress, description=f"decoding {name}",
        )
        for name in data_stage.PARTITIONS if manifest.partition(name)
    }
    storage = {"storage": choice.storage, "decoded_bytes": choice.decoded_bytes, "reason": choice.reason}
    return chunks, [skip for part in chunks.values() for skip in part.skipped], storage


def _train_evaluate_export(point: RecipePoint, *, run_dir: Path, manifest: Any, chunks: dict[str, Any], summary: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    from dsplug.report import markdown

    recipe = point.recipe
    classes = manifest.classes
    splits = _splits(manifest, chunks)
    fitted = _fit(point, splits=splits, chunks=chunks, classes=classes, run_dir=run_dir, reporter=reporter)
    if fitted is None:
        return {"run_dir": str(run_dir), "data": summary, "metrics": {}, "export": {}}
    pipeline, training = fitted
    metrics = _evaluate_partitions(recipe, pipeline=pipeline, splits=splits, chunks=chunks, classes=classes, run_dir=run_dir, reporter=reporter)
    exported = _export(point, pipeline=pipeline, splits=splits, classes=classes, run_dir=run_dir, reporter=reporter)
    _examples(run_dir, recipe=recipe, pipeline=pipeline, splits=splits, classes=classes, task=recipe.data.task)
    markdown.write_report(
        run_dir, recipe=recipe, recipe_hash=point.hash, data_summary=data_stage.format_summary(summary),
        metrics=metrics, exported=exported, training=training,
    )
    return {"run_dir": str(run_dir), "data": summary, "metrics": metrics, "export": exported}


def _fit(point: RecipePoint, *, splits: dict[str, Any], chunks: dict[str, Any], classes: list[str], run_dir: Path, reporter: Reporter) -> tuple[Any, str] | None:
    """Build the pipeline and train it (fine-tuning or a linear probe); record the history.

    Returns
    -------
    (pipeline, training) or None
        The trained pipeline and a one-line description of the training for the report; None on
        a non-chief worker of a multi-worker run (the chief writes the run directory).
    """
    from dsplug.distribute import make_strategy
    from dsplug.pipeline import build_pipeline, precision
    from dsplug.report import figures
    from dsplug.train import write_history

    recipe = point.recipe
    task = recipe.data.task
    spec = PipelineSpec.of(recipe)
    if recipe.train.method == "probe":
        from dsplug.train import probe

        pipeline = build_pipeline(spec, num_outputs=max(len(classes), 1))
        groups = {name: np.array([item.group or str(item.path) for item in chunks[name].files]) for name in chunks}
        fit = probe.fit_head(
            pipeline, train=splits["train"], devel=splits.get("devel"), groups=groups, config=recipe.train.probe,
            final_fit=recipe.train.final_fit, seed=recipe.seed, batch_size=recipe.train.batch_size,
            features=run_dir / RunDir.CHECKPOINTS / "features", progress=reporter.progress,
        )
        RunDir(run_dir).write_probe({"c": fit.c, "selection": fit.selection, "scores": fit.scores, "fit_chunks": fit.fit_chunks, "final_fit": recipe.train.final_fit, "seconds": round(fit.seconds, 3)})
        figures.plot_probe(run_dir / "training.png", scores=fit.scores, chosen=fit.c, title=recipe.name)
        training = (
            f"linear probe on frozen features (taps: {recipe.model.taps}): C = {fit.c:g} chosen by {fit.selection}; "
            f"fitted on {fit.fit_chunks} chunks of " + ("train + devel" if recipe.train.final_fit else "train")
        )
        reporter.info(training)
        return pipeline, training

    train_split, devel_split = splits["train"], splits.get("devel")
    if recipe.train.final_fit and devel_split is not None:
        train_split, devel_split = data_stage.combine(train_split, devel_split), None
        reporter.info("final fit: training on train+devel, evaluating once on test")
    strategy = make_strategy(recipe.train.distribute)
    if strategy.num_replicas_in_sync > 1:
        reporter.info(f"data parallel: {strategy.num_replicas_in_sync} replicas ({type(strategy).__name__}), global batch {recipe.train.batch_size * strategy.num_replicas_in_sync}")
    with precision(recipe.train.mixed_precision), strategy.scope():
        pipeline = build_pipeline(spec, num_outputs=max(len(classes), 1))
    trainer = trainer_for(recipe, pipeline=pipeline, run_dir=run_dir, progress=reporter.progress, strategy=strategy)
    with precision(recipe.train.mixed_precision):
        result = trainer.fit(train_split, devel_split, recipe_hash=point.hash)
    if strategy.num_replicas_in_sync > 1 or recipe.train.mixed_precision:
        # Evaluation and export use a plain float32, one-device copy of the trained model:
        # reading distributed variables is a collective op (every worker takes the weights
        # now), and TFLite builtins need a float32 graph (mixed-precision variables are float32).
        weights = pipeline.end_to_end.get_weights()
        if not chief_from_environment():
            reporter.info("worker done: the chief writes the run directory")
            return None
        pipeline = build_pipeline(spec, num_outputs=max(len(classes), 1))
        pipeline.end_to_end.set_weights(weights)
    write_history(run_dir / "history.csv", result.history)
    if result.history:
        series = {k: [float(h.get(k, np.nan)) for h in result.history] for k in ("loss", "devel_loss", "devel_score")}
        score = f"devel_{task.selection_metric}"  # the selection score
        series = {(score if k == "devel_score" else k): v for k, v in series.items() if not all(np.isnan(v))}
        phase2_ran = result.phase2_start < len(result.history)
        figures.plot_history(
            run_dir / RunDir.TRAINING_PLOT, history=series, phase_boundary=result.phase2_start if phase2_ran else None,
            best_epoch=result.best_epoch if devel_split is not None else None, title=recipe.name,
        )
        reporter.info(f"best epoch {result.best_epoch} (devel score {result.best_score:.4f})" if devel_split is not None else f"trained {len(result.history)} epochs")
    else:
        reporter.info("no training epochs in the recipe: evaluating the initial model")
    t = recipe.train
    training = (
        f"{t.optimizer}, lr {t.lr:g}, batch {t.batch_size}, {t.phase1.epochs} + {t.phase2.epochs} epochs; "
        + (f"best epoch {result.best_epoch} of {len(result.history)} run" if result.history else "no epochs")
        + (f"; at most {t.steps_per_epoch} steps per epoch" if t.steps_per_epoch else "")
        + ("; final fit on train + devel" if t.final_fit else "")
    )
    return pipeline, training


def _evaluate_partitions(recipe: Any, *, pipeline: Any, splits: dict[str, Any], chunks: dict[str, Any], classes: list[str], run_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """Metrics of devel (unless it was trained on) and test; predictions CSVs and the confusion matrix."""
    from dsplug import evaluate
    from dsplug.pipeline import predict_batches
    from dsplug.report import figures

    task = recipe.data.task
    run = RunDir(run_dir)
    metrics: dict[str, Any] = {}
    rows: list[tuple[str, list[str], np.ndarray, np.ndarray]] = []
    evaluated = [p for p in ("devel", "test") if p in splits and not (p == "devel" and recipe.train.final_fit)]
    for name in evaluated:
        with reporter.progress(total=len(splits[name]), description=f"evaluating {name}") as update:
            outputs = predict_batches(pipeline.end_to_end, splits[name].source, batch_size=recipe.train.batch_size, progress=update)
        metrics[name], file_outputs = _evaluate(task, splits[name], outputs, chunks[name], classes, recipe)
        rows.append((name, [str(f.path) for f in chunks[name].files], file_outputs, splits[name].file_targets))
        if task.exclusive:
            m = metrics[name]
            ci = f" ({recipe.evaluate.confidence:.0%} CI {m['uar_ci95'][0]:.3f}-{m['uar_ci95'][1]:.3f})" if m["uar_ci95"] else ""
            reporter.info(f"{name}: UAR {m['uar']:.3f}{ci}, accuracy {m['accuracy']:.3f}, n={m['n']} files")
    run.write_metrics(metrics)
    if task.has_classes:
        for name, files, outputs, targets in rows:
            evaluate.write_predictions_csv(
                run.predictions_file(name, last=name == rows[-1][0]),
                file_ids=files, probs=outputs, labels=classes,
                y_true=targets if task.exclusive else None, task=task,
            )
        if task.exclusive and rows:
            last, _, outputs, targets = rows[-1]
            figures.plot_confusion(run / RunDir.CONFUSION_PLOT, confusion=metrics[last]["confusion"], labels=classes, title=f"{recipe.name}: {last} (files)")
            if len(classes) == 2:
                figures.plot_roc(run / RunDir.ROC_PLOT, y_true=targets, scores=outputs[:, 1], positive=classes[1], title=f"{recipe.name}: {last} (files)")
        if task.multilabel and rows:
            last, _, outputs, targets = rows[-1]
            figures.plot_pr(run / RunDir.PR_PLOT, y_true=targets, scores=outputs, labels=classes, title=f"{recipe.name}: {last} (files)")
    return metrics


def _export(point: RecipePoint, *, pipeline: Any, splits: dict[str, Any], classes: list[str], run_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """model.keras, then the TFLite models: the recipe's export section (each model converted once)."""
    from dsplug import deploy
    from dsplug.pipeline import predict_batches

    recipe = point.recipe
    run = RunDir(run_dir)
    reporter.info("exporting: model.keras, then TFLite (the conversion takes a while for large backbones)")
    keras_model, part = run / RunDir.KERAS_MODEL, run / f".part-{RunDir.KERAS_MODEL}"  # Keras needs the suffix
    with writing(keras_model, leftovers=[part]):
        pipeline.end_to_end.save(part)
        os.replace(part, keras_model)
    wanted = recipe.export
    if wanted.quantize or wanted.prune is not None:  # float32 and the quantised/pruned models, with parity
        exported = deploy.export_run(run, config=wanted, progress=reporter.progress)
        reporter.info("exported " + ", ".join(f"{name} ({info['bytes'] / 1e6:.1f} MB)" for name, info in exported["models"].items()))
        return exported
    meta = deploy.model_metadata(pipeline.spec, classes=classes, recipe_hash=point.hash)
    exported = deploy.export_model(pipeline.end_to_end, path=run / RunDir.TFLITE_MODEL, meta=meta)
    check = splits.get("devel") or splits["train"]
    sample = check.source.read(np.arange(min(len(check), 64)))
    keras_out = predict_batches(pipeline.end_to_end, sample, batch_size=recipe.train.batch_size)
    lite_out = deploy.tflite_outputs(run / RunDir.TFLITE_MODEL, sample)
    parity = {
        "chunks": len(sample),
        "max_abs_diff": float(np.max(np.abs(keras_out - lite_out))) if len(sample) else 0.0,
        "top1_agreement": float(np.mean(keras_out.argmax(1) == lite_out.argmax(1))) if len(sample) else 1.0,
    }
    exported["parity_fp32"] = parity
    run.write_export_summary(exported)
    reporter.info(f"exported {exported['path']} ({exported['bytes'] / 1e6:.1f} MB); TFLite vs Keras max |diff| {parity['max_abs_diff']:.2e}, top-1 agreement {parity['top1_agreement']:.3f}")
    return exported


def _examples(run_dir: Path, *, recipe: Any, pipeline: Any, splits: dict[str, Any], classes: list[str], task: Task) -> None:
    """Draw one image per class (first devel/train file of each class), as the model sees it."""
    from dsplug.report import figures

    if not task.exclusive or pipeline.input_kind != "image":
        return
    split = splits.get("devel") or splits["train"]
    labels = split.file_targets[split.file_index]  # class of each chunk
    picks = [int(np.flatnonzero(labels == c)[0]) for c in range(len(classes)) if (labels == c).any()]
    from dsplug.frontend.plot import freq_ticks

    layer = pipeline.frontend.get_layer("spectrogram_image")
    images = layer(split.source.read(picks)).numpy()
    fe, data = recipe.frontend, recipe.data
    ticks = freq_ticks(images.shape[1], n_mels=fe.n_mels, sample_rate=data.sample_rate, fmin=fe.fmin, fmax=fe.fmax)
    figures.plot_examples(
        run_dir / RunDir.EXAMPLES_PLOT, images=images, labels=[classes[labels[i]] for i in picks],
        seconds=data.chunk_seconds, freq_ticks=ticks,
    )


def default_recipe() -> Any:
    """The recipe of all defaults (no dataset), for tools that need only front-end settings."""
    from dsplug.recipe.schema import Recipe

    return Recipe.model_validate({"data": {"manifest": ""}})


#: Image formats ``dsplug plot`` writes (matplotlib's raster and vector formats).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".pdf", ".webp", ".tif", ".tiff")


def plot_audio(audio: str | Path, *, recipe: Any, out: str | Path, chunk: int | None = None, grid: bool = False) -> list[Path]:
    """Write the image(s) of an audio file exactly as the model sees them (before the backbone's normalisation).

    Parameters
    ----------
    audio : path
        Any readable audio file.
    recipe : Recipe
        Supplies sample rate, chunking and front-end settings (and the backbone's input size).
    out : path
        PNG to write.
    chunk : int, optional
        Index of the chunk to draw (default 0); ignored with ``grid``.
    grid : bool
        Draw every chunk of the file in one figure.

    Raises
    ------
    AudioError
        The file cannot be read; ``chunk`` is out of range.
    """
    if Path(out).suffix.lower() not in IMAGE_SUFFIXES:
        raise RunError(
            f"-o {str(out)!r}: {Path(out).suffix or 'no extension'} is not an image format; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    import tensorflow as tf

    from dsplug.audio import HOST_PAD_MODE, chunk_signal, load_audio
    from dsplug.errors import AudioError
    from dsplug.frontend.plot import plot_images
    from dsplug.pipeline import build_frontend, pad_layer

    data = recipe.data
    signal = load_audio(audio, sample_rate=data.sample_rate)
    chunks = chunk_signal(
        signal, sample_rate=data.sample_rate, chunk_seconds=data.chunk_seconds,
        hop_seconds=data.hop_seconds or data.chunk_seconds, pad_mode=HOST_PAD_MODE, source=str(audio),
    )
    index = list(range(len(chunks.frames))) if grid else [chunk or 0]
    if index[-1] >= len(chunks.frames) or index[0] < 0:
        raise AudioError(f"{audio}: --chunk {chunk} is out of range; the file has {len(chunks.frames)} chunk(s) (0..{len(chunks.frames) - 1})")
    spec = PipelineSpec.of(recipe)
    images = build_frontend(spec)(pad_layer(spec)(tf.constant(chunks.frames[index]))).numpy()
    return plot_images(
        images, starts=chunks.starts[index], chunk_seconds=data.chunk_seconds, sample_rate=data.sample_rate,
        fmin=recipe.frontend.fmin, fmax=recipe.frontend.fmax, n_mels=recipe.frontend.n_mels,
        out=out, title=Path(audio).name, grid=grid,
    )
