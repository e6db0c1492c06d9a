"""Classify audio with MediaPipe Tasks' AudioClassifier: a script for a Python that has ``mediapipe``.

Run by :func:`dsplug.deploy.mediapipe.mediapipe_scores` with the interpreter of a separate venv
(mediapipe 1.2.3 cannot share a venv with dsplug's training extra); it imports only mediapipe
and numpy, never dsplug::

    python mediapipe_worker.py --signals in.npz --out out.npz model-a.tflite model-b.tflite

``in.npz`` holds ``signal_<i>`` (float32 mono samples) and ``rates`` (their sample rates);
``out.npz`` gets ``scores_<m>_<i>``: the scores of model ``m`` on signal ``i``, one row per
window MediaPipe cut (shape ``(windows, classes)``, columns in the model's label order), and
``labels_<m>``, the category names MediaPipe read from the model's metadata.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")


def classify(model: str, signals: list[np.ndarray], rates: list[int]) -> tuple[list[np.ndarray], list[str]]:
    """Scores of every window of every signal, and the labels, from MediaPipe's AudioClassifier."""
    from mediapipe.tasks.python import audio
    from mediapipe.tasks.python.components.containers.audio_data import AudioData
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = audio.AudioClassifierOptions(
        base_options=BaseOptions(model_asset_path=model),
        running_mode=audio.RunningMode.AUDIO_CLIPS,
        max_results=-1,  # every class, so that scores can be compared
    )
    names: dict[int, str] = {}
    scores = []
    with audio.AudioClassifier.create_from_options(options) as classifier:
        for signal, rate in zip(signals, rates):
            results = classifier.classify(AudioData.create_from_array(signal.astype(np.float32), int(rate)))
            windows = []
            for result in results:
                categories = result.classifications[0].categories
                row = np.zeros(len(categories), np.float32)
                for category in categories:
                    row[category.index] = category.score
                    names[category.index] = category.category_name
                windows.append(row)
            scores.append(np.stack(windows))
    return scores, [names[i] for i in sorted(names)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help=".tflite models with TFLite Model Metadata")
    parser.add_argument("--signals", required=True, help=".npz with signal_<i> and rates")
    parser.add_argument("--out", required=True, help=".npz to write")
    args = parser.parse_args()
    data = np.load(args.signals)
    rates = [int(r) for r in data["rates"]]
    signals = [data[f"signal_{i}"] for i in range(len(rates))]
    out: dict[str, np.ndarray] = {}
    for m, model in enumerate(args.models):
        scores, labels = classify(model, signals, rates)
        out[f"labels_{m}"] = np.asarray(labels)
        out.update({f"scores_{m}_{i}": s for i, s in enumerate(scores)})
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()
