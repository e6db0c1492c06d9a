"""How much an int8 export of a finished run moves its UAR, over draws of calibration chunks.

For each calibration size (``--sizes``) the run is exported with ``--quantize int8`` (the
default selective int8: ops above ``export.int8_float_threshold`` stay float32), and once more
as a full-integer classifier at the recipe's ``representative_size``, each into a temporary copy
of the run. Every int8 model is then compared with the run's Keras model on the devel and test
partitions: top-1 agreement, mean absolute probability difference, UAR and its change in points
with the 95 % interval of a paired bootstrap over the files. A change that flips sign between
calibration draws is near-tie noise, not a property of the quantisation.

Usage::

    python benchmarks/int8_parity.py runs/demo [--sizes 100,200,313]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from dsplug.artifacts import RunDir
from dsplug.deploy import classifier_float_layers, export_config, export_run, parity_report
from dsplug.data import decode_for, manifest_for
from dsplug.pipeline import load_trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run (dsplug run --out DIR)")
    parser.add_argument("--sizes", default="100,200,313", help="calibration chunk counts")
    args = parser.parse_args()
    run = load_trained(args.run_dir, command="export")
    manifest = manifest_for(run.recipe.data, seed=run.recipe.seed)
    wanted = run.recipe.export
    variants = [(f"int8, {size} calibration chunks", int(size), wanted.int8_float_threshold) for size in args.sizes.split(",") if size]
    variants.append((f"int8 full-integer, {wanted.representative_size} chunks", wanted.representative_size, None))

    models = {}
    with tempfile.TemporaryDirectory(prefix="int8-parity-") as folder:
        for label, size, threshold in variants:
            copy = Path(folder) / f"run-{len(models)}"
            copy.mkdir()
            for name in (RunDir.RECIPE, RunDir.DATA, RunDir.KERAS_MODEL):
                shutil.copy2(args.run_dir / name, copy / name)
            config = export_config(
                RunDir(copy), quantize=["int8"], representative_size=size,
                int8_float_threshold=threshold, full_integer=threshold is None,
            )
            export_run(RunDir(copy), config=config)
            models[label] = copy / RunDir.model_file("int8")
            print(f"{label}: float32 layers {classifier_float_layers(models[label]) or 'none'}", flush=True)

        recipe = run.recipe
        for partition in ("devel", "test"):
            items = manifest.partition(partition)
            if not items:
                continue
            chunks = decode_for(items, config=recipe.data, on_bad_file="skip")  # the export's own decoding
            report = parity_report(
                keras_model=run.pipeline.end_to_end, tflite_paths=models, audio=chunks.audio,
                file_index=chunks.file_index, file_targets=manifest.targets(chunks.files),
                classes=run.classes, batch_size=recipe.train.batch_size,
            )
            keras_uar = (report["keras"] or {}).get("uar")
            print(f"\n{partition}: {report['files']} files, Keras UAR {keras_uar:.3f}" if keras_uar is not None else f"\n{partition}")
            print(f"{'model':<40} {'agreement':>9} {'mean |dp|':>9} {'UAR':>6}  UAR change, points (95 % CI)")
            for label, row in report["models"].items():
                change = row["uar_change"]
                low, high = row["uar_change_ci95"] or (None, None)
                interval = f"{100 * change:+.1f} ({100 * low:+.1f} to {100 * high:+.1f})" if change is not None and low is not None else "-"
                uar = f"{row['uar']:.3f}" if row["uar"] is not None else "-"
                print(f"{label:<40} {row['top1_agreement']:9.3f} {row['mean_abs_diff']:9.4f} {uar:>6}  {interval}")


if __name__ == "__main__":
    main()
