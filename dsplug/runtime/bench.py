"""Benchmark an exported model: latency per chunk, load time, file size, parameters, peak memory."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from dsplug.errors import ExportError
from dsplug.runtime.model import load_model, resolve_model_path

__all__ = ["bench", "count_parameters", "format_bench"]


def _proc_status(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status in bytes (Linux), else None."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    parts = line.split()
                    return int(parts[1]) * (1024 if len(parts) > 2 and parts[2] == "kB" else 1)
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _max_rss_bytes() -> int | None:
    """Peak RSS of this process from getrusage (kB on Linux, bytes on macOS); None on Windows."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if platform.system() == "Darwin" else int(peak) * 1024


def count_parameters(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Parameters of a TFLite model: elements of its constant tensors.

    A tensor is constant when the flatbuffer stores data for it (a non-empty buffer); each
    buffer is counted once. This counts weights and biases, and also the front-end's tables
    (Mel filterbank, colour map, window) and the small int32 shape and index constants of ops
    like RESHAPE or GATHER, so it is slightly above the Keras parameter count of the
    backbone + head. Quantised weights count one element each, whatever their width.

    Returns
    -------
    (parameters, constant_tensors) : tuple of int
    """
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    seen: set[int] = set()
    parameters = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            index = tensor.Buffer()
            if index in seen or index >= model.BuffersLength():
                continue
            buffer = model.Buffers(index)
            # data inline, or (models over 2 GB) at an offset after the flatbuffer
            stored = buffer.DataLength() > 0 or (buffer.Offset() > 1 and buffer.Size() > 0)
            if not stored:
                continue
            seen.add(index)
            parameters += int(np.prod(tensor.ShapeAsNumpy())) if tensor.ShapeLength() else 1
    return parameters, len(seen)


def bench(model_path: str | os.PathLike[str], *, threads: int | None, runs: int = 50, warmup: int = 5) -> dict[str, Any]:
    """Benchmark an exported model: latency, size, parameters, memory.

    Latency is end-to-end per chunk: :meth:`Model.predict_chunks` on one chunk (quantising the
    input, invoking, reading and dequantising the output), timed with ``time.perf_counter``
    for each of ``runs`` calls after ``warmup`` untimed calls; nothing else runs in the timed
    region. The chunk is seeded uniform noise in [-0.5, 0.5] (the model's work does not depend
    on the audio).

    Peak memory is the increase of the process's resident set size from just before loading
    the model to its peak during loading and all runs (the first call in a process also counts
    loading the LiteRT libraries, as a deployed app pays it once): on Linux the kernel's peak mark
    (VmHWM) is reset first through /proc/self/clear_refs and compared with VmRSS before
    loading; where it cannot be reset the figure is an upper bound; elsewhere it comes from
    getrusage's ru_maxrss, which misses a peak below an earlier one (then 0). ``memory_method``
    says which.

    Parameters
    ----------
    model_path : path
        ``model.tflite`` (with its ``model.json``) or a run directory.
    threads : int or None
        Interpreter threads; None: the runtime's default.
    runs : int
        Timed calls (>= 1).
    warmup : int
        Untimed calls first (>= 0).

    Returns
    -------
    dict
        ``model`` (path), ``backbone``, ``quantize``, ``task``, ``classes``, ``sample_rate``,
        ``chunk_seconds``, ``file_bytes``, ``parameters``, ``constant_tensors``, ``threads``
        (asked; None = default), ``threads_used`` (1 + the OS threads the interpreter started;
        None off Linux), ``runs``, ``warmup``, ``load_ms``, ``latency_mean_ms``,
        ``latency_p50_ms``, ``latency_p95_ms``, ``latency_min_ms``, ``latency_std_ms``,
        ``real_time_factor`` (mean latency / chunk duration), ``peak_rss_increase_bytes``
        (None if unknown), ``memory_method``, ``machine``, ``cpus``.

    Raises
    ------
    ExportError
        The model cannot be loaded (see :func:`dsplug.runtime.load_model`), or ``runs``/``warmup`` invalid.
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ExportError(f"runs must be a whole number >= 1, got {runs!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ExportError(f"warmup must be a whole number >= 0, got {warmup!r}")
    path = resolve_model_path(model_path)
    threads_before = _proc_status("Threads")
    reset = _reset_peak_rss()
    rss_before = _proc_status("VmRSS")
    maxrss_before = _max_rss_bytes()

    tick = time.perf_counter()
    model = load_model(path, threads=threads)
    load_ms = (time.perf_counter() - tick) * 1e3
    chunk = np.random.default_rng(0).uniform(-0.5, 0.5, (1, model.chunk_samples)).astype(np.float32)
    for _ in range(warmup):
        model.predict_chunks(chunk)
    times = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        tick = time.perf_counter()
        model.predict_chunks(chunk)
        times[i] = time.perf_counter() - tick
    times *= 1e3

    peak_after = _proc_status("VmHWM")
    if rss_before is not None and peak_after is not None:
        peak: int | None = max(0, peak_after - rss_before)
        method = "VmHWM after reset - VmRSS before" if reset else "VmHWM - VmRSS before (upper bound: peak not resettable)"
    elif maxrss_before is not None:
        after = _max_rss_bytes()
        peak = max(0, after - maxrss_before) if after is not None else None
        method = "ru_maxrss increase"
    else:
        peak, method = None, "unavailable"
    threads_after = _proc_status("Threads")
    parameters, constants = count_parameters(path)
    meta = model.metadata
    return {
        "model": str(path),
        "backbone": meta.backbone or None,
        "quantize": meta.quantize,
        "task": model.task,
        "classes": list(model.classes),
        "sample_rate": model.sample_rate,
        "chunk_seconds": model.chunk_seconds,
        "file_bytes": path.stat().st_size,
        "parameters": parameters,
        "constant_tensors": constants,
        "threads": threads,
        "threads_used": (1 + threads_after - threads_before) if threads_before is not None and threads_after is not None else None,
        "runs": runs,
        "warmup": warmup,
        "load_ms": load_ms,
        "latency_mean_ms": float(times.mean()),
        "latency_p50_ms": float(np.percentile(times, 50)),
        "latency_p95_ms": float(np.percentile(times, 95)),
        "latency_min_ms": float(times.min()),
        "latency_std_ms": float(times.std()),
        "real_time_factor": float(times.mean()) / 1e3 / model.chunk_seconds,
        "peak_rss_increase_bytes": peak,
        "memory_method": method,
        "machine": f"{platform.machine()} {platform.system()}",
        "cpus": os.cpu_count(),
    }


def format_bench(result: dict[str, Any]) -> str:
    """The result of :func:`bench` as an aligned text table."""
    threads = "default" if result["threads"] is None else str(result["threads"])
    used = "" if result["threads_used"] is None else f", {result['threads_used']} used"
    peak = result["peak_rss_increase_bytes"]
    memory = "unknown" if peak is None else f"+{peak / 1e6:.1f} MB resident ({result['memory_method']})"
    rows = [
        ("model", f"{result['model']} ({result['backbone']}, quantize {result['quantize']})"),
        ("input", f"{result['chunk_seconds']:g} s chunk at {result['sample_rate']} Hz -> {len(result['classes']) or 1} output(s)"),
        ("size", f"{result['file_bytes'] / 1e6:.2f} MB ({result['file_bytes']:,} bytes)"),
        ("parameters", f"{result['parameters']:,} (elements of {result['constant_tensors']} constant tensors)"),
        ("threads", f"{threads} asked{used}"),
        ("load", f"{result['load_ms']:.1f} ms"),
        (
            "latency",
            f"mean {result['latency_mean_ms']:.2f} ms, p50 {result['latency_p50_ms']:.2f} ms, "
            f"p95 {result['latency_p95_ms']:.2f} ms, min {result['latency_min_ms']:.2f} ms "
            f"({result['runs']} runs after {result['warmup']} warm-up)",
        ),
        ("real time", f"{result['real_time_factor']:.4f} x (latency / chunk duration)"),
        ("peak memory", memory),
        ("machine", f"{result['machine']}, {result['cpus']} CPUs"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
