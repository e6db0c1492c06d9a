"""The linear probe: logistic regression on frozen features, C chosen by grouped cross-validation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dsplug.errors import TrainError
from dsplug.train.probe import ProbeFit, _fit_path, fit_streamed, select_and_fit


def _data(rng, *, n=240, d=12, k=3, groups=8, spread=1.0):
    labels = rng.integers(0, k, n)
    centers = rng.normal(0, 1, (k, d))
    features = centers[labels] * spread + rng.normal(0, 1, (n, d)) * np.linspace(0.5, 3, d)  # unequal scales
    return features, labels, rng.integers(0, groups, n)


def _fit(features, labels, groups, *, cs=(0.01, 0.1, 1.0), fit_rows=None, k=None):
    n = len(features)
    return select_and_fit(
        features=features, labels=labels, files=np.arange(n), groups=groups, original=np.ones(n, bool),
        fit_rows=np.ones(n, bool) if fit_rows is None else fit_rows, n_classes=k or int(labels.max()) + 1, cs=cs, seed=0,
    )


def test_probe_equals_scaled_logistic_regression():
    rng = np.random.default_rng(0)
    x, y, g = _data(rng)
    fit = _fit(x, y, g, cs=(0.3,))
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, class_weight="balanced", max_iter=5000)).fit(x, y)
    test = _data(np.random.default_rng(1))[0]
    np.testing.assert_allclose(fit.probabilities(test), reference.predict_proba(test), atol=2e-3)  # solver tolerances


def test_wide_features_are_solved_exactly_in_the_row_space():
    rng = np.random.default_rng(2)
    x, y, g = _data(rng, n=60, d=400)
    fit = _fit(x, y, g, cs=(0.05,))
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, class_weight="balanced", max_iter=20000, tol=1e-10)).fit(x, y)
    test = _data(np.random.default_rng(3), n=30, d=400)[0]
    np.testing.assert_allclose(fit.probabilities(test), reference.predict_proba(test), atol=2e-3)


def test_c_is_chosen_by_grouped_cross_validation_and_ties_go_to_the_smaller_c():
    rng = np.random.default_rng(4)
    x, y, g = _data(rng, spread=3.0)  # easy: every C separates the classes
    fit = _fit(x, y, g, cs=(0.01, 0.1, 1.0, 10.0))
    assert set(fit.scores) == {0.01, 0.1, 1.0, 10.0}
    assert fit.c == min(c for c, s in fit.scores.items() if s == max(fit.scores.values()))
    assert "cross-validation over 8 groups" in fit.selection


def test_a_group_never_crosses_folds():
    """A feature that identifies each group's label is useless across groups: CV must not trust it."""
    rng = np.random.default_rng(5)
    n, groups = 200, 10
    g = rng.integers(0, groups, n)
    group_label = rng.integers(0, 2, groups)
    y = group_label[g]
    leak = np.eye(groups)[g] * 5  # one-hot group identity: perfect within a group, no signal beyond
    x = np.concatenate([leak, rng.normal(0, 1, (n, 5))], axis=1)
    fit = _fit(x, y, g, cs=(0.01, 1.0, 100.0))
    assert max(fit.scores.values()) < 0.8  # a random per-row split would score 1.0


def test_a_class_absent_from_the_fit_is_never_predicted():
    rng = np.random.default_rng(6)
    x, y, g = _data(rng, k=3)
    fit_rows = y != 2
    fit = _fit(x, y, g, cs=(1.0,), fit_rows=fit_rows, k=3)
    assert np.all(fit.probabilities(x)[:, 2] < 1e-6)


def test_one_class_is_refused():
    x = np.random.default_rng(7).normal(size=(20, 4))
    with pytest.raises(TrainError, match="fewer than two classes"):
        _fit(x, np.zeros(20, int), np.arange(20) % 4, k=2)


def test_with_two_groups_c_is_chosen_like_the_final_fit():
    """Cross-validation over two unequal groups degenerates: devel, or folds over files for a final fit."""
    rng = np.random.default_rng(8)
    x, y, _ = _data(rng, spread=1.5)
    groups = np.where(np.arange(len(x)) < 200, 0, 1)
    devel = groups == 1
    fit = select_and_fit(
        features=x, labels=y, files=np.arange(len(x)), groups=groups, original=np.ones(len(x), bool),
        fit_rows=~devel, n_classes=3, cs=(0.001, 1.0), seed=0, holdout=devel,
    )
    assert fit.selection.startswith("devel (only 2 groups") and set(fit.scores) >= {0.001, 1.0}
    # a final fit on both groups: folds over files imitate it
    refit = select_and_fit(
        features=x, labels=y, files=np.arange(len(x)), groups=groups, original=np.ones(len(x), bool),
        fit_rows=np.ones(len(x), bool), n_classes=3, cs=(0.001, 1.0), seed=0, holdout=devel,
    )
    assert refit.selection.startswith("5-fold cross-validation over files (only 2 groups")


