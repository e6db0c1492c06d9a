"""Training throughput (samples/s) of phase 1 and phase 2 at 224x224, on real bundled audio.

    python benchmarks/train.py [--backbones mobilenet_v2,densenet121] [--steps 6] [--batch 16]

Phase 1 is measured with the SapAugment policy active (clean forward pass + augmented training
step, as in the paper) and with cached frozen-backbone features (no augmentation); phase 2 with
the top layers unfrozen (DenseNet121: 85 as in the paper's MPSSC recipe; MobileNetV2: 30).
Weights are random (``weights: none``): speed does not depend on them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dsplug import data as data_stage  # noqa: E402
from dsplug.pipeline import build_pipeline  # noqa: E402
from dsplug.recipe.spec import PipelineSpec
from dsplug.recipe.loader import load_recipe  # noqa: E402
from dsplug.workflows.run import trainer_for  # noqa: E402

FINETUNE = {"densenet121": 85, "mobilenet_v2": 30}


def measure(step, args, steps: int, batch: int) -> float:
    step(*args(0))  # trace + warm up
    start = time.perf_counter()
    for i in range(1, steps + 1):
        step(*args(i))
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="mobilenet_v2,densenet121")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    manifest = data_stage.load_manifest(ROOT / "data/tones/manifest.csv")
    items = manifest.partition("train")[: args.batch * 4]
    chunks = data_stage.decode_chunks(items, sample_rate=16000, chunk_seconds=3.0, hop_seconds=3.0, pad_mode="repeat")
    audio = chunks.audio[: args.batch * 4]
    targets = np.eye(5, dtype=np.float32)[manifest.targets(chunks.files)][chunks.file_index][: len(audio)]
    weights = np.ones(len(audio), np.float32)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"TensorFlow {tf.__version__}, GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    print(f"batch {args.batch}, 3 s chunks at 16 kHz, 224x224 images, {args.steps} timed steps after warm-up\n")
    print(f"{'backbone':<14} {'phase 1 (SapAugment)':>21} {'phase 1 (cached features)':>26} {'phase 2 (top layers)':>21}")
    for name in args.backbones.split(","):
        [point] = load_recipe(ROOT / "recipes/demo.yaml", overrides=[
            f"model.backbone.name={name}", "frontend.image_size=[224, 224]", f"train.batch_size={args.batch}",
            f"train.phase2.finetune_layers={FINETUNE.get(name, 30)}", "data.chunk_seconds=3.0",
        ])
        recipe = point.recipe
        pipeline = build_pipeline(PipelineSpec.of(recipe), num_outputs=5)
        with tempfile.TemporaryDirectory() as run_dir:
            trainer = trainer_for(recipe, pipeline=pipeline, run_dir=run_dir)

            def batch_args(i, inputs=audio):
                index = np.arange(i * args.batch, (i + 1) * args.batch) % len(inputs)
                seed = tf.constant([0, i], tf.int32)
                return tf.constant(inputs[index]), tf.constant(targets[index]), tf.constant(weights[index]), seed

            trainer._set_trainable(1)
            phase1 = measure(trainer._train_step(trainer._optimizer(1e-3)), batch_args, args.steps, args.batch)
            extract = trainer.extractor()
            extract(audio[: args.batch])  # trace + warm up
            start = time.perf_counter()
            features = np.concatenate([extract(audio[i : i + args.batch]) for i in range(0, len(audio), args.batch)])
            extract = len(audio) / (time.perf_counter() - start)
            cached = measure(trainer._feature_step(trainer._optimizer(1e-3)), lambda i: batch_args(i, features), args.steps * 5, args.batch)
            trainer._set_trainable(2)
            phase2 = measure(trainer._train_step(trainer._optimizer(1e-4)), batch_args, args.steps, args.batch)
        print(f"{name:<14} {phase1:>15.1f} smp/s {f'{cached:.0f} smp/s (+{extract:.1f} smp/s once)':>26} {phase2:>15.1f} smp/s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
