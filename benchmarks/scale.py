"""Scaling with the hours of audio: decode throughput, peak memory of `dsplug run`, training throughput.

    python benchmarks/scale.py [--hours 1 10 50 200] [--out /tmp/dsplug-scale] [--clean]

For each size it builds a synthetic manifest of real recordings (the bundled Mandarin tone
clips, one long tape of them, cut into 30 s files at different offsets and gains so that every
file's content hash differs: no file is a duplicate the cache could skip; the bulk is train,
devel and test are :data:`EVAL_FILES` files each at every size), then decodes it into shards in
a fresh cache (``data.storage: disk``, 1 s chunks, 50 % overlap as LEAN, float16) in a child
process and prints:

* decode throughput: hours of audio decoded, resampled, chunked and written per minute;
* the shard writer's peak RSS (``VmHWM`` of the child), and its growth over the RSS after
  imports; the in-memory path (``data.storage: memory``) for comparison on the smallest sizes;
* the reader: chunks per second of one shuffled epoch of the train partition through
  ``ShardSet.dataset`` (batch 64, in a child with TensorFlow), and through ``ChunkSet.dataset``
  where the in-memory path is measured (an upper bound of what training can consume);
* the peak RSS of a whole ``dsplug run`` (:func:`measure_run`: its own process, ``data.storage:
  disk`` at every size, MobileNetV2 at 224 x 224, :data:`RUN_STEPS` steps per epoch, one epoch
  per phase, then evaluation, export and report);
* on the smallest size, training throughput (:func:`measure_training`): chunks per second of a
  whole epoch of each phase (phase 1 on cached features, phase 2 on audio), reading shards
  against reading the in-memory chunks, same model, same chunks.

Targets of issue #16: peak RSS of ``dsplug run`` at 200 h <= 1.3x that at 1 h and under 4 GB;
epoch throughput >= 90 % of the in-memory path. The last lines say whether they are met.

``--init`` measures instead the recipe users run: ``dsplug init``'s recipe (a linear probe on the
frozen features of the installed pretrained backbone, ``C`` chosen by grouped cross-validation)
on :data:`INIT_FILE_SECONDS` s files at ``--init-hours`` (default 0.5 and 5 h), with one change to
keep it short, ``frontend.image_size: [64, 64]`` (the features have the same width as at full
size). For each size: the peak RSS and wall time of ``dsplug run`` in its own process, the seconds
the probe spent choosing ``C`` and fitting, and the test UAR. Targets of issue #25: peak RSS at 5 h
<= 1.3x that at 0.5 h, wall time at most proportional to the audio.

Disk: the 16 kHz FLAC sources take about 60 MB per hour of audio, the float16 shards 230 MB per
hour (twice the audio, for the overlap); 200 h need about 60 GB (``--clean`` removes each size's
files once it is measured).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

#: Seconds of audio per synthetic file.
FILE_SECONDS = 30.0
#: Files of devel and of test at every size (the rest is train): evaluation stays minutes.
EVAL_FILES = 10
#: Steps per epoch of the measured `dsplug run` (train.steps_per_epoch).
RUN_STEPS = 3
GOLDEN = 0.6180339887498949


def _tape(sample_rate: int) -> np.ndarray:
    """All bundled tone recordings at ``sample_rate``, end to end (about 3.5 min of speech)."""
    from dsplug.audio import load_audio

    clips = [load_audio(p, sample_rate=sample_rate) for p in sorted((ROOT / "data" / "tones" / "audio").glob("*.ogg"))]
    return np.concatenate(clips)


def build_manifest(folder: str | os.PathLike[str], *, hours: float, sample_rate: int = 16000, file_seconds: float = FILE_SECONDS) -> Path:
    """A manifest of ``hours`` of distinct real audio in ``folder`` (FLAC files; kept for reuse).

    File ``k`` is ``file_seconds`` of the tape of all bundled tone recordings from offset
    ``k x 7.3 s`` (wrapping), times a gain in [0.25, 1) that differs for every file; labels
    ``c0``..``c4`` by ``k mod 5``; the first :data:`EVAL_FILES` files devel, the next as many
    test, the rest train.

    Returns
    -------
    Path
        ``folder/manifest.csv``.
    """
    import soundfile

    target = Path(folder)
    manifest = target / "manifest.csv"
    count = int(round(hours * 3600 / file_seconds))
    if manifest.is_file() and sum(1 for _ in open(manifest)) == count + 1:
        return manifest
    audio = target / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    tape = _tape(sample_rate)
    length = int(file_seconds * sample_rate)
    rows = []
    for k in range(count):
        path = audio / f"f{k:06d}.flac"
        if not path.is_file():
            start = int(k * 7.3 * sample_rate) % len(tape)
            signal = np.take(tape, np.arange(start, start + length), mode="wrap") * (0.25 + 0.75 * ((k * GOLDEN) % 1))
            soundfile.write(path, signal, sample_rate, format="FLAC", subtype="PCM_16")
        rows.append([f"audio/{path.name}", f"c{k % 5}", "devel" if k < EVAL_FILES else "test" if k < 2 * EVAL_FILES else "train"])
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "partition"], *rows])
    return manifest


def _config(manifest: Path, *, cache: Path, storage: str) -> Any:
    from dsplug.recipe.schema import DataConfig

    return DataConfig.model_validate({
        "manifest": str(manifest), "sample_rate": 16000, "chunk_seconds": 1.0, "hop_seconds": 0.5,
        "storage": storage, "cache_dir": str(cache), "shard_dtype": "float16",
    })


def _status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MiB, from /proc (Linux).

    ``VmHWM`` belongs to the process's own memory map, so unlike ``ru_maxrss`` it does not
    inherit the peak of a large parent process (pytest with TensorFlow loaded) across fork/exec.
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(manifest: Path, cache: Path, storage: str) -> None:
    """In a fresh process: decode ``manifest`` (all partitions) and print the figures as JSON."""
    from dsplug import data

    config = _config(manifest, cache=cache, storage=storage)
    items = data.load_manifest(manifest).items
    baseline = _status_mb("VmRSS")
    start = time.perf_counter()
    source = data.decode_for(items, config=config, storage=storage)
    seconds = time.perf_counter() - start
    audio = source.stats["audio_seconds"] if storage == "disk" else float(np.sum(data.durations(source.files)))
    print("RESULT" + json.dumps({
        "storage": storage, "files": len(items), "chunks": len(source), "seconds": seconds, "audio_hours": audio / 3600,
        "baseline_mb": baseline, "peak_mb": _status_mb("VmHWM"),
        "decoded": source.stats.get("decoded", len(items)) if storage == "disk" else len(items),
    }))


def _reader(manifest: Path, cache: Path, storage: str) -> None:
    """In a fresh process: one shuffled epoch of the train partition through ``source.dataset``
    (batch 64; the shards are already written); prints chunks/s and peak RSS as JSON."""
    import tensorflow as tf  # noqa: F401  imported before the timing

    from dsplug import data

    config = _config(manifest, cache=cache, storage=storage)
    source = data.decode_for(data.load_manifest(manifest).partition("train"), config=config, storage=storage)
    for _ in source.dataset(batch_size=64, shuffle=True, seed=0, epoch=0).take(2):
        pass  # warm-up: tracing, file opening
    start, count = time.perf_counter(), 0
    for index, _ in source.dataset(batch_size=64, shuffle=True, seed=0, epoch=1):
        count += int(index.shape[0])
    seconds = time.perf_counter() - start
    print("RESULT" + json.dumps({"storage": storage, "chunks": count, "chunks_per_s": count / seconds, "peak_mb": _status_mb("VmHWM")}))


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}


def _in_child(mode: str, *args: str) -> dict[str, Any]:
    """Run this script's ``mode`` in a fresh process; its RESULT line as a dict."""
    done = subprocess.run([sys.executable, __file__, mode, *args], capture_output=True, text=True, check=False, env=_child_env())
    if done.returncode != 0 or "RESULT" not in done.stdout:
        raise RuntimeError(f"{mode} {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.split("RESULT", 1)[1])


def measure_decode(manifest: Path, *, cache: Path, storage: str = "disk", mode: str = "--child") -> dict[str, Any]:
    """Decode ``manifest`` in a child process (fresh memory); its figures (``seconds``, ``peak_mb`` ...).

    ``mode="--reader"``: instead, one shuffled epoch through the tf.data reader (:func:`_reader`).
    """
    return _in_child(mode, str(manifest), str(cache), storage)


RUN_RECIPE = """
name: scale
seed: 0
data: {{manifest: {manifest}, sample_rate: 16000, chunk_seconds: 1.0, hop_seconds: 0.5, storage: {storage},
        cache_dir: {cache}, shard_dtype: float16}}
model: {{backbone: {{name: mobilenet_v2, weights: none}}, head: {{name: mlp, units: 64}}}}
train: {{batch_size: 32, optimizer: adam, lr: 0.001, steps_per_epoch: {steps}, phase1: {{epochs: 1}},
         phase2: {{epochs: 1, finetune_layers: 30}}}}
evaluate: {{bootstrap: 100}}
"""


def _run_cli(recipe: Path, out: Path) -> None:
    """In a fresh process: ``dsplug run RECIPE --out OUT`` (the CLI itself), then its peak RSS and time as JSON."""
    from dsplug.cli import app

    start = time.perf_counter()
    try:
        app(["run", str(recipe), "--out", str(out)], standalone_mode=False)
    except SystemExit as done:
        if done.code:
            raise
    print("RESULT" + json.dumps({"peak_mb": _status_mb("VmHWM"), "seconds": time.perf_counter() - start}))


def measure_run(manifest: Path, *, cache: Path, storage: str = "disk", steps: int = RUN_STEPS) -> dict[str, Any]:
    """Peak RSS of a whole ``dsplug run`` on ``manifest`` in its own process (``VmHWM`` at exit).

    The recipe (:data:`RUN_RECIPE`, written next to the manifest) caps every epoch at ``steps``
    steps (``train.steps_per_epoch``), one epoch per phase; decoding (the chunk cache in
    ``cache``, reused when the shards are there), training, evaluation of devel and test,
    TFLite export and the report all run as in any run.

    Returns
    -------
    dict
        ``{"peak_mb", "seconds", "test_uar"}``.
    """
    import shutil

    folder = manifest.parent
    recipe = folder / f"run-{storage}.yaml"
    recipe.write_text(RUN_RECIPE.format(manifest=manifest, storage=storage, cache=cache, steps=steps))
    out = folder / f"run-{storage}"
    shutil.rmtree(out, ignore_errors=True)
    result = _in_child("--run", str(recipe), str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    return {**result, "test_uar": metrics["test"]["uar"]}


TRAIN_RECIPE = """
name: throughput
seed: 0
data: {{manifest: {manifest}, sample_rate: 16000, chunk_seconds: 1.0, hop_seconds: 0.5, cache_dir: {cache}, shard_dtype: float16}}
frontend: {{image_size: [64, 64], n_mels: 64}}
model: {{backbone: {{name: mobilenet_v2, weights: none}}, head: {{name: mlp, units: 64}}}}
train: {{batch_size: 32, optimizer: adam, lr: 0.001, phase1: {{epochs: 1}}, phase2: {{epochs: 1, finetune_layers: 30}}}}
augment: {{policy: none}}
"""


def _train_child(recipe: Path, storage: str) -> None:
    """In a fresh process: one epoch of each phase on the train partition from ``storage``; chunks/s as JSON."""
    import tempfile

    from dsplug import data
    from dsplug.pipeline import build_pipeline
    from dsplug.recipe.spec import PipelineSpec
    from dsplug.recipe.loader import load_recipe
    from dsplug.workflows.run import trainer_for

    [point] = load_recipe(recipe, overrides=[f"data.storage={storage}"])
    manifest = data.load_manifest(point.recipe.data.manifest)
    train = data.LabelledChunks.of(data.decode_for(manifest.partition("train"), config=point.recipe.data, storage=storage), manifest=manifest)
    pipeline = build_pipeline(PipelineSpec.of(point.recipe), num_outputs=len(manifest.classes))
    with tempfile.TemporaryDirectory() as run_dir:
        history = trainer_for(point.recipe, pipeline=pipeline, run_dir=run_dir).fit(train, None, recipe_hash=point.hash).history
    print("RESULT" + json.dumps({f"phase{h['phase']}": len(train) / h["seconds"] for h in history} | {"chunks": len(train), "peak_mb": _status_mb("VmHWM")}))


def measure_training(manifest: Path, *, cache: Path, repeats: int = 2) -> dict[str, Any]:
    """Epoch throughput (chunks/s) reading shards against reading in-memory chunks: same model, same chunks.

    One epoch of phase 1 (no augmentation: the head on cached backbone features, in memory or
    in shard-aligned feature files) and one of phase 2 (the top 30 layers of MobileNetV2 on
    64 x 64 images of the audio chunks), each in its own process, alternating memory and disk
    ``repeats`` times; the best of each (other jobs on the machine slow single runs down). A
    small image makes the model fast, so the reading is a larger share of each step than with a
    full-size model: the ratio is a lower bound.

    Returns
    -------
    dict
        ``{"memory": {...}, "disk": {...}, "ratio": {"phase1": disk/memory, "phase2": ...}}``.
    """
    recipe = manifest.parent / "throughput.yaml"
    recipe.write_text(TRAIN_RECIPE.format(manifest=manifest, cache=cache))
    runs: dict[str, list[dict[str, Any]]] = {"memory": [], "disk": []}
    for _ in range(repeats):
        for storage in runs:
            runs[storage].append(_in_child("--train", str(recipe), storage))
    best = {storage: {key: max(r[key] for r in results) for key in results[0]} for storage, results in runs.items()}
    best["ratio"] = {phase: best["disk"][phase] / best["memory"][phase] for phase in ("phase1", "phase2")}
    return best


#: Seconds of audio per file of the ``--init`` measurement (init chooses 3 s windows, 1.5 s hop).
INIT_FILE_SECONDS = 10.0


def measure_init_run(hours: float, *, out: Path) -> dict[str, Any]:
    """Peak RSS and wall time of ``dsplug run`` on the recipe ``dsplug init`` writes for ``hours`` of audio.

    The manifest (:func:`build_manifest`, :data:`INIT_FILE_SECONDS` s files) and a fresh chunk
    cache are in ``out/init-{hours}h``; the recipe is ``init``'s plus ``frontend.image_size:
    [64, 64]`` and the cache folder. Decoding, feature extraction, the probe, evaluation, export
    and the report all run in one child process, as a user runs them.

    Returns
    -------
    dict
        ``{"hours", "files", "peak_mb", "seconds", "probe_seconds", "selection", "test_uar"}``.
    """
    folder = out / f"init-{hours:g}h"
    manifest = build_manifest(folder, hours=hours, file_seconds=INIT_FILE_SECONDS)
    cache, run = folder / "cache", folder / "run"
    for path in (cache, run):
        shutil.rmtree(path, ignore_errors=True)
    recipe = folder / "recipe.yaml"
    done = subprocess.run([str(Path(sys.executable).parent / "dsplug"), "init", str(manifest), "-o", str(recipe), "--force"],
                          capture_output=True, text=True, check=False, env=_child_env())
    if done.returncode != 0:
        raise RuntimeError(f"dsplug init failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    text = recipe.read_text().replace("\nfrontend:\n", "\nfrontend:\n  image_size: [64, 64]\n", 1)
    recipe.write_text(text.replace("\ndata:\n", f"\ndata:\n  cache_dir: {cache}\n", 1))
    result = _in_child("--run", str(recipe), str(run))
    metrics = json.loads((run / "metrics.json").read_text())
    probe = json.loads((run / "probe.json").read_text())
    return {
        "hours": hours, "files": sum(1 for _ in open(manifest)) - 1, **result, "test_uar": metrics["test"]["uar"],
        "selection": probe["selection"], "probe_seconds": probe.get("seconds", float("nan")),
    }


def main_init(hours: list[float], *, out: Path) -> None:
    """Measure and print :func:`measure_init_run` for each size, then whether the targets are met."""
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; dsplug init's recipe "
          f"(frontend.image_size [64, 64]) on {INIT_FILE_SECONDS:g} s FLAC files of real speech\n")
    print(f"{'hours':>6} {'files':>6} {'run peak RSS':>13} {'wall s':>8} {'probe s':>8} {'test UAR':>9}  C chosen by")
    results = []
    for size in hours:
        r = measure_init_run(size, out=out)
        print(f"{size:>6g} {r['files']:>6} {r['peak_mb']:>10.0f} MB {r['seconds']:>8.0f} {r['probe_seconds']:>8.0f} "
              f"{r['test_uar']:>9.3f}  {r['selection']}", flush=True)
        results.append(r)
        (out / "scale-init.json").write_text(json.dumps(results, indent=2))
    small, large = results[0], results[-1]
    growth, scale = large["peak_mb"] / small["peak_mb"], large["hours"] / small["hours"]
    print(f"\npeak RSS at {large['hours']:g} h = {growth:.2f}x that at {small['hours']:g} h (target <= 1.3x: "
          f"{'met' if growth <= 1.3 else 'NOT met'}); wall time {large['seconds'] / small['seconds']:.1f}x for "
          f"{scale:g}x the audio (target <= {scale:g}x: {'met' if large['seconds'] <= scale * small['seconds'] else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[1, 10, 50, 200])
    parser.add_argument("--out", type=Path, default=Path("/tmp/dsplug-scale"))
    parser.add_argument("--memory-up-to", type=float, default=1.0, help="also measure the in-memory path up to this many hours")
    parser.add_argument("--clean", action="store_true", help="remove each size's audio and shards once it is measured")
    parser.add_argument("--init", action="store_true", help="measure dsplug init's recipe (a probe) instead")
    parser.add_argument("--init-hours", type=float, nargs="+", default=[0.5, 5])
    args = parser.parse_args()
    if args.init:
        main_init(sorted(args.init_hours), out=args.out)
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; 1 s chunks, "
          "50 % overlap, 16 kHz, float16 shards; 30 s FLAC files of real speech (distinct gains)\n")
    header = (f"{'hours':>6} {'files':>6} {'chunks':>8} {'decode h/min':>13} {'writer peak RSS':>16} {'growth':>8} "
              f"{'in-memory peak':>15} {'read chunks/s disk (memory)':>28} {'reader peak RSS':>16} {'run peak RSS':>13} {'train vs memory (ph. 1 / 2)':>28}")
    print(header)
    results = []
    for hours in args.hours:
        manifest = build_manifest(args.out / f"{hours:g}h", hours=hours)
        cache = args.out / f"cache-{hours:g}h"
        if cache.exists():  # a fresh cache: every file is decoded
            shutil.rmtree(cache)
        disk = measure_decode(manifest, cache=cache)
        memory = measure_decode(manifest, cache=cache, storage="memory") if hours <= args.memory_up_to else None
        read_disk = measure_decode(manifest, cache=cache, mode="--reader")
        read_memory = measure_decode(manifest, cache=cache, storage="memory", mode="--reader") if memory else None
        run = measure_run(manifest, cache=cache)
        train = measure_training(manifest, cache=cache) if hours == min(args.hours) else None
        rate = disk["audio_hours"] / (disk["seconds"] / 60)
        in_memory = f"{memory['peak_mb']:.0f} MB" if memory else "-"
        run_peak = f"{run['peak_mb']:.0f} MB"
        speed = f"{train['ratio']['phase1']:.0%} / {train['ratio']['phase2']:.0%}" if train else "-"
        reading = f"{read_disk['chunks_per_s']:,.0f}" + (f" ({read_memory['chunks_per_s']:,.0f})" if read_memory else "")
        print(
            f"{hours:>6g} {disk['files']:>6} {disk['chunks']:>8} {rate:>13.1f} {disk['peak_mb']:>13.0f} MB "
            f"{disk['peak_mb'] - disk['baseline_mb']:>5.0f} MB {in_memory:>15} {reading:>28} {read_disk['peak_mb']:>13.0f} MB "
            f"{run_peak:>13} {speed:>28}",
            flush=True,
        )
        results.append({"hours": hours, "disk": disk, "memory": memory, "read_disk": read_disk, "read_memory": read_memory, "run": run, "train": train})
        (args.out / "scale.json").write_text(json.dumps(results, indent=2))
        if args.clean:
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(manifest.parent, ignore_errors=True)
    _targets(results)


def _targets(results: list[dict[str, Any]]) -> None:
    """Print whether the issue's targets are met."""
    small, large = min(results, key=lambda r: r["hours"]), max(results, key=lambda r: r["hours"])
    growth = large["run"]["peak_mb"] / small["run"]["peak_mb"]
    print(f"\npeak RSS of dsplug run: {large['run']['peak_mb']:.0f} MB at {large['hours']:g} h = {growth:.2f}x that at "
          f"{small['hours']:g} h (target <= 1.3x: {'met' if growth <= 1.3 else 'NOT met'}); highest "
          f"{max(r['run']['peak_mb'] for r in results):.0f} MB (target < 4096 MB)")
    train = small["train"]
    if train:
        ratio = min(train["ratio"].values())
        print(f"training from shards: phase 1 {train['ratio']['phase1']:.0%}, phase 2 {train['ratio']['phase2']:.0%} of the "
              f"in-memory path's chunks/s (target >= 90 %: {'met' if ratio >= 0.9 else 'NOT met'}); memory "
              f"{train['memory']['phase1']:,.0f} / {train['memory']['phase2']:,.0f}, disk {train['disk']['phase1']:,.0f} / "
              f"{train['disk']['phase2']:,.0f} chunks/s (phase 1 / phase 2)")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] in ("--child", "--reader"):
        (_child if sys.argv[1] == "--child" else _reader)(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "--run":
        _run_cli(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--train":
        _train_child(Path(sys.argv[2]), sys.argv[3])
    else:
        main()