def test_a_class_smaller_than_the_folds_is_said_in_words_not_warned(caplog):
    """scikit-learn's "The least populated class in y has only 4 members" warning reached the
    terminal of `dsplug run` on small data; the log says it plainly instead."""
    import logging
    import warnings

    rng = np.random.default_rng(7)
    x, y, g = _data(rng, n=120, k=3, groups=8)
    y[:4], y[4:][y[4:] == 2] = 2, 0  # class 2: 4 files, fewer than the 5 folds
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger="dsplug.train.probe"):
        warnings.simplefilter("always")
        _fit(x, y, g)
    assert not [w for w in caught if "least populated" in str(w.message)]
    assert any("smallest class has 4 files for 5 folds" in r.getMessage() for r in caplog.records)


class _Rows:
    """Features read by index or in blocks, as the probe reads feature files too large for its memory budget."""

    def __init__(self, features):
        self.features = np.asarray(features, np.float32)
        self.reads = []

    def __len__(self):
        return len(self.features)

    def read(self, index):
        self.reads.append(len(index))
        return self.features[index]

    def batches(self, *, batch_size):
        for first in range(0, len(self), batch_size):
            yield self.read(np.arange(first, min(first + batch_size, len(self))))


@pytest.mark.parametrize("k", [2, 5])
def test_the_streamed_fit_is_the_in_memory_fit(k):
    """Same objective, minimised block by block: the same probabilities, with no block above the budget."""
    rng = np.random.default_rng(7)
    x, y, _ = _data(rng, n=300, d=16, k=k)
    y[:3] = np.arange(3) % k  # every class present
    x = x.astype(np.float32)
    [(coef, intercept)] = _fit_path(x, y, cs=[0.2], n_classes=k + 1)  # one class absent: never predicted
    first, second = _Rows(x[:170]), _Rows(x[170:])
    streamed = fit_streamed([(first, y[:170]), (second, y[170:])], c=0.2, n_classes=k + 1, block_bytes=40 * 16 * 4)
    test = _data(np.random.default_rng(8), n=50, d=16, k=k)[0]
    probabilities = [ProbeFit(c_, b, 0.2, {}, "", 0).probabilities(test) for c_, b in ((coef, intercept), streamed)]
    np.testing.assert_allclose(probabilities[1], probabilities[0], atol=2e-3)
    assert probabilities[1][:, k].max() < 1e-6
    assert max(first.reads + second.reads) <= 40


def test_features_above_the_memory_budget_choose_c_on_a_sample_of_whole_files(monkeypatch):
    from dsplug.train import probe

    rng = np.random.default_rng(9)
    x, y, g = _data(rng, n=600, d=8, k=3, spread=2.0)
    files = np.repeat(np.arange(200), 3)
    y = y[files * 3]  # a file's rows share its label
    g = g[files * 3]
    monkeypatch.setattr(probe, "MEMORY_BUDGET", 3 * 8 * 8 * 150)  # 150 rows of 8 features
    columns = dict(labels=y, files=files, groups=g, fit_rows=np.ones(600, bool), holdout=np.zeros(600, bool))
    config = probe.ProbeConfig(c_grid=[0.01, 0.1, 1.0], folds=4)
    fit = probe._fit_large([_Rows(x[:300]), _Rows(x[300:])], columns=columns, width=8, n_classes=3, config=config, seed=0)
    assert "stratified sample of" in fit.selection and "of 200 files" in fit.selection
    sampled = int(fit.selection.split("(")[-1].split(" of ")[0])
    assert 120 <= sampled <= 160 and sampled % 3 == 0  # whole files, about the budget
    assert fit.fit_chunks == 600
    reference = _fit(x, y, g, cs=(fit.c,))
    np.testing.assert_allclose(fit.probabilities(x), reference.probabilities(x), atol=2e-3)


def test_the_grid_grows_when_the_best_c_is_at_its_top():
    """A shared nuisance that only weak regularisation learns to cancel: C beyond the grid wins."""
    rng = np.random.default_rng(12)
    n = 400
    y = rng.integers(0, 2, n)
    nuisance = rng.normal(0, 3, n)
    x = np.stack([y + nuisance + rng.normal(0, 0.3, n), nuisance, rng.normal(0, 1, n)], axis=1)
    fit = _fit(x, y, rng.integers(0, 8, n), cs=(1e-4, 1e-3))
    assert fit.c > 1e-3 and set(fit.scores) > {1e-4, 1e-3}
    assert fit.scores[fit.c] > fit.scores[1e-3]
    assert "the grid grew to 0.01" in fit.selection and len(fit.scores) <= 2 + 3
    fixed = _fit(x, y, rng.integers(0, 8, n), cs=(1e-4, 1e-3, 1.0, 10.0, 100.0))  # best inside: no growth
    assert "grew" not in fixed.selection and set(fixed.scores) == {1e-4, 1e-3, 1.0, 10.0, 100.0}
