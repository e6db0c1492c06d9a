"""Export a finished run directory: quantised (and pruned) TFLite models with a parity report.

:func:`export_run` is ``dsplug export RUN_DIR``: it rebuilds the trained pipeline
(:func:`dsplug.pipeline.load_trained`), decodes the audio it needs, fine-tunes what pruning and QAT
ask for, converts every model, measures parity against Keras and writes ``export.json`` and
``export.md``. :func:`export_config` is the one place where the run's recipe (its ``export:``
section) and the command line's options become the :class:`~dsplug.recipe.schema.ExportConfig`
it runs with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tf_keras
from pydantic import ValidationError

from dsplug import data as data_stage
from dsplug.artifacts import RunDir, write_atomic
from dsplug.deploy.convert import export_model, model_metadata
from dsplug.deploy.parity import format_parity, parity_report
from dsplug.deploy.prune import PruneResult, prune
from dsplug.deploy.qat import QatResult, quantization_aware_finetune
from dsplug.deploy.quantize import INT8_FLOAT_THRESHOLD, QUANTIZE_MODES
from dsplug.errors import DsplugError, ExportError
from dsplug.pipeline import TrainedRun, load_trained
from dsplug.recipe.loader import load_recipe
from dsplug.recipe.schema import ExportConfig, Recipe

logger = logging.getLogger(__name__)

#: What to do about an out-of-range ``dsplug export`` option, by ExportConfig field.
OPTION_FIXES = {
    "prune": "--prune must be a sparsity in (0, 1), got {value!r}; e.g. --prune 0.5",
    "prune_epochs": "--prune-epochs must be >= 1, got {value!r}; e.g. --prune-epochs 6",
    "qat_epochs": "quantize 'qat' needs qat_epochs >= 1, got {value!r}; e.g. --qat-epochs 3",
    "representative_size": "representative_size (--representative) must be >= 1, got {value!r}; e.g. 200",
    "int8_float_threshold": (
        f"--int8-float-threshold must be > 0 quantisation steps, got {{value!r}}; e.g. "
        f"{INT8_FLOAT_THRESHOLD} (the default), or --full-integer to quantise every classifier layer"
    ),
}


def export_config(
    run: RunDir,
    *,
    quantize: Sequence[str] = (),
    prune: float | None = None,
    representative_size: int | None = None,
    prune_epochs: int | None = None,
    qat_epochs: int | None = None,
    int8_float_threshold: float | None = None,
    full_integer: bool = False,
) -> ExportConfig:
    """The export settings of ``dsplug export``: the run's ``export:`` section, overridden by options.

    Options left at None (``quantize`` empty) keep the recipe's value (the defaults when the run
    has no ``recipe.yaml``: :func:`export_run` then names what is missing). ``quantize`` may
    name ``none`` (the float32 model, always exported) alone to export nothing else.

    Raises
    ------
    ExportError
        An unknown quantisation mode or an out-of-range value (naming the option and a fix),
        before any work.
    RecipeError
        The run's ``recipe.yaml`` is invalid.
    """
    unknown = [m for m in quantize if m not in QUANTIZE_MODES]
    if unknown:
        raise ExportError(f"unknown quantize mode(s) {unknown}; choose from {', '.join(QUANTIZE_MODES)}")
    recipe_file = run / RunDir.RECIPE
    base = load_recipe(recipe_file)[0].recipe.export if recipe_file.is_file() else ExportConfig()
    options = {
        "prune": prune, "representative_size": representative_size, "prune_epochs": prune_epochs,
        "qat_epochs": qat_epochs, "int8_float_threshold": int8_float_threshold,
    }
    update: dict[str, Any] = {key: value for key, value in options.items() if value is not None}
    if quantize:
        update["quantize"] = [m for m in QUANTIZE_MODES[1:] if m in quantize]
    if full_integer:
        update["int8_float_threshold"] = None
    try:
        return ExportConfig.model_validate({**base.model_dump(), **update})
    except ValidationError as err:
        problem = err.errors()[0]
        field, value = str(problem["loc"][0]), update.get(str(problem["loc"][0]))
        fix = OPTION_FIXES[field].format(value=value) if field in OPTION_FIXES else f"export.{field}: {problem['msg']} (got {value!r})"
        raise ExportError(fix) from err


# -------------------------------------------------------------------- the steps of export_run


def _progress(progress: Any, *, total: int, description: str) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    return progress(total=total, description=description) if progress else contextlib.nullcontext(lambda done: None)


def representative_chunks(chunks: np.ndarray, *, size: int, seed: int) -> np.ndarray:
    """A seeded random subset of ``size`` chunks (all of them if fewer), in their original order."""
    if len(chunks) <= size:
        return chunks
    rng = np.random.default_rng(seed)
    return chunks[np.sort(rng.choice(len(chunks), size=size, replace=False))]


@dataclasses.dataclass
class _Audio:
    """The decoded audio of an export: parity chunks, training chunks, calibration chunks."""

    partition: str  # where parity is measured: devel, or test without devel
    parity: data_stage.ChunkSet
    file_targets: np.ndarray  # of the parity files
    train: data_stage.ChunkSet  # all training files when fine-tuning, else enough to calibrate
    representative: np.ndarray


@dataclasses.dataclass
class _Source:
    """A float32 Keras model (the trained one, or its pruned copy) and its QAT fine-tune."""

    pruned: bool
    model: tf_keras.Model
    pruning: dict[str, Any] | None = None
    qat: QatResult | None = None

    @property
    def key(self) -> str:
        """``original`` or ``pruned``: its key in the parity report and the QAT summaries."""
        return "pruned" if self.pruned else "original"

    def keras_for(self, mode: str) -> tf_keras.Model:
        """The Keras model converted for ``mode`` (the fake-quantised one for ``qat``)."""
        return self.qat.model if mode == "qat" and self.qat is not None else self.model


def _decode(manifest: data_stage.Manifest, recipe: Recipe, *, config: ExportConfig, fine_tune: bool, progress: Any) -> _Audio:
    """Decode the parity partition and the training chunks (all of them only to fine-tune)."""
    train_items = manifest.partition("train")
    partition = "devel" if manifest.partition("devel") else "test"
    parity = data_stage.decode_for(manifest.partition(partition), config=recipe.data, on_bad_file="skip", progress=progress, description=f"decoding {partition}")
    if not fine_tune:  # calibration only: no need to decode every training file
        picked = np.random.default_rng(recipe.seed).permutation(len(train_items))[: config.representative_size]
        train_items = [train_items[i] for i in sorted(picked)]
    train = data_stage.decode_for(train_items, config=recipe.data, on_bad_file="skip", progress=progress, description="decoding train")
    return _Audio(
        partition=partition, parity=parity, file_targets=manifest.targets(parity.files), train=train,
        representative=representative_chunks(train.audio, size=config.representative_size, seed=recipe.seed),
    )


def _fit_options(manifest: data_stage.Manifest, recipe: Recipe, audio: _Audio) -> dict[str, Any]:
    """The training data and settings of the pruning and QAT fine-tunes."""
    targets = manifest.task.target_rows(manifest.targets(audio.train.files), n_classes=len(manifest.classes))
    devel = None
    if audio.partition == "devel":
        devel = data_stage.Split(
            audio=audio.parity.audio, targets=np.zeros((len(audio.parity.audio), 1), np.float32),
            file_index=audio.parity.file_index, file_targets=audio.file_targets,
        )
    return dict(
        audio=audio.train.audio, targets=targets[audio.train.file_index], task=recipe.data.task,
        batch_size=recipe.train.batch_size, seed=recipe.seed, devel=devel,
    )


def _fine_tune(pipeline: Any, *, config: ExportConfig, modes: Sequence[str], fit: dict[str, Any], progress: Any) -> tuple[list[_Source], PruneResult | None]:
    """The trained model (with its QAT fine-tune) and, with pruning, the pruned one (with its own)."""
    qat = "qat" in modes
    steps = (config.prune is not None) + (1 + (config.prune is not None)) * qat
    original = _Source(pruned=False, model=pipeline.end_to_end)
    sources, pruned = [original], None
    with _progress(progress if steps else None, total=steps, description="fine-tuning") as update:  # no bar for nothing
        done = 0
        if qat:
            original.qat = quantization_aware_finetune(pipeline, epochs=config.qat_epochs, lr=config.qat_lr, **fit)
            done += 1
            update(done)
        if config.prune is not None:
            pruned = prune(pipeline, sparsity=config.prune, epochs=config.prune_epochs, lr=config.prune_lr, **fit)
            done += 1
            update(done)
            source = _Source(pruned=True, model=pruned.model, pruning=pruned.summary())
            if qat:
                source.qat = quantization_aware_finetune(
                    pipeline, classifier=pruned.classifier, prune_preserving=True,
                    epochs=config.qat_epochs, lr=config.qat_lr, **fit,
                )
                done += 1
                update(done)
            sources.append(source)
    return sources, pruned


def _write_models(folder: Path, trained: TrainedRun, *, sources: Sequence[_Source], modes: Sequence[str], audio: _Audio, config: ExportConfig, progress: Any) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Convert every source in every mode into ``folder``; their parity reports by source key."""
    written: dict[str, dict[str, Any]] = {}
    reports: dict[str, Any] = {}
    with _progress(progress, total=len(sources) * len(modes), description="converting") as update:
        for source in sources:
            paths: dict[str, Path] = {}
            for mode in modes:
                name = RunDir.model_file(mode, pruned=source.pruned)
                meta = model_metadata(
                    trained.pipeline.spec, classes=trained.classes, recipe_hash=trained.point.hash, quantize=mode,  # type: ignore[arg-type]
                    pruning=source.pruning, qat=source.qat.summary() if mode == "qat" and source.qat is not None else None,
                )
                written[name] = export_model(
                    source.keras_for(mode), path=folder / name, meta=meta, representative=audio.representative,
                    float_reference=paths["none"].read_bytes() if "none" in paths else None,
                    float_threshold=config.int8_float_threshold,
                )
                paths[mode] = folder / name
                update(len(written))
            reports[source.key] = parity_report(
                keras_model=source.model, tflite_paths=paths, audio=audio.parity.audio,
                file_index=audio.parity.file_index, file_targets=audio.file_targets, classes=trained.classes,
                batch_size=trained.recipe.train.batch_size,
            )
    return written, reports


