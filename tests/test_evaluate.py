"""Tests of dsplug.evaluate: metrics vs sklearn/scipy, bootstrap, aggregation, writers.

Also ``metrics.json`` (written by ``RunDir.write_metrics``) and the plots of ``dsplug.report.figures``.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from sklearn import metrics as skm

from dsplug import evaluate
from dsplug.evaluate import bootstrap
from dsplug.artifacts import RunDir
from dsplug.errors import DataError
from dsplug.report import figures

ROOT = Path(__file__).resolve().parents[1]
TONES_MANIFEST = ROOT / "data" / "tones" / "manifest.csv"


def noisy_classifier(
    *, n: int, k: int, accuracy: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random truth, and softmax probabilities whose arg-max is right ~``accuracy`` of the time."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, size=n)
    guess = np.where(rng.random(n) < accuracy, y_true, rng.integers(0, k, size=n))
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), guess] += 4.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, probs


def labels_of(k: int) -> list[str]:
    return [f"class{i}" for i in range(k)]


# ---------------------------------------------------------------------------------------------
# classification metrics
# ---------------------------------------------------------------------------------------------


def test_classification_metrics_hand_checked_example() -> None:
    # 3 classes; class 0: 2 of 3 right, class 1: 1 of 2 right, class 2: 1 of 1 right.
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 2, 1, 0, 2])
    probs = np.eye(3)[y_pred] * 0.7 + 0.1
    result = evaluate.classification_metrics(y_true=y_true, probs=probs, labels=["a", "b", "c"])

    expected_recalls = {"a": 2 / 3, "b": 1 / 2, "c": 1.0}
    assert result["recall_per_class"] == pytest.approx(expected_recalls)
    assert result["uar"] == pytest.approx(np.mean(list(expected_recalls.values())))
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["confusion"] == [[2, 0, 1], [1, 1, 0], [0, 0, 1]]
    assert result["labels"] == ["a", "b", "c"]
    assert result["n"] == 6
    # F1 per class from precision/recall: a: p=2/3 r=2/3; b: p=1 r=1/2; c: p=1/2 r=1.
    f1 = [2 * p * r / (p + r) for p, r in ((2 / 3, 2 / 3), (1.0, 0.5), (0.5, 1.0))]
    assert result["f1_macro"] == pytest.approx(np.mean(f1))


@pytest.mark.parametrize(("n", "k", "seed"), [(50, 2, 0), (300, 5, 1), (400, 12, 2), (37, 20, 3)])
def test_classification_metrics_match_sklearn_on_random_inputs(n: int, k: int, seed: int) -> None:
    y_true, probs = noisy_classifier(n=n, k=k, accuracy=0.6, seed=seed)
    y_true[y_true == k - 1] = 0  # the last class never occurs in the truth
    y_pred = probs.argmax(axis=1)
    result = evaluate.classification_metrics(y_true=y_true, probs=probs, labels=labels_of(k))

    present = np.unique(y_true)
    with warnings.catch_warnings():  # the last class is predicted but absent from the truth
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        assert result["uar"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert result["uar"] == pytest.approx(
        skm.recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    )
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert result["f1_macro"] == pytest.approx(
        skm.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    )
    recalls = skm.recall_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    for index, recall in zip(present, recalls, strict=True):
        assert result["recall_per_class"][f"class{index}"] == pytest.approx(recall)
    assert result["recall_per_class"][f"class{k - 1}"] is None
    assert result["confusion"] == skm.confusion_matrix(y_true, y_pred, labels=range(k)).tolist()
    assert np.asarray(result["confusion"]).shape == (k, k)


def test_uar_ignores_classes_absent_from_truth_even_when_predicted() -> None:
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 2, 1, 1])  # class 2 is predicted but has no true sample
    result = evaluate.classification_metrics(
        y_true=y_true, probs=np.eye(3)[y_pred], labels=["a", "b", "c"]
    )
    assert result["uar"] == pytest.approx((0.5 + 1.0) / 2)
    # sklearn's plain macro recall over the union of labels would count class 2 as recall 0.
    assert skm.recall_score(y_true, y_pred, average="macro", zero_division=0) == pytest.approx(0.5)
    assert result["confusion"][0] == [1, 0, 1]


# ---------------------------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------------------------


def uar_per_row(k: int):
    def metric(t: np.ndarray, p: np.ndarray) -> np.ndarray:
        return bootstrap.uar_rows(t, p, n_classes=k)

    return metric


def test_bootstrap_ci_contains_estimate_and_narrows_with_n() -> None:
    widths = []
    for n in (100, 2000):
        y_true, probs = noisy_classifier(n=n, k=4, accuracy=0.7, seed=n)
        y_pred = probs.argmax(axis=1)
        point = skm.balanced_accuracy_score(y_true, y_pred)
        low, high = evaluate.bootstrap_ci(
            y_true=y_true, y_pred=y_pred, metric=uar_per_row(4), vectorized=True, seed=0
        )
        assert low < point < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # ~1/sqrt(n): 20x the samples, ~4.5x narrower


def test_bootstrap_ci_reproducible_with_seed_and_changes_with_another() -> None:
    y_true, probs = noisy_classifier(n=200, k=3, accuracy=0.6, seed=7)
    y_pred = probs.argmax(axis=1)

    def ci(seed: int) -> tuple[float, float]:
        return evaluate.bootstrap_ci(
            y_true=y_true, y_pred=y_pred, metric=skm.accuracy_score, n_resamples=300, seed=seed
        )

    assert ci(1) == ci(1)
    assert ci(1) != ci(2)


def test_bootstrap_ci_vectorized_equals_sklearn_loop_and_scipy() -> None:
    y_true, probs = noisy_classifier(n=150, k=3, accuracy=0.6, seed=11)
    y_pred = probs.argmax(axis=1)
    slow = evaluate.bootstrap_ci(
        y_true=y_true, y_pred=y_pred, metric=skm.balanced_accuracy_score, n_resamples=400, seed=3
    )
    fast = evaluate.bootstrap_ci(
        y_true=y_true, y_pred=y_pred, metric=uar_per_row(3), vectorized=True,
        n_resamples=400, seed=3,
    )
    reference = scipy.stats.bootstrap(
        (y_true, y_pred),
        lambda t, p, axis=-1: skm.balanced_accuracy_score(t, p),
        paired=True,
        vectorized=False,
        n_resamples=400,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(3),
    ).confidence_interval
    assert fast == pytest.approx(slow, abs=1e-12)
    assert slow == pytest.approx((reference.low, reference.high), abs=1e-12)


def test_bootstrap_ci_memory_batches_do_not_change_the_result(monkeypatch) -> None:
    y_true, probs = noisy_classifier(n=120, k=3, accuracy=0.6, seed=5)
    y_pred = probs.argmax(axis=1)

    def ci() -> tuple[float, float]:
        return evaluate.bootstrap_ci(
            y_true=y_true, y_pred=y_pred, metric=uar_per_row(3), vectorized=True,
            n_resamples=250, seed=9,
        )

    whole = ci()
    monkeypatch.setattr(bootstrap, "BOOTSTRAP_CHUNK_ELEMENTS", 120 * 7)  # 7 resamples a batch
    assert ci() == whole


def test_bootstrap_ci_robust_to_resamples_missing_classes() -> None:
    # Three samples of three classes: most resamples miss at least one class.
    y_true = np.array([0, 1, 2])
    y_pred = np.array([0, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        slow = evaluate.bootstrap_ci(
            y_true=y_true, y_pred=y_pred, metric=skm.balanced_accuracy_score,
            n_resamples=200, seed=0,
        )
        fast = evaluate.bootstrap_ci(
            y_true=y_true, y_pred=y_pred, metric=uar_per_row(3), vectorized=True,
            n_resamples=200, seed=0,
        )
    assert slow == pytest.approx(fast)
    assert 0.0 <= slow[0] <= slow[1] <= 1.0


def test_bootstrap_ci_leaves_out_undefined_resamples() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0])

    def undefined_unless_first_sample_drawn(t: np.ndarray, p: np.ndarray) -> float:
        return float(t.mean()) if 0.0 in t else math.nan

    low, high = evaluate.bootstrap_ci(
        y_true=y, y_pred=y, metric=undefined_unless_first_sample_drawn, n_resamples=300, seed=1
    )
    assert math.isfinite(low) and math.isfinite(high)
    assert high <= 2.25  # a resample holding 0 has mean at most (0 + 3 * 3) / 4


# ---------------------------------------------------------------------------------------------
# evaluate_partition, JSON
# ---------------------------------------------------------------------------------------------


def test_evaluate_partition_format_and_json_round_trip(tmp_path: Path) -> None:
    y_true, probs = noisy_classifier(n=240, k=4, accuracy=0.7, seed=21)
    labels = labels_of(4)
    devel = evaluate.evaluate_partition(
        y_true=y_true, probs=probs, labels=labels, level="file", n_resamples=500, seed=0
    )
    test = evaluate.evaluate_partition(
        y_true=y_true[:60], probs=probs[:60], labels=labels, level="chunk", n_resamples=500
    )
    architecture_keys = {"uar", "uar_ci95", "accuracy", "f1_macro", "n", "level", "confusion",
                         "labels"}
    assert architecture_keys <= set(devel)
    assert set(devel) - architecture_keys == {"accuracy_ci95", "recall_per_class", "bootstrap"}
    assert devel["level"] == "file" and test["level"] == "chunk"
    assert devel["n"] == 240 and test["n"] == 60
    for key in ("uar", "accuracy"):
        low, high = devel[f"{key}_ci95"]
        assert low <= devel[key] <= high
    assert devel["uar"] == pytest.approx(skm.balanced_accuracy_score(y_true, probs.argmax(1)))

    path = tmp_path / "run" / "metrics.json"
    RunDir(tmp_path / "run").write_metrics({"devel": devel, "test": test})
    text = path.read_text()
    assert text.startswith("{\n  ")  # pretty-printed
    assert json.loads(text) == {"devel": devel, "test": test}


def test_write_metrics_converts_numpy_and_non_finite(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    RunDir(tmp_path).write_metrics(
        {"test": {"uar": np.float32(0.5), "n": np.int64(3), "ci": np.array([0.25, np.nan]),
                  "ok": np.bool_(True)}},
    )
    loaded = json.loads(path.read_text())
    assert loaded == {"test": {"uar": 0.5, "n": 3, "ci": [0.25, None], "ok": True}}
    assert isinstance(loaded["test"]["n"], int)
    with pytest.raises(DataError, match="test.bad"):
        RunDir(tmp_path).write_metrics({"test": {"bad": object()}})


# ---------------------------------------------------------------------------------------------
# chunk -> file aggregation
# ---------------------------------------------------------------------------------------------


def test_aggregate_chunks_mean_and_vote_on_small_example() -> None:
    file_ids = ["f2", "f1", "f2", "f3", "f1", "f2"]
    probs = np.array(
        [[0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5],
         [0.3, 0.3, 0.4], [0.5, 0.1, 0.4], [0.7, 0.2, 0.1]]
    )
    files, mean = evaluate.aggregate_chunks(file_ids=file_ids, probs=probs, method="mean")
    assert files == ["f2", "f1", "f3"]
    for file_id, row in zip(files, mean, strict=True):
        chunks = [p for f, p in zip(file_ids, probs, strict=True) if f == file_id]
        np.testing.assert_allclose(row, np.mean(chunks, axis=0))

    files_vote, vote = evaluate.aggregate_chunks(file_ids=file_ids, probs=probs, method="vote")
    assert files_vote == files
    # f2: chunk winners 0, 2, 0 -> 2/3, 0, 1/3; f1: 1, 0 -> 1/2, 1/2, 0; f3: 2 -> 0, 0, 1.
    np.testing.assert_allclose(vote, [[2 / 3, 0, 1 / 3], [0.5, 0.5, 0], [0, 0, 1]])
    np.testing.assert_allclose(vote.sum(axis=1), 1.0)


def test_file_level_evaluation_on_tones_manifest(tmp_path: Path) -> None:
    """File ids and labels of the bundled tones test partition, three simulated chunks a file."""
    with TONES_MANIFEST.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["partition"] == "test"]
    labels = sorted({row["label"] for row in rows})
    file_label = {row["path"]: labels.index(row["label"]) for row in rows}
    chunk_files = [row["path"] for _ in range(3) for row in rows]  # interleaved chunks
    chunk_true = np.array([file_label[f] for f in chunk_files])
    rng = np.random.default_rng(0)
    chunk_probs = rng.dirichlet(np.ones(len(labels)), size=len(chunk_files))
    chunk_probs[np.arange(len(chunk_files)), chunk_true] += 0.5  # a decent chunk classifier
    chunk_probs /= chunk_probs.sum(axis=1, keepdims=True)

    files, file_probs = evaluate.aggregate_chunks(file_ids=chunk_files, probs=chunk_probs)
    assert files == [row["path"] for row in rows]
    y_true = np.array([file_label[f] for f in files])
    result = evaluate.evaluate_partition(
        y_true=y_true, probs=file_probs, labels=labels, level="file", n_resamples=200
    )
    chunk_result = evaluate.classification_metrics(
        y_true=chunk_true, probs=chunk_probs, labels=labels
    )
    assert result["n"] == len(rows)
    counts = Counter(row["label"] for row in rows)
    assert [sum(r) for r in result["confusion"]] == [counts[name] for name in labels]
    assert result["uar"] >= chunk_result["uar"]  # averaging 3 chunks removes errors

    evaluate.write_predictions_csv(
        tmp_path / "predictions.csv", file_ids=files, probs=file_probs, labels=labels,
        y_true=y_true,
    )
    with (tmp_path / "predictions.csv").open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [row["file"] for row in written] == files
    assert [row["label"] for row in written] == [labels[i] for i in y_true]
    assert all(row["level"] == "file" and row["start"] == row["end"] == "" for row in written)


# ---------------------------------------------------------------------------------------------
# regression, multi-label
# ---------------------------------------------------------------------------------------------


def test_regression_metrics_ccc_and_errors() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(loc=3.0, scale=2.0, size=200)
    same = evaluate.regression_metrics(y_true=y, y_pred=y.copy(), n_resamples=200)
    assert same["ccc"] == pytest.approx(1.0)
    assert same["pearson"] == pytest.approx(1.0)
    assert same["mse"] == same["mae"] == same["rmse"] == 0.0
    assert same["ccc_ci95"] == pytest.approx([1.0, 1.0])

    for changed in (2.0 * y, y + 1.0, 0.5 * y - 1.0):
        result = evaluate.regression_metrics(y_true=y, y_pred=changed, n_resamples=200)
        assert result["pearson"] == pytest.approx(1.0)  # correlation ignores scale and shift
        assert result["ccc"] < 0.99  # agreement does not

    noisy = y + rng.normal(scale=1.0, size=y.size)
    result = evaluate.regression_metrics(y_true=y, y_pred=noisy, n_resamples=500)
    # Lin (1989): ccc = pearson * 2 sx sy / (sx^2 + sy^2 + (mx - my)^2).
    r = scipy.stats.pearsonr(y, noisy).statistic
    sx, sy = y.std(), noisy.std()
    shift = y.mean() - noisy.mean()
    assert result["ccc"] == pytest.approx(r * 2 * sx * sy / (sx**2 + sy**2 + shift**2))
    assert result["pearson"] == pytest.approx(r)
    assert result["mse"] == pytest.approx(skm.mean_squared_error(y, noisy))
    assert result["mae"] == pytest.approx(np.mean(np.abs(y - noisy)))
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((y - noisy) ** 2)))
    assert result["ccc_ci95"][0] < result["ccc"] < result["ccc_ci95"][1]
    centred = y - y.mean()
    mirrored = evaluate.regression_metrics(y_true=centred, y_pred=-centred, n_resamples=10)
    assert mirrored["ccc"] == pytest.approx(-1.0)


def test_regression_metrics_constant_inputs_give_none() -> None:
    result = evaluate.regression_metrics(
        y_true=np.ones(5), y_pred=np.ones(5), n_resamples=20
    )
    assert result["pearson"] is None and result["ccc"] is None
    assert result["ccc_ci95"] == [None, None]
    json.dumps(result, allow_nan=False)


def test_multilabel_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(8)
    y_true = (rng.random((80, 6)) < 0.3).astype(int)
    y_true[:, 4] = 0  # class without positives
    scores = np.clip(y_true * 0.4 + rng.random((80, 6)) * 0.8, 0, 1)
    labels = labels_of(6)
    result = evaluate.multilabel_metrics(y_true=y_true, scores=scores, labels=labels)
    keep = [0, 1, 2, 3, 5]
    assert result["map"] == pytest.approx(
        skm.average_precision_score(y_true[:, keep], scores[:, keep], average="macro")
    )
    for index in keep:
        assert result["ap_per_class"][f"class{index}"] == pytest.approx(
            skm.average_precision_score(y_true[:, index], scores[:, index])
        )
    assert result["ap_per_class"]["class4"] is None
    assert result["n_scored_classes"] == 5 and result["n"] == 80


# ---------------------------------------------------------------------------------------------
# predictions CSV
# ---------------------------------------------------------------------------------------------


def test_write_predictions_csv_chunk_rows(tmp_path: Path) -> None:
    y_true, probs = noisy_classifier(n=5, k=3, accuracy=0.5, seed=2)
    labels = ["cat", "dog,wolf", "bird"]
    path = tmp_path / "out" / "predictions.csv"
    evaluate.write_predictions_csv(
        path, file_ids=["a.wav"] * 3 + ["b.wav"] * 2, probs=probs, labels=labels,
        starts=[0.0, 0.5, 1.0, 0.0, 0.5], ends=[1.0, 1.5, 2.0, 1.0, 1.5],
    )
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["file", "level", "start", "end", "label", "predicted", "prob_cat",
                                 "prob_dog,wolf", "prob_bird"]
    assert all(row["level"] == "chunk" for row in rows)
    assert [float(row["start"]) for row in rows] == [0.0, 0.5, 1.0, 0.0, 0.5]
    assert all(row["label"] == "" for row in rows)  # no truth given
    assert [row["predicted"] for row in rows] == [labels[i] for i in probs.argmax(axis=1)]
    written = np.array([[float(row[f"prob_{name}"]) for name in labels] for row in rows])
    np.testing.assert_allclose(written, probs, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [3, 20])
def test_plot_confusion_writes_png(tmp_path: Path, k: int) -> None:
    import matplotlib.image

    y_true, probs = noisy_classifier(n=20 * k, k=k, accuracy=0.6, seed=k)
    confusion = skm.confusion_matrix(y_true, probs.argmax(1), labels=range(k))
    confusion[0] = 0  # a class without samples must not break the plot
    path = tmp_path / f"confusion{k}.png"
    figures.plot_confusion(path, confusion=confusion, labels=labels_of(k), title="test")
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert min(image.shape[:2]) >= 400
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_plot_history_writes_png(tmp_path: Path) -> None:
    import matplotlib.image

    epochs = 12
    x = np.arange(epochs)
    history = {
        "loss": list(1.0 / (x + 1)),
        "val_loss": list(1.2 / (x + 1) + 0.1),
        "uar": list(1 - 0.5 / (x + 1)),
        "val_uar": [math.nan] + list(0.9 - 0.5 / (x[1:] + 1)),
        "lr": [0.1] * epochs,
    }
    path = tmp_path / "training.png"
    figures.plot_history(path, history=history, phase_boundary=5, title="two phases")
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[1] > image.shape[0]  # two panels side by side
    assert image[..., :3].std() > 0.05


def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures the plot functions save (drawn, so that extents are known)."""
    saved: list = []

    def keep(figure, path, *, what):
        figure.canvas.draw()
        saved.append(figure)

    monkeypatch.setattr(figures, "_save", keep)
    return saved


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_training_curves_keep_their_legend_off_the_curves_and_name_the_series(monkeypatch, tmp_path: Path) -> None:
    """The legends sat on the curves (upper right, over a rising devel loss), and the panels
    were labelled ``devel_uar`` / ``metric``."""
    saved = drawn(monkeypatch)
    x = np.arange(12)
    history = {"loss": list(0.7 - 0.01 * x), "devel_loss": list(0.7 + 0.005 * x), "devel_uar": list(0.5 + 0.02 * x)}
    figures.plot_history(tmp_path / "t.png", history=history, phase_boundary=2, best_epoch=8)
    [figure] = saved
    assert all(axes.get_legend() is None for axes in figure.axes) and len(figure.legends) == 1
    legend = figure.legends[0]
    for axes in figure.axes:
        assert not overlaps(legend.get_window_extent(), axes.get_window_extent())
    names = [text.get_text() for text in legend.get_texts()]
    assert {"training loss", "devel loss", "devel UAR (files)", "phase 2 starts", "best epoch (8)"} <= set(names)
    assert len(names) == len(set(names))  # the phase and best-epoch lines once, not once per panel
    assert [axes.get_ylabel() for axes in figure.axes] == ["loss", "devel UAR (files)"]


