"""Scaling with the hours of audio: decode throughput and peak memory of the on-disk chunk shards.

    python benchmarks/scale.py [--hours 1 10] [--out /tmp/dsplug-scale] [--rate 16000]

For each size it builds a synthetic manifest of real recordings (the bundled Mandarin tone
clips, one long tape of them, cut into 30 s files at different offsets and gains so that every
file's content hash differs: no file is a duplicate the cache could skip), then decodes it into
shards in a fresh cache (``data.storage: disk``, 1 s chunks, 50 % overlap as LEAN, float16) in a
child process and prints:

* decode throughput: hours of audio decoded, resampled, chunked and written per minute;
* the shard writer's peak RSS (``VmHWM`` of the child), and its growth over the RSS after
  imports; the in-memory path (``data.storage: memory``) for comparison on the smallest sizes;
* the reader: chunks per second of one shuffled epoch of the train partition through
  ``ShardSet.dataset`` (batch 64, in a child with TensorFlow), and through ``ChunkSet.dataset``
  where the in-memory path is measured (an upper bound of what training can consume).

Targets of issue #16 (for ``dsplug run``, wired in after integration): peak RSS at 200 h <= 1.3x
that at 1 h and under 4 GB; epoch throughput >= 90 % of the in-memory path. The two TODO
columns (``run_peak_rss``, ``train_throughput``) are filled by :func:`measure_run` and
:func:`measure_training` once the trainer reads shards.

Disk: the 16 kHz FLAC sources take about 60 MB per hour of audio, the float16 shards 230 MB per
hour (twice the audio, for the overlap); 200 h need about 60 GB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
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
    ``c0``..``c4`` by ``k mod 5``; every tenth file devel, the next test, the rest train.

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
        rows.append([f"audio/{path.name}", f"c{k % 5}", {8: "devel", 9: "test"}.get(k % 10, "train")])
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


def measure_decode(manifest: Path, *, cache: Path, storage: str = "disk", mode: str = "--child") -> dict[str, Any]:
    """Decode ``manifest`` in a child process (fresh memory); its figures (``seconds``, ``peak_mb`` ...).

    ``mode="--reader"``: instead, one shuffled epoch through the tf.data reader (:func:`_reader`).
    """
    done = subprocess.run(
        [sys.executable, __file__, mode, str(manifest), str(cache), storage],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"},
    )
    if done.returncode != 0 or "RESULT" not in done.stdout:
        raise RuntimeError(f"decoding {manifest} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.split("RESULT", 1)[1])


def measure_run(manifest: Path, *, cache: Path) -> dict[str, Any] | None:
    """TODO(integration): peak RSS of ``dsplug run`` on ``manifest`` with a few steps per phase.

    Run ``dsplug run`` with ``-o data.manifest=MANIFEST -o data.storage=disk -o data.cache_dir=CACHE``
    and a step limit per phase in a child process and return ``{"peak_mb": ...}``: the child's
    ``VmHWM`` (e.g. a wrapper that runs the CLI and prints :func:`_status_mb` at exit; not
    ``ru_maxrss``, which a child inherits from a large parent). Needs the trainer to read shards.
    """
    return None


def measure_training(manifest: Path, *, cache: Path) -> dict[str, Any] | None:
    """TODO(integration): epoch throughput (chunks/s) reading shards against the in-memory path, same model and set.

    Train one epoch of phase 1 and phase 2 on the smallest manifest with ``data.storage=memory``
    and with ``data.storage=disk`` and return ``{"memory": chunks/s, "disk": chunks/s}``.
    """
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[1, 10, 50, 200])
    parser.add_argument("--out", type=Path, default=Path("/tmp/dsplug-scale"))
    parser.add_argument("--memory-up-to", type=float, default=1.0, help="also measure the in-memory path up to this many hours")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; 1 s chunks, "
          "50 % overlap, 16 kHz, float16 shards; 30 s FLAC files of real speech (distinct gains)\n")
    header = (f"{'hours':>6} {'files':>6} {'chunks':>8} {'decode h/min':>13} {'writer peak RSS':>16} {'growth':>8} "
              f"{'in-memory peak':>15} {'read chunks/s disk (memory)':>28} {'reader peak RSS':>16} {'run peak RSS':>13} {'train vs memory':>16}")
    print(header)
    results = []
    for hours in args.hours:
        manifest = build_manifest(args.out / f"{hours:g}h", hours=hours)
        cache = args.out / f"cache-{hours:g}h"
        if cache.exists():  # a fresh cache: every file is decoded
            import shutil

            shutil.rmtree(cache)
        disk = measure_decode(manifest, cache=cache)
        memory = measure_decode(manifest, cache=cache, storage="memory") if hours <= args.memory_up_to else None
        read_disk = measure_decode(manifest, cache=cache, mode="--reader")
        read_memory = measure_decode(manifest, cache=cache, storage="memory", mode="--reader") if memory else None
        run, train = measure_run(manifest, cache=cache), measure_training(manifest, cache=cache)
        rate = disk["audio_hours"] / (disk["seconds"] / 60)
        in_memory = f"{memory['peak_mb']:.0f} MB" if memory else "-"
        run_peak = f"{run['peak_mb']:.0f} MB" if run else "TODO"
        speed = f"{train['disk'] / train['memory']:.0%}" if train else "TODO"
        reading = f"{read_disk['chunks_per_s']:,.0f}" + (f" ({read_memory['chunks_per_s']:,.0f})" if read_memory else "")
        print(
            f"{hours:>6g} {disk['files']:>6} {disk['chunks']:>8} {rate:>13.1f} {disk['peak_mb']:>13.0f} MB "
            f"{disk['peak_mb'] - disk['baseline_mb']:>5.0f} MB {in_memory:>15} {reading:>28} {read_disk['peak_mb']:>13.0f} MB "
            f"{run_peak:>13} {speed:>16}",
            flush=True,
        )
        results.append({"hours": hours, "disk": disk, "memory": memory, "read_disk": read_disk, "read_memory": read_memory, "run": run, "train": train})
    (args.out / "scale.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] in ("--child", "--reader"):
        (_child if sys.argv[1] == "--child" else _reader)(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    else:
        main()
