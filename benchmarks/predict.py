"""Files per second of `dsplug predict` over a folder: one thread (``--jobs 1``) against every core.

    python benchmarks/predict.py [--model MODEL.tflite] [--audio data/tones/audio] [--repeats 3]
        [--out runs/bench-predict]

``--jobs 1`` is the path `dsplug predict` took before issue #18 (one file after the other in one
interpreter); the default decodes and runs one file per core, each worker thread with its own
interpreter (:func:`dsplug.runtime.predict_batch`). Both run over the same folder, alternately,
``--repeats`` times after a warm-up; the median files/s of each and their ratio are printed, and
the two runs' results are checked to be identical (labels and probabilities, bit for bit).

Without ``--model`` the demo recipe's end-to-end model (``recipes/demo.yaml``: EfficientNet-Lite0
on 0.5 s chunks at 16 kHz, float32; random weights, since speed does not depend on them) is built
once into ``OUT/model.tflite``, in a child process: TensorFlow's thread pools would otherwise
slow down the timing. Wall times grow when other processes compete for the cores: the load
average (``uptime``) before and after is printed and saved, with the cores each run kept busy
(CPU seconds of the process per wall second: about 1 for one thread, up to the cores for the
default when the machine is otherwise idle) and what as many threads gain on reference work
that releases the GIL (sha256) at the same time: the speed-up the machine allowed. Results go
to ``OUT/predict.json`` and ``OUT/predict.md``.

Target of issue #18: the default >= 1.6x the files/s of ``--jobs 1`` on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "recipes" / "demo.yaml"
TARGET = 1.6


def build_model(path: Path) -> None:
    """The demo recipe's end-to-end model with random weights and its metadata, as ``path``."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from dsplug import data
    from dsplug.deploy.convert import convert, model_metadata
    from dsplug.pipeline import build_pipeline
    from dsplug.recipe.spec import PipelineSpec
    from dsplug.recipe.loader import load_recipe

    [point] = load_recipe(DEMO, overrides=["model.backbone.weights=none"])
    recipe = point.recipe
    classes = data.load_manifest(recipe.data.manifest, task=recipe.data.task).classes
    spec = PipelineSpec.of(recipe)
    model = build_pipeline(spec, num_outputs=len(classes)).end_to_end
    content = convert(model, samples=spec.chunk_samples)
    meta = model_metadata(spec, classes=classes, recipe_hash=point.hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(meta.to_tflite(content))


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def reference_speedup(jobs: int, *, seconds: float = 1.0) -> float:
    """What ``jobs`` threads gain over one on this machine right now, on work that releases the GIL
    (sha256 of 8 MB blocks): about ``jobs`` on idle cores, less when other processes use them."""
    block = bytes(8 << 20)

    def rate(threads: int) -> float:
        counts = [0] * threads
        stop = time.perf_counter() + seconds

        def work(i: int) -> None:
            while time.perf_counter() < stop:
                hashlib.sha256(block).digest()
                counts[i] += 1

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(counts) / seconds

    return rate(jobs) / rate(1)


def gil_share(model_path: Path, audio: Path) -> float:
    """The share of ``--jobs 1``'s CPU time spent holding the GIL: outside LiteRT's ``invoke``,
    libsndfile (through cffi) and soxr, which release it. A load-independent figure: with a share
    ``p``, ``n`` idle cores run at most ``1 / (p + (1 - p) / n)`` times faster (Amdahl)."""
    import soundfile
    import soxr

    from dsplug.runtime import load_model, predict_batch

    free = [0.0]

    def timed(function):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                free[0] += time.thread_time() - start
        return call

    class TimedLibrary:
        def __init__(self, library: object) -> None:
            self.library = library

        def __getattr__(self, name: str) -> object:
            value = getattr(self.library, name)
            return timed(value) if callable(value) else value

    model = load_model(model_path)
    model._interpreter.invoke = timed(model._interpreter.invoke)  # noqa: SLF001  (measurement only)
    library, resample = soundfile._snd, soxr.resample  # noqa: SLF001
    soundfile._snd, soxr.resample = TimedLibrary(library), timed(resample)  # noqa: SLF001
    try:
        predict_batch(model, [sorted(audio.iterdir())[0]], jobs=1)
        free[0] = 0.0
        start = time.thread_time()
        predict_batch(model, [audio], jobs=1)
        return 1.0 - free[0] / (time.thread_time() - start)
    finally:
        soundfile._snd, soxr.resample = library, resample  # noqa: SLF001


def measure(model_path: Path, audio: Path, *, repeats: int) -> dict[str, object]:
    """Alternate ``jobs=1`` and the default ``repeats`` times; files/s of each run and the check."""
    import numpy as np

    from dsplug.runtime import load_model, predict_batch
    from dsplug.runtime.batch import default_jobs

    model = load_model(model_path)
    predict_batch(model, [sorted(audio.iterdir())[0]], jobs=1)  # warm-up: libraries, caches
    jobs = default_jobs(threads=model.threads)
    speeds: dict[str, list[float]] = {"jobs=1": [], f"jobs={jobs} (default)": []}
    cores: dict[str, list[float]] = {name: [] for name in speeds}
    reference = []
    results = {}
    for _ in range(repeats):
        reference.append(reference_speedup(jobs))
        print(f"  reference: {jobs} threads of sha256 do {reference[-1]:.2f}x the work of one", flush=True)
        for name, n in (("jobs=1", 1), (f"jobs={jobs} (default)", None)):
            cpu = _cpu_seconds()
            batch = predict_batch(model, [audio], jobs=n)
            speeds[name].append(len(batch.predictions) / batch.seconds)
            cores[name].append((_cpu_seconds() - cpu) / batch.seconds)
            results[name] = batch
            print(f"  {name:<18} {len(batch.predictions)} files in {batch.seconds:6.2f} s: {speeds[name][-1]:7.1f} files/s, "
                  f"{cores[name][-1]:.2f} cores busy", flush=True)
    one, default = (results[name].predictions for name in speeds)
    identical = [p.file for p in one] == [p.file for p in default] and all(
        a.label == b.label and np.array_equal(a.chunk_probabilities, b.chunk_probabilities) for a, b in zip(one, default)
    )
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    first, second = medians.values()
    return {
        "files": len(one), "jobs": jobs, "files_per_s": speeds, "median_files_per_s": medians,
        "cores_busy": {name: statistics.median(values) for name, values in cores.items()},
        "reference_speedup": statistics.median(reference),
        "speedup": second / first, "identical_results": identical, "notes": list(results["jobs=1"].notes),
    }


def _cpu_seconds() -> float:
    """CPU time of this process so far (all threads), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def markdown(report: dict[str, object]) -> str:
    medians = report["median_files_per_s"]
    assert isinstance(medians, dict)
    lines = [
        f"# dsplug predict throughput ({report['files']} files of {report['audio']})",
        "",
        f"Model: {report['model']}. Machine: {report['machine']}.",
        "",
        "| run | median files/s | cores busy (CPU s / wall s) | all runs (files/s) |",
        "|---|---:|---:|---|",
        *(f"| {name} | {value:.1f} | {report['cores_busy'][name]:.2f} | "  # type: ignore[index]
          f"{', '.join(f'{v:.1f}' for v in report['files_per_s'][name])} |"  # type: ignore[index]
          for name, value in medians.items()),
        "",
        f"Speed-up of the default over `--jobs 1`: **{report['speedup']:.2f}x** (target >= {TARGET}x). "
        f"Results identical: {report['identical_results']}.",
        "",
        f"What the machine allowed meanwhile: {report['jobs']} threads of GIL-free reference work (sha256) did "
        f"{report['reference_speedup']:.2f}x the work of one (about {report['jobs']} on idle cores).",
        "",
        f"Load-independent: `--jobs 1` holds the GIL for {100 * report['gil_share']:.1f} % of its CPU time "  # type: ignore[operator]
        f"(the rest is in LiteRT, libsndfile and soxr, which release it), so {report['jobs']} idle cores run it at "
        f"most {report['amdahl_bound']:.2f}x faster.",
        "",
        f"Load before: `{report['uptime_before']}`; after: `{report['uptime_after']}`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an exported .tflite (default: build the demo model into OUT)")
    parser.add_argument("--audio", type=Path, default=ROOT / "data" / "tones" / "audio", help="the folder to predict")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-predict")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)  # the child process: build this model
    args = parser.parse_args()
    if args.build:
        build_model(args.build)
        return

    model = args.model or args.out / "model.tflite"
    if args.model is None and not model.is_file():
        print(f"building the demo model (random weights) into {model} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--build", str(model)], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    machine = f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} usable CPUs, Python {platform.python_version()}"
    before = uptime()
    print(f"{machine}\nbefore: {before}", flush=True)
    started = time.perf_counter()
    report: dict[str, object] = {"model": str(model), "audio": str(args.audio), "machine": machine, "uptime_before": before}
    report.update(measure(model, args.audio, repeats=args.repeats))
    report["gil_share"] = gil_share(model, args.audio)
    jobs = report["jobs"]
    assert isinstance(jobs, int)
    report["amdahl_bound"] = 1.0 / (report["gil_share"] + (1.0 - report["gil_share"]) / jobs)
    report["uptime_after"] = uptime()
    report["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "predict.md").write_text(markdown(report), encoding="utf-8")
    print()
    print(markdown(report))
    print(f"wrote {args.out / 'predict.json'} and {args.out / 'predict.md'}")


if __name__ == "__main__":
    main()
