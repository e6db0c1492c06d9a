#!/usr/bin/env python3
"""Recognition quality on real data: the baseline and dsplug's candidates, one table, one run.

    python benchmarks/quality.py                       # tones and voices (bundled), all candidates
    python benchmarks/quality.py --manifest my.csv     # ... and your own manifest
    python benchmarks/quality.py --candidates init     # only what `dsplug init` writes

Every set is split as its manifest says (speakers, characters, kits); every column is trained on
train (+ devel where the recipe refits) and tested once on test, on the same files:

- ``baseline``: per-file log-Mel statistics (per-band mean, std and std of the first time
  difference; 16 kHz, 128 bands, 32 ms / 16 ms) + StandardScaler + linear SVM, C chosen on devel,
  trained on train (the 20-line yardstick of issue #13).
- ``init``: the recipe ``dsplug init`` writes for the manifest, run without edits.
- ``init-train-only``: the same without the final refit on train + devel (``train.final_fit: false``).
- ``mlp``: round 1's demo recipe (EfficientNet-Lite0 frozen, final features, MLP head, 25 epochs)
  with only ``data.manifest`` and ``data.chunk_seconds`` changed.

Columns: test UAR with its 95 % bootstrap CI, the paired-bootstrap UAR difference to the baseline
(same test files resampled together), the lowest per-class recall and the wall time. Results also
go to ``OUT/quality.json`` and ``OUT/quality.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SETS = {"tones": ROOT / "data/tones/manifest.csv", "voices": ROOT / "data/voices/manifest.csv"}
CANDIDATES = ("init", "init-train-only", "mlp")


def baseline(manifest_path: Path) -> dict:
    """The yardstick: log-Mel statistics + linear SVM (C by devel UAR, fit on train)."""
    import librosa
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from dsplug.audio import load_audio
    from dsplug.data import load_manifest
    from dsplug.evaluate import classification_metrics

    start = time.perf_counter()
    manifest = load_manifest(manifest_path)

    def stats(item) -> np.ndarray:
        mel = librosa.feature.melspectrogram(y=load_audio(item.path, sample_rate=16000), sr=16000, n_fft=512, hop_length=256, n_mels=128)
        db = librosa.power_to_db(mel, ref=1.0)
        delta = np.diff(db, axis=1) if db.shape[1] > 1 else np.zeros_like(db)
        return np.concatenate([db.mean(axis=1), db.std(axis=1), delta.std(axis=1)])

    parts = {name: manifest.partition(name) for name in ("train", "devel", "test")}
    x = {name: np.stack([stats(item) for item in items]) for name, items in parts.items()}
    y = {name: manifest.targets(items) for name, items in parts.items()}
    k = len(manifest.classes)

    def model(c: float):
        return make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=20000)).fit(x["train"], y["train"])

    scores = {}
    for c in (10.0 ** e for e in np.arange(-5, 2.01, 0.5)):
        scores[c] = classification_metrics(y_true=y["devel"], probs=np.eye(k)[model(c).predict(x["devel"])], labels=manifest.classes)["uar"]
    best = min(c for c, s in scores.items() if s >= max(scores.values()) - 1e-9)
    predicted = model(best).predict(x["test"])
    return {
        "files": [str(item.path) for item in parts["test"]], "truth": y["test"], "predicted": predicted,
        "classes": manifest.classes, "seconds": time.perf_counter() - start, "detail": f"C={best:g} (devel UAR {scores[best]:.3f})",
    }


def candidate_recipe(name: str, manifest_path: Path, folder: Path) -> tuple[Path, list[str]]:
    """The recipe file and overrides of a candidate."""
    from dsplug.workflows.init import choices, initial_recipe

    if name in ("init", "init-train-only"):
        recipe = folder / "init.yaml"
        recipe.write_text(initial_recipe(manifest_path, out=recipe), encoding="utf-8")
        return recipe, ["train.final_fit=false"] if name == "init-train-only" else []
    if name == "mlp":
        chunk = choices(manifest_path)["data.chunk_seconds"].value
        overrides = [f"data.manifest={manifest_path}", f"data.chunk_seconds={chunk}", "export.quantize=[]", "name=mlp"]
        return ROOT / "benchmarks" / "round1-demo.yaml", overrides
    raise SystemExit(f"unknown candidate {name!r}; choose from {', '.join(CANDIDATES)}")


def _best_epoch(run_dir: Path) -> str:
    """"best epoch E of N (devel score S)" from a trained run's history.csv."""
    import csv

    with open(run_dir / "history.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("devel_score")]
    if not rows:
        return "no devel score"
    best = max(range(len(rows)), key=lambda i: float(rows[i]["devel_score"]))
    return f"best epoch {best + 1} of {len(rows)} (devel score {float(rows[best]['devel_score']):.3f})"


def run_candidate(name: str, manifest_path: Path, folder: Path) -> dict:
    """Run one candidate recipe into ``folder/name`` and read its test predictions."""
    import csv

    from dsplug.recipe.loader import load_recipe
    from dsplug.workflows.run import run_point

    recipe, overrides = candidate_recipe(name, manifest_path, folder)
    [point] = load_recipe(recipe, overrides=[*overrides, "export.quantize=[]"])
    start = time.perf_counter()
    run_dir = folder / name
    result = run_point(point, run_dir=run_dir)
    seconds = time.perf_counter() - start
    classes = result["metrics"]["test"]["labels"]
    with open(run_dir / "predictions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    probe = json.loads((run_dir / "probe.json").read_text()) if (run_dir / "probe.json").is_file() else None
    return {
        "files": [row["file"] for row in rows],
        "truth": np.array([classes.index(row["label"]) for row in rows]),
        "predicted": np.array([classes.index(row["predicted"]) for row in rows]),
        "classes": classes, "seconds": seconds,
        "detail": f"C={probe['c']:g} ({probe['selection']})" if probe else _best_epoch(run_dir),
    }


def row(set_name: str, name: str, result: dict, reference: dict, *, seed: int) -> dict:
    """Metrics of one column, paired with the baseline on the same test files."""
    from dsplug.evaluate import evaluate_partition, paired_uar_difference

    order = [result["files"].index(f) for f in reference["files"]]
    truth, predicted = np.asarray(result["truth"])[order], np.asarray(result["predicted"])[order]
    if not np.array_equal(truth, reference["truth"]):
        raise SystemExit(f"{set_name}/{name}: the test files' labels differ from the baseline's")
    k = len(result["classes"])
    metrics = evaluate_partition(y_true=truth, probs=np.eye(k)[predicted], labels=result["classes"], level="file", seed=seed)
    paired = paired_uar_difference(y_true=truth, pred_a=np.asarray(reference["predicted"]), pred_b=predicted, n_classes=k, seed=seed)
    recalls = {c: r for c, r in metrics["recall_per_class"].items() if r is not None}
    low = min(recalls, key=recalls.get)
    return {
        "set": set_name, "candidate": name, "uar": metrics["uar"], "ci95": metrics["uar_ci95"],
        "difference": paired["difference"], "difference_ci95": paired["ci95"],
        "min_recall": recalls[low], "min_recall_class": low, "seconds": result["seconds"], "detail": result["detail"],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| set | candidate | test UAR [95 % CI] | Δ vs baseline [paired 95 % CI] | lowest class recall | wall s | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = "—" if r["candidate"] == "baseline" else f"{r['difference'] * 100:+.1f} [{r['difference_ci95'][0] * 100:+.1f}, {r['difference_ci95'][1] * 100:+.1f}]"
        lines.append(
            f"| {r['set']} | {r['candidate']} | {r['uar']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | {diff} | "
            f"{r['min_recall']:.2f} ({r['min_recall_class']}) | {r['seconds']:.0f} | {r['detail']} |"
        )
    averages = {}
    for r in rows:
        if r["candidate"] != "baseline":
            averages.setdefault(r["candidate"], []).append(r["difference"])
    lines.append("")
    lines += [f"Mean Δ over the sets, {name}: {np.mean(d) * 100:+.1f} UAR points" for name, d in averages.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="*", default=list(SETS), help="bundled sets to run (default: all)")
    parser.add_argument("--manifest", nargs="*", default=[], type=Path, help="more manifests (path,label,partition[,group])")
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help=f"comma-separated, from {', '.join(CANDIDATES)}")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "quality", help="where the runs and the table go")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sets = {name: SETS[name] for name in args.sets} | {path.stem if path.stem != "manifest" else path.parent.name: path.resolve() for path in args.manifest}
    rows = []
    for set_name, manifest_path in sets.items():
        folder = args.out / set_name
        folder.mkdir(parents=True, exist_ok=True)
        reference = baseline(manifest_path)
        rows.append(row(set_name, "baseline", reference, reference, seed=args.seed))
        print(f"{set_name}: baseline {rows[-1]['uar']:.3f}", file=sys.stderr, flush=True)
        for name in args.candidates.split(","):
            rows.append(row(set_name, name, run_candidate(name, manifest_path, folder), reference, seed=args.seed))
            print(f"{set_name}: {name} {rows[-1]['uar']:.3f} ({rows[-1]['seconds']:.0f} s)", file=sys.stderr, flush=True)
    import platform

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    text = f"Machine: {machine}; total wall time {sum(r['seconds'] for r in rows):.0f} s\n\n" + table(rows)
    print(text)
    (args.out / "quality.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "quality.json").write_text(json.dumps(rows, indent=2, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
