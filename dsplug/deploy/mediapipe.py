"""Parity of exported models in MediaPipe Tasks' ``AudioClassifier`` with ``dsplug predict``.

An exported ``.tflite`` carries standard TFLite Model Metadata, so MediaPipe Tasks loads it as an
audio classifier (Python, Android, iOS, web). :func:`mediapipe_parity` checks that MediaPipe
decides what dsplug decides: it runs every model on the same clips with dsplug's runtime
(what ``dsplug predict`` runs) and with MediaPipe's Python ``AudioClassifier``, in a
separate interpreter that has ``mediapipe`` (it cannot share a venv with dsplug's training
extra: mediapipe needs absl-py 2, tensorflow-model-optimization absl-py 1), through the script
:mod:`dsplug.deploy.mediapipe_worker`.

MediaPipe cuts a clip into non-overlapping windows of the model's input length, zero-padding
the last one: dsplug's chunking with ``hop = chunk`` and ``pad_mode = "zero"``. It resamples
other rates with its own resampler, not soxr, so the clips are given to it at the model's rate
as dsplug decodes them (``at_model_rate``); the native-rate figures show what its resampler
changes.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsplug.audio import load_audio
from dsplug.errors import ExportError
from dsplug.runtime import load_model, predict_signal

logger = logging.getLogger(__name__)

__all__ = ["WORKER", "format_mediapipe_parity", "mediapipe_parity", "mediapipe_scores"]

#: The script run with the MediaPipe interpreter (imports only mediapipe and numpy).
WORKER = Path(__file__).with_name("mediapipe_worker.py")


def mediapipe_scores(
    models: Sequence[str | Path], signals: Sequence[np.ndarray], rates: Sequence[int], *, python: str | Path,
    timeout: float = 600,
) -> list[list[np.ndarray]]:
    """MediaPipe's scores per window: ``[model][signal] -> (windows, classes)``.

    Parameters
    ----------
    models : sequence of path
        ``.tflite`` models with TFLite Model Metadata.
    signals : sequence of np.ndarray [shape=(n,), dtype=float32]
        Mono audio.
    rates : sequence of int
        Their sample rates (MediaPipe resamples to the model's rate).
    python : path
        An interpreter with ``mediapipe`` installed (e.g. ``.tools/mediapipe/bin/python``,
        made by ``python3 dev.py test``).
    timeout : float
        Seconds before the worker is stopped.

    Raises
    ------
    ExportError
        The interpreter is missing, or MediaPipe refused a model (its message is included).
    """
    if not Path(python).is_file():
        raise ExportError(
            f"no Python with mediapipe at {python}; create it with `python3 dev.py tools` (or `python -m venv "
            "VENV && VENV/bin/pip install mediapipe==1.2.3`)"
        )
    with tempfile.TemporaryDirectory(prefix="dsplug-mediapipe-") as tmp:
        inputs, outputs = Path(tmp) / "signals.npz", Path(tmp) / "scores.npz"
        arrays = {f"signal_{i}": np.asarray(s, np.float32) for i, s in enumerate(signals)}
        np.savez(inputs, rates=np.asarray(rates, np.int64), **arrays)
        # -I: the worker's folder must not shadow the standard library (dsplug/deploy/inspect.py)
        command = [str(python), "-I", str(WORKER), "--signals", str(inputs), "--out", str(outputs), *map(str, models)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise ExportError(f"MediaPipe's AudioClassifier failed (exit {done.returncode}): {done.stderr.strip()[-1500:]}")
        with np.load(outputs) as data:
            return [[data[f"scores_{m}_{i}"] for i in range(len(signals))] for m in range(len(models))]


def mediapipe_parity(
    models: Sequence[str | Path], clips: Sequence[str | Path], *, python: str | Path,
) -> dict[str, dict[str, Any]]:
    """Compare MediaPipe's ``AudioClassifier`` with ``dsplug predict`` on audio clips, per model.

    Each clip is decoded once (as ``dsplug predict`` decodes it: mono, soxr to the model's rate)
    and classified by dsplug's runtime as ``dsplug predict`` does (the model's hop) and with
    MediaPipe's windows (``hop = chunk``), and by MediaPipe, given the same samples and,
    separately, the file's own rate. MediaPipe users aggregate a clip's window scores by their
    mean, as ``dsplug predict`` does.

    Parameters
    ----------
    models : sequence of path
        Exported ``.tflite`` models (every mode; they carry their metadata), of one sample rate.
    clips : sequence of path
        Audio files.
    python : path
        An interpreter with ``mediapipe`` (see :func:`mediapipe_scores`).

    Returns
    -------
    dict
        By model file name: ``clips``; ``top1_agreement`` (file level: the label ``dsplug
        predict`` gives, with the model's own hop, equals the arg-max of MediaPipe's mean window
        scores), ``windows`` and ``window_agreement``;
        ``max_abs_diff`` and ``mean_abs_diff`` of the window scores (MediaPipe given the clips
        at the model's rate); ``native_top1_agreement`` and ``native_max_abs_diff`` (of the
        file-level scores; MediaPipe given the files' own rate, resampling itself); ``labels``
        (dsplug predict's, per clip) and ``native_labels`` (MediaPipe's at native rates).

    Raises
    ------
    ExportError
        Models of different rates, MediaPipe refused a model, or it cut a clip into a different
        number of windows.
    """
    loaded = [load_model(path, threads=1) for path in models]
    rates = {model.sample_rate for model in loaded}
    if len(rates) != 1:
        raise ExportError(f"compare models of one sample rate at a time, got {sorted(rates)} Hz")
    rate = rates.pop()
    signals = [load_audio(clip, sample_rate=rate) for clip in clips]
    natives = [_native(clip) for clip in clips]
    at_rate = mediapipe_scores(models, signals, [rate] * len(signals), python=python)
    native = mediapipe_scores(models, [n[0] for n in natives], [n[1] for n in natives], python=python)
    report: dict[str, dict[str, Any]] = {}
    for path, model, theirs, their_native in zip(models, loaded, at_rate, native):
        windowed = [  # MediaPipe's windows: hop = chunk, the last one zero-padded
            predict_signal(model, signal, sample_rate=rate, hop_seconds=model.chunk_seconds, source=str(clip))
            for clip, signal in zip(clips, signals)
        ]
        files = windowed if model.hop_seconds == model.chunk_seconds else [  # what `dsplug predict` decides
            predict_signal(model, signal, sample_rate=rate, source=str(clip)) for clip, signal in zip(clips, signals)
        ]
        for clip, prediction, scores in zip(clips, windowed, theirs):
            if scores.shape != prediction.chunk_probabilities.shape:
                raise ExportError(
                    f"{Path(path).name}: MediaPipe cut {clip} into {scores.shape[0]} window(s), dsplug into "
                    f"{prediction.chunk_probabilities.shape[0]}"
                )
        diffs = [np.abs(s - p.chunk_probabilities) for s, p in zip(theirs, windowed)]
        labels = [p.label for p in files]
        report[Path(path).name] = {
            "clips": len(clips),
            "top1_agreement": _agreement(labels, theirs, model.classes),
            "windows": sum(len(s) for s in theirs),
            "window_agreement": float(np.mean(np.concatenate([
                s.argmax(1) == p.chunk_probabilities.argmax(1) for s, p in zip(theirs, windowed)
            ]))),
            "max_abs_diff": float(max(d.max() for d in diffs)),
            "mean_abs_diff": float(np.mean(np.concatenate([d.ravel() for d in diffs]))),
            "native_top1_agreement": _agreement(labels, their_native, model.classes),
            "native_max_abs_diff": float(max(
                np.abs(n.mean(axis=0) - p.probabilities).max() for n, p in zip(their_native, files)
            )),
            "labels": labels,
            "native_labels": [model.classes[int(np.argmax(n.mean(axis=0)))] for n in their_native],
        }
        logger.info("%s in MediaPipe: %s", Path(path).name, report[Path(path).name])
    return report


def _native(clip: str | Path) -> tuple[np.ndarray, int]:
    """A clip at its own sample rate (mono, as dsplug decodes it)."""
    import soundfile as sf

    rate = int(sf.info(str(clip)).samplerate)
    return load_audio(clip, sample_rate=rate), rate


def _agreement(labels: Sequence[str], scores: Sequence[np.ndarray], classes: Sequence[str]) -> float:
    """Share of clips whose label equals the arg-max of MediaPipe's mean window scores."""
    theirs = [classes[int(np.argmax(s.mean(axis=0)))] for s in scores]
    return float(np.mean([a == b for a, b in zip(labels, theirs)]))


def format_mediapipe_parity(report: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of :func:`mediapipe_parity`."""
    lines = [
        "| model | clips | top-1 agreement | max abs diff | mean abs diff | native rate: agreement, max diff |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, row in report.items():
        lines.append(
            f"| `{name}` | {row['clips']} | {row['top1_agreement']:.3f} | {row['max_abs_diff']:.2g} | "
            f"{row['mean_abs_diff']:.2g} | {row['native_top1_agreement']:.3f}, {row['native_max_abs_diff']:.3f} |"
        )
    return "\n".join(lines)