def export_run(run: RunDir, *, config: ExportConfig, progress: Any = None) -> dict[str, Any]:
    """Export a finished run: quantised (and optionally pruned) TFLite models with a parity report.

    Writes into the run directory: ``model.tflite`` (float32) and ``model-<mode>.tflite`` for
    each mode of ``config.quantize``, each with its sidecar ``.json``
    (:class:`~dsplug.artifacts.ModelMetadata`, ``quantize`` naming the mode); with
    ``config.prune``: ``model-pruned.keras``, ``model-pruned.tflite`` and
    ``model-pruned-<mode>.tflite`` too; then ``export.json`` (files, sizes, parity, pruning,
    QAT) and ``export.md`` (the parity tables). The models are written to a temporary folder
    inside the run directory and moved into place only when all of them succeeded.

    ``int8`` is calibrated on ``config.representative_size`` chunks drawn (seeded) from the train
    partition, and keeps the classifier ops whose quantisation error exceeds
    ``config.int8_float_threshold`` float32 (see :func:`dsplug.deploy.convert.convert`);
    pruning and ``qat`` fine-tune on the whole train partition (``qat`` of the pruned model keeps
    its zeros); parity is measured on the devel partition (test where there is no devel), every
    model against the float32 Keras model it came from.

    Parameters
    ----------
    run : RunDir
        A directory written by ``dsplug run`` (``recipe.yaml``, ``data.json``, ``model.keras``).
    config : ExportConfig
        What to export: the recipe's ``export`` section, or :func:`export_config`.
    progress : callable, optional
        ``progress(total=, description=)`` -> context manager yielding ``update(done)``.

    Returns
    -------
    dict
        The content of ``export.json``.

    Raises
    ------
    RunError
        Not a finished run directory, or its weights do not fit its recipe.
    ExportError
        A mode the backbone cannot be converted with; conversion or writing failures.
    """
    modes = ["none"] + [m for m in QUANTIZE_MODES[1:] if m in config.quantize]
    trained = load_trained(run, command="export")
    recipe = trained.recipe
    integer = [m for m in modes if m in ("int8", "qat")]
    if integer and trained.pipeline.input_kind == "audio":
        raise ExportError(
            f"--quantize {integer[0]}: full-integer conversion of the raw-audio backbone "
            f"{recipe.model.backbone.name!r} crashes TensorFlow 2.21's converter; use --quantize dynamic "
            "(int8 weights) or float16"
        )
    manifest = data_stage.manifest_for(recipe.data, seed=recipe.seed)
    fine_tune = config.prune is not None or "qat" in modes
    audio = _decode(manifest, recipe, config=config, fine_tune=fine_tune, progress=progress)
    fit = _fit_options(manifest, recipe, audio) if fine_tune else {}
    sources, pruned = _fine_tune(trained.pipeline, config=config, modes=modes, fit=fit, progress=progress)
    folder = Path(tempfile.mkdtemp(prefix=".export-", dir=run.path))
    try:
        written, reports = _write_models(folder, trained, sources=sources, modes=modes, audio=audio, config=config, progress=progress)
        if pruned is not None:
            pruned.model.save(folder / "model-pruned.keras")
        result = _export_summary(
            run, written=written, reports=reports, audio=audio, sources=sources, config=config,
            pruning=pruned.summary() if pruned is not None else None,
        )
        for item in sorted(folder.iterdir()):
            if not item.name.endswith(".part"):
                item.replace(run / item.name)
        run.write_export_summary(result)
        trained_on = recipe.train.final_fit and audio.partition == "devel"
        write_atomic(run / RunDir.EXPORT_REPORT, _export_markdown(result, trained_on=trained_on))
    except DsplugError:
        raise
    except Exception as err:
        raise ExportError(f"export of {run.path} failed: {err}") from err
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    logger.info("exported %d model(s) into %s", len(written), run.path)
    return result