def test_precision_recall_legend_stays_off_the_curves(monkeypatch, tmp_path: Path) -> None:
    saved = drawn(monkeypatch)
    rng = np.random.default_rng(0)
    y_true = (rng.random((40, 5)) < 0.4).astype(int)
    figures.plot_pr(tmp_path / "pr.png", y_true=y_true, scores=rng.random((40, 5)), labels=list("abcde"))
    [figure] = saved
    [axes] = figure.axes
    assert axes.get_legend() is None and len(figure.legends) == 1
    assert not overlaps(figure.legends[0].get_window_extent(), axes.get_window_extent())
    low, high = axes.get_xlim()
    assert low < 0 and high > 1  # a curve along recall 0 or 1 is not hidden by the frame


@pytest.mark.parametrize(("k", "columns"), [(3, 3), (5, 3), (6, 3), (10, 4)])
def test_example_images_wrap_into_rows_readable_in_the_report(monkeypatch, tmp_path: Path, k: int, columns: int) -> None:
    """Six classes made one 15-inch strip, shrunk to 60 % in report.html (tick labels 4 pt)."""
    saved = drawn(monkeypatch)
    images = np.random.default_rng(0).uniform(0, 255, (k, 32, 40, 3))
    ticks = (np.array([31.0, 16.0, 0.0]), ["0", "1k", "8k"])
    figures.plot_examples(tmp_path / "e.png", images=images, labels=labels_of(k), seconds=1.0, freq_ticks=ticks)
    [figure] = saved
    lefts = sorted({round(axes.get_position().x0, 3) for axes in figure.axes})
    assert len(lefts) == columns
    width, _ = figure.get_size_inches()
    assert width <= 11.0  # at 120 dpi: at most 1320 px, shown at >= 73 % in the 60rem report
    for axes in figure.axes:
        assert all(label.get_fontsize() >= 8 for label in axes.get_xticklabels())


