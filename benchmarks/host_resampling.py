"""What MediaPipe's resampler does to audio, and which init settings survive it.

MediaPipe Tasks' ``AudioClassifier`` resamples every clip to the model's rate with its own
resampler before the model sees it. This script reads that resampled audio back through an
"identity" model (its scores are its input window) and prints:

1. the resampler's response to white noise (8-48 kHz in, 16 and 32 kHz out), in dB at shares of
   the lower rate's Nyquist frequency, where soxr (dsplug's resampler) is flat;
2. its aliasing: sines above 8 kHz at 44.1 kHz, and the level they leave at 16 kHz (MediaPipe,
   soxr);
3. ``--variants``: the tones demo recipe with each padding (repeat, zero) and top Mel band
   (8 kHz, 4.8 kHz), run into ``runs/host-resampling/``: the cross-validated UAR that chose
   (train + devel), the test UAR, and the top-1 agreement of each model on the 311 spk5 clips
   between dsplug's input (soxr) and MediaPipe's (its resampled clip, zero-padded as it pads).

Usage (after `python3 dev.py test`, which installs MediaPipe's venv)::

    python benchmarks/host_resampling.py [--variants]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".tools" / "mediapipe" / "bin" / "python"
WORKER = ROOT / "dsplug" / "deploy" / "mediapipe_worker.py"


def identity_model(*, rate: int, samples: int, folder: Path) -> Path:
    """A .tflite whose scores are its input window (mapped from [-1, 1] to [0, 1])."""
    import tensorflow as tf
    import tf_keras

    from dsplug.artifacts.tflite_metadata import write_audio_classifier_metadata

    audio = tf_keras.Input((samples,))
    flat = tf.lite.TFLiteConverter.from_keras_model(tf_keras.Model(audio, tf_keras.layers.Lambda(lambda x: x * 0.5 + 0.5)(audio))).convert()
    path = folder / f"identity-{rate}-{samples}.tflite"
    path.write_bytes(write_audio_classifier_metadata(
        flat, labels=[f"s{i}" for i in range(samples)], sample_rate=rate, name="identity", description="", version="1",
    ))
    return path


def mediapipe_input(model: Path, signals: list[np.ndarray], rates: list[int], *, folder: Path) -> list[np.ndarray]:
    """What MediaPipe feeds ``model`` for each signal: its windows, concatenated."""
    np.savez(folder / "in.npz", rates=np.asarray(rates), **{f"signal_{i}": s.astype(np.float32) for i, s in enumerate(signals)})
    subprocess.run([str(PYTHON), "-I", str(WORKER), "--signals", str(folder / "in.npz"), "--out", str(folder / "out.npz"), str(model)],
                   check=True, capture_output=True)
    with np.load(folder / "out.npz") as data:
        return [data[f"scores_0_{i}"].reshape(-1) * 2 - 1 for i in range(len(signals))]


def db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x)) + 1e-30))


def response(folder: Path) -> None:
    print("| in -> out | " + " | ".join(f"{p:g} x Nyquist" for p in (0.5, 0.6, 0.7, 0.8, 0.9)) + " |")
    print("|---|" + "---:|" * 5)
    rng = np.random.default_rng(0)
    for out in (16000, 32000):
        model = identity_model(rate=out, samples=out, folder=folder)
        ins = [8000, 16000, 22050, 32000, 44100, 48000]
        windows = mediapipe_input(model, [rng.standard_normal(r * 10) * 0.1 for r in ins], ins, folder=folder)
        for rate, window in zip(ins, windows):
            steady = window[out : 9 * out].reshape(-1, 1024) * np.hanning(1024)  # Welch: 8 s in 1024-sample pieces
            power, freq = (np.abs(np.fft.rfft(steady, axis=1)) ** 2).mean(axis=0), np.fft.rfftfreq(1024, 1 / out)
            ref = power[(freq > 500) & (freq < 1500)].mean()
            nyquist = min(rate, out) / 2
            cells = [10 * np.log10(power[np.abs(freq - p * nyquist) < 0.02 * nyquist].mean() / ref) for p in (0.5, 0.6, 0.7, 0.8, 0.9)]
            print(f"| {rate} -> {out} Hz | " + " | ".join(f"{c:+.1f} dB" for c in cells) + " |")


def aliasing(folder: Path) -> None:
    import soxr

    rate, sines = 44100, (9000, 10000, 11000, 12000, 14000)
    t = np.arange(rate * 2) / rate
    signals = [0.5 * np.sin(2 * np.pi * f * t) for f in sines]
    windows = mediapipe_input(identity_model(rate=16000, samples=16000, folder=folder), signals, [rate] * len(sines), folder=folder)
    print("\n| sine at 44.1 kHz | folds to | left at 16 kHz: MediaPipe | soxr |")
    print("|---:|---:|---:|---:|")
    for f, signal, window in zip(sines, signals, windows):
        ours = soxr.resample(signal.astype(np.float32), rate, 16000, "HQ")[16000:32000]
        print(f"| {f} Hz | {16000 - f} Hz | {db(window[16000:32000]) - db(signal):.1f} dB | {db(ours) - db(signal):.1f} dB |")


def variants(folder: Path) -> None:
    import yaml

    from dsplug.audio import load_audio
    from dsplug.runtime import load_model

    clips = sorted((ROOT / "data" / "tones" / "audio").glob("spk5_*.ogg"))
    natives = [load_audio(c, sample_rate=44100) for c in clips]
    theirs = mediapipe_input(identity_model(rate=16000, samples=8000, folder=folder), natives, [44100] * len(clips), folder=folder)
    ours = np.stack([np.pad(s[:8000], (0, 8000 - s[:8000].size)) for s in (load_audio(c, sample_rate=16000) for c in clips)])
    theirs = np.stack([t[:8000] for t in theirs])
    recipe = yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())
    recipe["data"]["manifest"] = str(ROOT / "data" / "tones" / "manifest.csv")
    recipe.pop("export", None)
    print("\n| padding, top Mel band | CV UAR (train + devel) | test UAR | top-1 agreement, 311 clips at 44.1 kHz |")
    print("|---|---:|---:|---:|")
    for pad in ("repeat", "zero"):
        for fmax in (8000, 4800):
            name = f"{pad}-{fmax}"
            run = ROOT / "runs" / "host-resampling" / name
            recipe["data"]["pad_mode"], recipe["frontend"]["fmax"], recipe["name"] = pad, fmax, name
            path = run.with_suffix(".yaml")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(recipe))
            subprocess.run([str(Path(sys.executable).with_name("dsplug")), "run", str(path), "--out", str(run)], check=True, capture_output=True)
            probe = json.loads((run / "probe.json").read_text())
            test = json.loads((run / "metrics.json").read_text())["test"]["uar"]
            model = load_model(run / "model.tflite")
            agree = np.mean(model.predict_chunks(ours).argmax(1) == model.predict_chunks(theirs).argmax(1))
            cv = max(probe["scores"].values()) if isinstance(probe.get("scores"), dict) else float("nan")
            print(f"| {pad}, {fmax / 1000:g} kHz | {cv:.3f} | {test:.3f} | {agree:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", action="store_true", help="also train the four tones variants (about 6 min)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        response(Path(tmp))
        aliasing(Path(tmp))
        if args.variants:
            variants(Path(tmp))


if __name__ == "__main__":
    main()
