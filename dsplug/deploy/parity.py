"""Parity of exported models with the Keras model they came from, on real chunks.

:func:`parity_report` measures every TFLite model against the float32 Keras model: probability
differences, top-1 agreement, file-level UAR and its change (with a paired bootstrap
interval), size and gzip size; :func:`format_parity` renders it as a Markdown table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tf_keras

from dsplug.deploy.convert import gzip_size, tflite_outputs


def _file_predictions(outputs: np.ndarray, *, file_index: np.ndarray, file_targets: np.ndarray, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(class of each file, mean chunk probabilities of each file); None unless single-label."""
    from dsplug.evaluate import aggregate_chunks

    if not classes or np.asarray(file_targets).ndim != 1 or len(outputs) == 0:
        return None
    order, probs = aggregate_chunks(file_ids=[str(i) for i in file_index], probs=outputs, method="mean")
    files = np.array([int(i) for i in order])
    return np.asarray(file_targets)[files], probs


def _file_metrics(predictions: tuple[np.ndarray, np.ndarray] | None, *, classes: Sequence[str]) -> dict[str, float] | None:
    """File-level UAR and accuracy of :func:`_file_predictions`; None without predictions."""
    from dsplug.evaluate import classification_metrics

    if predictions is None:
        return None
    truth, probs = predictions
    metrics = classification_metrics(y_true=truth, probs=probs, labels=list(classes))
    return {"uar": metrics["uar"], "accuracy": metrics["accuracy"]}


def parity_report(
    *,
    keras_model: tf_keras.Model,
    tflite_paths: Mapping[str, str | Path],
    audio: np.ndarray,
    file_index: np.ndarray,
    file_targets: np.ndarray,
    classes: Sequence[str],
    batch_size: int = 32,
) -> dict[str, Any]:
    """Compare TFLite models with the Keras model they were converted from, on real chunks.

    Parameters
    ----------
    keras_model : tf_keras.Model
        The float32 reference (audio -> outputs).
    tflite_paths : mapping of str to path
        Label (e.g. the quantisation mode) -> .tflite file.
    audio : np.ndarray [shape=(n_chunks, samples), dtype=float32]
        Chunks (e.g. the devel partition's).
    file_index : np.ndarray [shape=(n_chunks,), dtype=int]
        File of each chunk (index into ``file_targets``).
    file_targets : np.ndarray [shape=(n_files,), dtype=int]
        Class index of each file (other shapes: no UAR is computed).
    classes : sequence of str
        Class names (empty for regression: no UAR).
    batch_size : int
        Keras inference batch size.

    Returns
    -------
    dict
        ``chunks``, ``files``, ``keras`` (``{"uar", "accuracy"}`` or None) and ``models``:
        label -> ``{"file", "bytes", "gzip_bytes", "max_abs_diff", "mean_abs_diff",
        "top1_agreement", "uar", "accuracy", "uar_change", "uar_change_ci95"}`` (differences
        against ``keras_model``; UAR and accuracy at file level, None when not single-label;
        ``uar_change`` is the model's UAR minus Keras', ``uar_change_ci95`` its paired
        bootstrap interval, :func:`dsplug.evaluate.paired_uar_difference`).
    """
    from dsplug.evaluate import paired_uar_difference
    from dsplug.pipeline import predict_batches as predict

    audio = np.asarray(audio, dtype=np.float32)
    reference = predict(keras_model, audio, batch_size=batch_size)
    reference_files = _file_predictions(reference, file_index=file_index, file_targets=file_targets, classes=classes)
    report: dict[str, Any] = {
        "chunks": int(len(audio)),
        "files": int(len(np.unique(file_index))),
        "keras": _file_metrics(reference_files, classes=classes),
        "models": {},
    }
    for label, path in tflite_paths.items():
        content = Path(path).read_bytes()
        outputs = tflite_outputs(path, audio)
        diff = np.abs(outputs - reference)
        row: dict[str, Any] = {
            "file": Path(path).name,
            "bytes": len(content),
            "gzip_bytes": gzip_size(content),
            "max_abs_diff": float(diff.max()) if diff.size else 0.0,
            "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
            "top1_agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))) if len(audio) else 1.0,
        }
        files = _file_predictions(outputs, file_index=file_index, file_targets=file_targets, classes=classes)
        row.update(_file_metrics(files, classes=classes) or {"uar": None, "accuracy": None})
        row.update(uar_change=None, uar_change_ci95=None)
        if files is not None and reference_files is not None:
            change = paired_uar_difference(
                y_true=files[0], pred_a=reference_files[1].argmax(1), pred_b=files[1].argmax(1), n_classes=len(classes)
            )
            row.update(uar_change=change["difference"], uar_change_ci95=change["ci95"])
        report["models"][label] = row
    return report


def format_parity(report: Mapping[str, Any], *, title: str = "Keras (float32)") -> str:
    """A Markdown table of a :func:`parity_report`: one row for Keras, one per TFLite model."""

    def number(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    keras = report.get("keras") or {}
    lines = [
        f"Parity on {report['chunks']} chunks of {report['files']} files (UAR and accuracy at file "
        "level; UAR change in points against Keras, with the 95 % interval of a paired bootstrap "
        "over the files).",
        "",
        "| model | file | size (MB) | gzip (MB) | max abs diff | mean abs diff | top-1 agreement | UAR | UAR change (points) | accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {title} | – | – | – | – | – | – | {number(keras.get('uar'))} | – | {number(keras.get('accuracy'))} |",
    ]
    for label, row in report["models"].items():
        lines.append(
            f"| {label} | `{row['file']}` | {row['bytes'] / 1e6:.2f} | {row['gzip_bytes'] / 1e6:.2f} | "
            f"{row['max_abs_diff']:.2e} | {row['mean_abs_diff']:.2e} | {row['top1_agreement']:.3f} | "
            f"{number(row['uar'])} | {_points(row.get('uar_change'), row.get('uar_change_ci95'))} | {number(row['accuracy'])} |"
        )
    return "\n".join(lines)


def _points(change: float | None, interval: Sequence[float | None] | None) -> str:
    """``+4.0 (-1.6 to +10.5)``: a UAR change and its interval in points; ``–`` when absent."""
    if change is None:
        return "–"
    text = f"{100 * change:+.1f}"
    if interval and None not in interval:
        low, high = interval
        text += f" ({100 * low:+.1f} to {100 * high:+.1f})"  # type: ignore[operator]
    return text