# ---------------------------------------------------------------------------------------------
# errors, imports
# ---------------------------------------------------------------------------------------------

GOOD_PROBS = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_true": np.array([0, 1])}, "3 rows but there are 2 samples"),
        ({"probs": GOOD_PROBS[:, :1]}, "1 columns but there are 2 labels"),
        ({"y_true": np.array([], dtype=int), "probs": np.zeros((0, 2))}, "y_true is empty"),
        ({"y_true": np.array([0.0, 1.0, 1.0])}, "integer class indices"),
        ({"y_true": np.array([0, 1, 2])}, "class index 2 outside"),
        ({"probs": np.array([[0.9, np.nan], [0.2, 0.8], [0.6, 0.4]])}, "NaN or infinite"),
        ({"labels": ["a", "a"]}, "duplicates"),
        ({"labels": []}, "labels is empty"),
        ({"probs": np.array([0.9, 0.1, 0.5])}, "must be 2-D"),
    ],
)
def test_classification_metrics_rejects_bad_input(kwargs: dict, message: str) -> None:
    arguments = {"y_true": np.array([0, 1, 1]), "probs": GOOD_PROBS, "labels": ["a", "b"]}
    arguments.update(kwargs)
    with pytest.raises(DataError, match=message):
        evaluate.classification_metrics(**arguments)


