"""Size and speed of deployable end-to-end models (3 s audio chunk in, probabilities out).

For each backbone the whole pipeline (spectrogram front-end -> backbone -> MLP head, 224 x 224,
random weights: speed and size do not depend on the weight values, except that ``int8`` keeps
the layers with a large quantisation error float32, and which those are depends on the weights)
is converted to TFLite in every post-training quantisation mode (``none``, ``dynamic``,
``float16``, ``int8``; ``int8`` calibrated on real bundled recordings; ``qat`` needs a trained
run) and timed with ai-edge-litert on one chunk after a warm-up; the Keras
model is timed on the same chunk in the same process (a ``tf.function`` call, i.e. graph mode,
the fastest way to run it in TensorFlow).

Usage::

    python benchmarks/deploy.py [--backbones densenet121,mobilenet_v2,squeezenet_v1]
        [--modes none,dynamic,float16,int8] [--threads 2] [--runs 30] [--calibration 50]

Wall times grow when other processes compete for the cores: the load average is printed, and
the single-threaded CPU time per chunk (``1-thr CPU ms``) is given as a load-independent figure.

Targets on a 2-core x86-64 machine: densenet121 <= 70 ms (float32) and <= 35 ms (int8 or
dynamic), int8 file <= 9 MB; mobilenet_v2 <= 8 ms (float32).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from dsplug import data
from dsplug.deploy import QUANTIZE_MODES, gzip_size
from dsplug.deploy.convert import convert
from dsplug.pipeline import build_pipeline
from dsplug.recipe.spec import PipelineSpec
from dsplug.recipe.loader import load_recipe

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo.yaml"
TARGETS = {
    ("densenet121", "none"): "<= 70 ms",
    ("densenet121", "dynamic"): "<= 35 ms",
    ("densenet121", "int8"): "<= 35 ms, <= 9 MB",
    ("mobilenet_v2", "none"): "<= 8 ms",
}


def calibration_chunks(recipe, *, count: int) -> np.ndarray:
    """``count`` real chunks (3 s, zero-padded tone recordings) spread over the train partition."""
    manifest = data.load_manifest(recipe.data.manifest, task="classification")
    items = manifest.partition("train")
    step = max(1, len(items) // count)
    chunks = data.decode_chunks(
        items[::step][:count], sample_rate=recipe.data.sample_rate, chunk_seconds=recipe.data.chunk_seconds,
        hop_seconds=recipe.data.chunk_seconds, pad_mode="zero",
    )
    return chunks.audio[:count]


def time_tflite(content: bytes, chunk: np.ndarray, *, threads: int, runs: int) -> tuple[list[float], int]:
    """Wall times in ms of single-chunk invocations (after 5 warm-up runs), and the number of
    XNNPACK delegate partitions (1-3 when the CNN runs in XNNPACK as a whole)."""
    time.sleep(2.0)  # let TensorFlow's thread pools (conversion, calibration) go idle first
    interpreter = Interpreter(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    partitions = sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
    index = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    times = []
    for i in range(runs + 5):
        start = time.perf_counter()
        interpreter.set_tensor(index, chunk)
        interpreter.invoke()
        interpreter.get_tensor(out)
        if i >= 5:
            times.append((time.perf_counter() - start) * 1000.0)
    return times, partitions


def cpu_tflite(content: bytes, chunk: np.ndarray, *, runs: int) -> float:
    """Mean CPU time in ms of one single-threaded invocation (the calling thread's CPU time).

    Unlike wall time it does not grow when other processes compete for the cores, so it is the
    figure to compare when the machine is busy; the 1-thread latency of an idle machine is
    about this value.
    """
    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    times = []
    for i in range(runs + 5):
        start = time.thread_time()
        interpreter.set_tensor(index, chunk)
        interpreter.invoke()
        if i >= 5:
            times.append((time.thread_time() - start) * 1000.0)
    return statistics.fmean(times)


def time_keras(model, chunk: np.ndarray, *, runs: int) -> list[float]:
    """Wall times in ms of single-chunk calls of the Keras model in graph mode (after warm-up)."""
    function = tf.function(lambda x: model(x, training=False))
    tensor = tf.constant(chunk)
    times = []
    for i in range(runs + 5):
        start = time.perf_counter()
        function(tensor).numpy()
        if i >= 5:
            times.append((time.perf_counter() - start) * 1000.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", default="densenet121,mobilenet_v2,squeezenet_v1")
    # qat needs a fine-tuned model (dsplug export --quantize qat on a trained run), not a random one
    parser.add_argument("--modes", default=",".join(m for m in QUANTIZE_MODES if m != "qat"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30, help="timed runs (>= 20)")
    parser.add_argument("--calibration", type=int, default=50, help="int8 calibration chunks")
    args = parser.parse_args()
    runs = max(args.runs, 20)
    modes = [m for m in args.modes.split(",") if m]
    if "qat" in modes:
        parser.error("--modes qat: quantization-aware training needs a trained run; use `dsplug export RUN --quantize qat`")

    print(
        f"end-to-end 3 s chunk at 16 kHz -> 224x224 -> backbone -> mlp(128); "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, "
        f"TFLite {args.threads} threads, {runs} runs after 5 warm-up runs"
    )
    header = (
        f"{'backbone':<14} {'mode':<8} {'size MB':>8} {'gzip MB':>8} {'TFLite ms':>10} {'p50 ms':>7} {'min ms':>7} "
        f"{'1-thr CPU ms':>12} {'Keras ms':>9} {'Keras/TFLite':>12} {'XNNPACK parts':>13} {'convert s':>9}  target"
    )
    print("load average before:", " ".join(f"{v:.2f}" for v in os.getloadavg()))
    rows = []
    for name in [b for b in args.backbones.split(",") if b]:
        [point] = load_recipe(DEMO, overrides=[
            f"model.backbone.name={name}", "model.backbone.weights=none",
            "frontend.image_size=[224, 224]", "data.chunk_seconds=3.0",
        ])
        recipe = point.recipe
        spec = PipelineSpec.of(recipe)
        model = build_pipeline(spec, num_outputs=5).end_to_end
        chunks = calibration_chunks(recipe, count=args.calibration)
        chunk = chunks[:1]
        reference = None
        measured = []
        for mode in modes:
            start = time.perf_counter()
            content = convert(
                model, samples=spec.chunk_samples, quantize=mode,  # type: ignore[arg-type]
                representative=chunks, float_reference=reference,
            )
            seconds = time.perf_counter() - start
            if mode == "none":
                reference = content
            times, partitions = time_tflite(content, chunk, threads=args.threads, runs=runs)
            measured.append((mode, content, times, partitions, cpu_tflite(content, chunk, runs=runs), seconds))
        # Keras last: TensorFlow's thread pools keep spinning for a while after a call and
        # would slow down a TFLite measurement that follows
        keras_times = time_keras(model, chunk, runs=runs)
        keras_ms = statistics.fmean(keras_times)
        for mode, content, times, partitions, cpu, seconds in measured:
            mean, p50 = statistics.fmean(times), float(np.percentile(times, 50))
            row = (
                f"{name:<14} {mode:<8} {len(content) / 1e6:8.2f} {gzip_size(content) / 1e6:8.2f} "
                f"{mean:10.2f} {p50:7.2f} {min(times):7.2f} {cpu:12.2f} {keras_ms:9.2f} {keras_ms / mean:12.1f} "
                f"{partitions:13d} {seconds:9.1f}  {TARGETS.get((name, mode), '')}"
            )
            rows.append(row)
            print(row, f"(Keras min {min(keras_times):.2f} ms)", flush=True)
    print()
    print(header)
    print("\n".join(rows))
    print("Keras min ms per backbone is in the log above; load average after:", " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
