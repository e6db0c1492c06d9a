"""Exported models in MediaPipe Tasks' Python AudioClassifier against `dsplug predict`, per model.

Every ``model*.tflite`` of a run (they carry their metadata) classifies the clips twice in
MediaPipe — given at the model's rate as dsplug decodes them, and at the files' own rate so that
MediaPipe resamples — and once with dsplug's runtime; the table gives file-level top-1 agreement
and score differences. MediaPipe runs in its own venv (`python3 dev.py tools` makes
``.tools/mediapipe``).

Usage::

    python benchmarks/mediapipe_parity.py runs/demo [--clips 'data/tones/audio/spk5_*.ogg'] [--python PY]
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

from dsplug.artifacts import RunDir
from dsplug.deploy.mediapipe import format_mediapipe_parity, mediapipe_parity

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run exported by this dsplug (its .tflite files carry metadata)")
    parser.add_argument("--clips", default=str(ROOT / "data" / "tones" / "audio" / "spk5_*.ogg"), help="a glob of audio files")
    parser.add_argument("--python", type=Path, default=ROOT / ".tools" / "mediapipe" / "bin" / "python", help="a Python with mediapipe")
    args = parser.parse_args()
    models = RunDir(args.run_dir).tflite_models()
    clips = sorted(glob.glob(args.clips))
    print(f"{len(models)} models, {len(clips)} clips")
    print(format_mediapipe_parity(mediapipe_parity(models, clips, python=args.python)))


if __name__ == "__main__":
    main()