def _export_summary(run: RunDir, *, written: Mapping[str, dict[str, Any]], reports: Mapping[str, Any], audio: _Audio, sources: Sequence[_Source], config: ExportConfig, pruning: dict[str, Any] | None) -> dict[str, Any]:
    """export.json: the float32 model first (keys of ``dsplug run``'s export.json), then all models."""
    fp32 = written[RunDir.TFLITE_MODEL]
    fp32_row = reports["original"]["models"]["none"]
    qat = {source.key: source.qat.summary() for source in sources if source.qat is not None}
    return {
        "path": str(run / RunDir.TFLITE_MODEL),
        "bytes": fp32["bytes"],
        "metadata": fp32["metadata"],
        "parity_fp32": {
            "chunks": reports["original"]["chunks"],
            "max_abs_diff": fp32_row["max_abs_diff"],
            "top1_agreement": fp32_row["top1_agreement"],
        },
        "models": {
            name: {
                "path": str(run / name),
                "quantize": info["metadata"]["quantize"],
                "pruned": info["metadata"]["pruning"] is not None,
                "bytes": info["bytes"],
                "gzip_bytes": info["gzip_bytes"],
                "float_layers": info["metadata"].get("float_layers"),
            }
            for name, info in written.items()
        },
        "parity": {"partition": audio.partition, **reports},
        "representative_chunks": len(audio.representative),
        "int8_float_threshold": config.int8_float_threshold,
        "pruning": pruning,
        "qat": qat or None,
    }