def test_other_functions_reject_bad_input(tmp_path: Path) -> None:
    y = np.array([0, 1, 1])
    with pytest.raises(DataError, match="level"):
        evaluate.evaluate_partition(y_true=y, probs=GOOD_PROBS, labels=["a", "b"], level="files")
    with pytest.raises(DataError, match="confidence"):
        evaluate.bootstrap_ci(y_true=y, y_pred=y, metric=skm.accuracy_score, confidence=95)
    with pytest.raises(DataError, match="n_resamples"):
        evaluate.bootstrap_ci(y_true=y, y_pred=y, metric=skm.accuracy_score, n_resamples=0)
    with pytest.raises(DataError, match="y_pred has 2 rows"):
        evaluate.bootstrap_ci(y_true=y, y_pred=y[:2], metric=skm.accuracy_score)
    with pytest.raises(DataError, match="one value per resample"):
        evaluate.bootstrap_ci(y_true=y, y_pred=y, metric=skm.accuracy_score, vectorized=True)
    with pytest.raises(DataError, match="method"):
        evaluate.aggregate_chunks(file_ids=["a", "b", "c"], probs=GOOD_PROBS, method="max")
    with pytest.raises(DataError, match="probs has 3 rows but there are 2"):
        evaluate.aggregate_chunks(file_ids=["a", "b"], probs=GOOD_PROBS)
    with pytest.raises(DataError, match="file_ids is empty"):
        evaluate.aggregate_chunks(file_ids=[], probs=GOOD_PROBS)
    with pytest.raises(DataError, match="y_pred has 2 values"):
        evaluate.regression_metrics(y_true=np.ones(3), y_pred=np.ones(2))
    with pytest.raises(DataError, match="only 0 and 1"):
        evaluate.multilabel_metrics(y_true=np.full((3, 2), 2), scores=GOOD_PROBS, labels=["a", "b"])
    with pytest.raises(DataError, match="no positive"):
        evaluate.multilabel_metrics(y_true=np.zeros((3, 2)), scores=GOOD_PROBS, labels=["a", "b"])
    with pytest.raises(DataError, match="shape \\(2, 2\\)"):
        figures.plot_confusion(tmp_path / "c.png", confusion=[[1, 2, 3]], labels=["a", "b"])
    with pytest.raises(DataError, match="phase_boundary"):
        figures.plot_history(tmp_path / "h.png", history={"loss": [1.0, 0.5]}, phase_boundary=3)
    with pytest.raises(DataError, match="no series"):
        figures.plot_history(tmp_path / "h.png", history={"lr": [0.1]})
    with pytest.raises(DataError, match="starts has 2 values"):
        evaluate.write_predictions_csv(
            tmp_path / "p.csv", file_ids=["a", "b", "c"], probs=GOOD_PROBS, labels=["a", "b"],
            starts=[0.0, 1.0],
        )
    assert not (tmp_path / "p.csv").exists()


