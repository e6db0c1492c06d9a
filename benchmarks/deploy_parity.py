"""The init recipe's models in every host: top-1 agreement with `dsplug predict` and test UAR.

For each bundled set with partitions (tones, voices, drums) this runs what a user runs:
`dsplug init data/SET/manifest.csv -o runs/parity-SET.yaml`, `dsplug run` into
runs/parity-SET (a finished run is reused), `dsplug export --quantize int8`; then, on the test
files, for the float32 and the int8 model:

* `dsplug predict` (the runtime): test UAR;
* MediaPipe Tasks' Python AudioClassifier, each file at its own sample rate (MediaPipe
  resamples and zero-pads; a file's label is the arg-max of the mean window scores): top-1
  agreement with `dsplug predict` and test UAR;
* the web app's recording path (`?clip=`) in headless Chromium on ``--web-clips`` test files:
  top-1 agreement with `dsplug predict`.

Usage (after `python3 dev.py test`, which installs MediaPipe's venv, Chromium and the npm bundle)::

    python benchmarks/deploy_parity.py [--sets tones voices drums] [--web-clips 8]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # webtools: the loopback server and the Chromium driver

from dsplug import runtime  # noqa: E402
from dsplug.deploy.mediapipe import mediapipe_parity  # noqa: E402
from dsplug.deploy.web import write_web_app  # noqa: E402

DSPLUG = Path(sys.executable).with_name("dsplug")


def uar(truth: list[str], predicted: list[str]) -> float:
    """Unweighted average recall over the classes present in ``truth``."""
    classes = sorted(set(truth))
    return float(np.mean([np.mean([p == c for t, p in zip(truth, predicted) if t == c]) for c in classes]))


def run_set(name: str) -> Path:
    """init -> run -> export int8 for one bundled set; returns the run directory."""
    recipe, run = ROOT / "runs" / f"parity-{name}.yaml", ROOT / "runs" / f"parity-{name}"
    recipe.parent.mkdir(exist_ok=True)
    steps = [["init", f"data/{name}/manifest.csv", "-o", str(recipe), "--force"], ["run", str(recipe), "--out", str(run)]]
    if not (run / "model-int8.tflite").is_file():
        steps.append(["export", str(run), "--quantize", "int8"])
    for step in steps:
        subprocess.run([str(DSPLUG), *step], cwd=ROOT, check=True, capture_output=True, text=True)
    return run


def web_agreement(model: Path, clips: list[Path], expected: list[str]) -> float:
    from webtools import BUNDLE, drive, served

    with tempfile.TemporaryDirectory() as tmp:
        app = write_web_app([model], Path(tmp) / "app", bundle=BUNDLE)
        agree = []
        with served(app) as base:
            for clip, label in zip(clips, expected):
                shutil.copy(clip, app / clip.name)
                result = drive(f"{base}/index.html?model=models/{model.name}&clip={clip.name}", Path(tmp) / "out.json")
                agree.append(result["state"]["file"]["label"] == label)
    return float(np.mean(agree))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=["tones", "voices", "drums"])
    parser.add_argument("--web-clips", type=int, default=8, help="test files per set played in the web app")
    parser.add_argument("--python", type=Path, default=ROOT / ".tools" / "mediapipe" / "bin" / "python", help="a Python with mediapipe")
    args = parser.parse_args()
    print("| set | model | test files | `dsplug predict` UAR | MediaPipe (native rates): top-1 agreement | MediaPipe UAR | web app (recording): agreement |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.sets:
        began = time.perf_counter()
        run = run_set(name)
        with open(ROOT / "data" / name / "manifest.csv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["partition"] == "test"]
        clips, truth = [ROOT / "data" / name / r["path"] for r in rows], [r["label"] for r in rows]
        models = [run / "model.tflite", run / "model-int8.tflite"]
        report = mediapipe_parity(models, clips, python=args.python)
        for path in models:
            row = report[path.name]
            step = max(1, len(clips) // args.web_clips)
            web = web_agreement(path, clips[::step][: args.web_clips], row["labels"][::step][: args.web_clips])
            print(
                f"| {name} | `{path.name}` | {len(clips)} | {uar(truth, row['labels']):.3f} | "
                f"{row['native_top1_agreement']:.3f} | {uar(truth, row['native_labels']):.3f} | "
                f"{web:.3f} ({min(args.web_clips, len(clips))} files) |",
                flush=True,
            )
        print(f"<!-- {name}: {time.perf_counter() - began:.0f} s; {runtime.load_model(models[0]).metadata.description} -->", flush=True)


if __name__ == "__main__":
    main()
