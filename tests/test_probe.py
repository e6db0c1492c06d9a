"""The linear probe: logistic regression on frozen features, C chosen by grouped cross-validation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dsplug.errors import TrainError
from dsplug.probe import select_and_fit


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
    assert fit.selection.startswith("devel (only 2 groups") and set(fit.scores) == {0.001, 1.0}
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
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger="dsplug.probe"):
        warnings.simplefilter("always")
        _fit(x, y, g)
    assert not [w for w in caught if "least populated" in str(w.message)]
    assert any("smallest class has 4 files for 5 folds" in r.getMessage() for r in caplog.records)