def _export_markdown(result: Mapping[str, Any], *, trained_on: bool = False) -> str:
    """export.md: the parity tables, the float32 layers of int8 and QAT models, the pruning.
    ``trained_on``: the parity partition (devel) was part of the final fit (say so)."""
    parity = result["parity"]
    lines = ["# Export", "", f"Parity against Keras on the {parity['partition']} partition.", ""]
    if trained_on:
        lines += [
            "Devel was part of the final fit (`train.final_fit: true`): its UAR here is on files the model was "
            "trained on, not a result; compare each model with Keras (the change and the agreement). The test "
            "result is in report.md.",
            "",
        ]
    lines += ["## Trained model", "", format_parity(parity["original"]), ""]
    for name, model in result["models"].items():
        if model["quantize"] != "int8":
            continue
        threshold = result.get("int8_float_threshold")
        floats = ", ".join(f"`{layer}`" for layer in model.get("float_layers") or []) or "none"
        rule = (
            f"classifier layers whose quantisation error exceeded {threshold:g} steps stay float32"
            if threshold is not None else "full-integer classifier"
        )
        lines += [f"`{name}`: {rule}; float32 layers: {floats}.", ""]
    for source, facts in (result.get("qat") or {}).items():
        floats = ", ".join(f"`{name}`" for name in facts["float_layers"]) or "none"
        lines += [
            f"QAT ({source}): quantization-aware fine-tuning kept epoch {facts['epoch']} of "
            f"{len(facts['losses'])}; layers computed in float32: {floats}.",
            "",
        ]
    if "pruned" in parity:
        p = result["pruning"]
        lines += [
            f"## Pruned to {p['sparsity']:.1%} sparsity (target {p['target_sparsity']:.0%}, "
            f"{p['pruned_layers']} layers, {p['pruned_weights']:,} weights)",
            "",
            "Differences are against the pruned Keras model (`model-pruned.keras`).",
            "",
            format_parity(parity["pruned"], title="Keras pruned (float32)"),
            "",
        ]
    return "\n".join(lines)