def test_module_imports_neither_tensorflow_nor_matplotlib() -> None:
    code = (
        "import sys, dsplug.evaluate; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_paired_uar_difference_counts_only_disagreements() -> None:
    y_true, probs = noisy_classifier(n=300, k=4, accuracy=0.6, seed=3)
    pred_a = probs.argmax(axis=1)
    same = evaluate.paired_uar_difference(y_true=y_true, pred_a=pred_a, pred_b=pred_a.copy(), n_classes=4)
    assert same == {"difference": 0.0, "ci95": [0.0, 0.0]}

    # b corrects a's errors on 20 samples: UAR rises by exactly sklearn's difference, and the
    # paired interval is far narrower than either model's own interval
    pred_b = pred_a.copy()
    wrong = np.flatnonzero(pred_a != y_true)[:20]
    pred_b[wrong] = y_true[wrong]
    result = evaluate.paired_uar_difference(y_true=y_true, pred_a=pred_a, pred_b=pred_b, n_classes=4, seed=1)
    expected = skm.balanced_accuracy_score(y_true, pred_b) - skm.balanced_accuracy_score(y_true, pred_a)
    assert result["difference"] == pytest.approx(expected) and expected > 0.05
    low, high = result["ci95"]
    assert 0.0 < low < expected < high
    own_low, own_high = evaluate.bootstrap_ci(y_true=y_true, y_pred=pred_a, metric=skm.balanced_accuracy_score, n_resamples=200)
    assert high - low < 0.6 * (own_high - own_low)

    with pytest.raises(DataError, match="one row per sample"):
        evaluate.paired_uar_difference(y_true=y_true, pred_a=pred_a, pred_b=pred_b[:-1], n_classes=4)
    with pytest.raises(DataError, match="class index 4 outside"):
        evaluate.paired_uar_difference(y_true=y_true, pred_a=pred_a, pred_b=np.full_like(pred_b, 4), n_classes=4)


def test_report_html_shows_labels_from_data_as_text(tmp_path):
    """A class label or file name holding HTML is shown, never run (script injection)."""
    from dsplug.report.markdown import to_html

    label = "<img src=x onerror=alert(1)>"
    page = to_html(f"# run\n\n| class | recall |\n|---|---|\n| {label} | 1.00 |\n\n<script>alert(2)</script>\n", base=tmp_path, title=label)
    assert "<img src=x" not in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page
