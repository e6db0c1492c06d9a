#!/usr/bin/env python3
"""Recognition quality on real data: the baseline and dsplug's candidates, one table, one run.

    python benchmarks/quality.py                       # tones, voices and drums (bundled), all candidates
    python benchmarks/quality.py --manifest my.csv     # ... and your own manifest
    python benchmarks/quality.py --candidates init     # only what `dsplug init` writes

Every set is split as its manifest says (speakers, characters, kits); every column is trained on
train (+ devel where the recipe refits) and tested once on test, on the same files:

- ``baseline-train`` / ``baseline-refit``: the acceptance reference (per-file log-Mel statistics
  and log duration + class-balanced linear SVM, C chosen on devel), fitted on train, or refitted
  on train + devel.
- ``init``: the recipe ``dsplug init`` writes for the manifest, run without edits (final fit on
  train + devel: compared with ``baseline-refit``).
- ``init-train-only``: the same without the final refit (``train.final_fit: false``; compared
  with ``baseline-train``).
- ``yamnet-probe``: ``init``'s recipe with YAMNet's AudioSet embeddings (``model.backbone.name=yamnet``,
  ``weights=audioset``, ``taps=last``): what TFLite Model Maker and Teachable Machine users get.
- ``mlp``: round 1's demo recipe (EfficientNet-Lite0 frozen, final features, MLP head, 25 epochs)
  with only ``data.manifest`` and ``data.chunk_seconds`` changed.

Columns: test UAR with its 95 % bootstrap CI, the paired-bootstrap UAR difference to the baseline
of the same protocol (same test files resampled together), the lowest per-class recall and the wall time. Results also
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
SETS = {name: ROOT / f"data/{name}/manifest.csv" for name in ("tones", "voices", "drums")}
CANDIDATES = ("init", "init-train-only", "yamnet-probe", "mlp")
#: The baseline each candidate is compared with, like for like: a final fit on train + devel
#: against the refitted baseline, a model fitted on train against the baseline fitted on train.
PROTOCOL = {"init": "baseline-refit", "yamnet-probe": "baseline-refit", "init-train-only": "baseline-train", "mlp": "baseline-train"}


def baseline(manifest_path: Path) -> dict[str, dict]:
    """The acceptance reference (``shared/baseline/logmel_svm.py``, reimplemented exactly):
    per-file log-Mel statistics (64 bands at 16 kHz, 512 / 256 samples; per-band mean, std and
    std of librosa's delta) and the log duration, StandardScaler + class-balanced linear SVM, C
    in {0.01, 0.1, 1} chosen on devel. Two protocols: fitted on train (``baseline-train``),
    refitted on train + devel (``baseline-refit``)."""
    import librosa
    from sklearn.metrics import recall_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from dsplug.data import load_manifest

    start = time.perf_counter()
    manifest = load_manifest(manifest_path)

    def stats(item) -> np.ndarray:
        y, sr = librosa.load(str(item.path), sr=16000, mono=True)
        y = np.pad(y, (0, max(0, 512 - len(y))))
        m = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=256, n_mels=64))
        d = librosa.feature.delta(m, width=3) if m.shape[1] >= 3 else np.zeros_like(m)
        return np.concatenate([m.mean(1), m.std(1), d.std(1), [np.log(len(y) / sr)]])

    parts = {name: manifest.partition(name) for name in ("train", "devel", "test")}
    x = {name: np.stack([stats(item) for item in items]) for name, items in parts.items()}
    y = {name: manifest.targets(items) for name, items in parts.items()}

    def model(c: float, names: tuple[str, ...]):
        svm = make_pipeline(StandardScaler(), LinearSVC(C=c, class_weight="balanced", max_iter=20000))
        return svm.fit(np.concatenate([x[n] for n in names]), np.concatenate([y[n] for n in names]))

    scores = {c: recall_score(y["devel"], model(c, ("train",)).predict(x["devel"]), average="macro") for c in (0.01, 0.1, 1.0)}
    best = max(scores, key=scores.get)
    seconds = time.perf_counter() - start
    common = {"files": [str(item.path) for item in parts["test"]], "truth": y["test"], "classes": manifest.classes, "seconds": seconds}
    return {
        "baseline-train": {**common, "predicted": model(best, ("train",)).predict(x["test"]), "detail": f"C={best:g} (devel UAR {scores[best]:.3f})"},
        "baseline-refit": {**common, "predicted": model(best, ("train", "devel")).predict(x["test"]), "detail": f"C={best:g} on devel, refitted on train + devel"},
    }


def candidate_recipe(name: str, manifest_path: Path, folder: Path) -> tuple[Path, list[str]]:
    """The recipe file and overrides of a candidate."""
    from dsplug.workflows.init import choices, initial_recipe

    if name in ("init", "init-train-only", "yamnet-probe"):
        recipe = folder / "init.yaml"
        recipe.write_text(initial_recipe(manifest_path, out=recipe), encoding="utf-8")
        if name == "yamnet-probe":  # what TFLite Model Maker / Teachable Machine users get
            return recipe, ["model.backbone.name=yamnet", "model.backbone.weights=audioset", "model.taps=last", "name=yamnet-probe"]
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
        "| set | candidate | test UAR [95 % CI] | Δ vs the baseline of the same protocol [paired 95 % CI] | lowest class recall | wall s | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = "—" if r["candidate"].startswith("baseline") else f"{r['difference'] * 100:+.1f} [{r['difference_ci95'][0] * 100:+.1f}, {r['difference_ci95'][1] * 100:+.1f}]"
        lines.append(
            f"| {r['set']} | {r['candidate']} | {r['uar']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | {diff} | "
            f"{r['min_recall']:.2f} ({r['min_recall_class']}) | {r['seconds']:.0f} | {r['detail']} |"
        )
    averages = {}
    for r in rows:
        if not r["candidate"].startswith("baseline"):
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
        references = baseline(manifest_path)
        for name, reference in references.items():
            rows.append(row(set_name, name, reference, reference, seed=args.seed))
            print(f"{set_name}: {name} {rows[-1]['uar']:.3f}", file=sys.stderr, flush=True)
        for name in args.candidates.split(","):
            rows.append(row(set_name, name, run_candidate(name, manifest_path, folder), references[PROTOCOL[name]], seed=args.seed))
            print(f"{set_name}: {name} {rows[-1]['uar']:.3f} ({rows[-1]['seconds']:.0f} s)", file=sys.stderr, flush=True)
    import platform

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    text = f"Machine: {machine}; total wall time {sum(r['seconds'] for r in rows):.0f} s\n\n" + table(rows)
    print(text)
    (args.out / "quality.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "quality.json").write_text(json.dumps(rows, indent=2, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
