"""Training helpers: class balancing, per-sample losses, optimiser choice."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dsplug.train import OPTIMIZERS, epoch_order, per_sample_loss, sample_weights



TARGETS = np.eye(3, dtype=np.float32)[[0] * 8 + [1] * 2 + [2] * 1]


def test_class_weights_equalise_the_classes():
    w = sample_weights(TARGETS, balance="class_weights", task="classification")
    per_class = [w[TARGETS[:, c] == 1].sum() for c in range(3)]
    np.testing.assert_allclose(per_class, per_class[0], rtol=1e-6)
    np.testing.assert_array_equal(sample_weights(TARGETS, balance="none", task="classification"), np.ones(11))


def test_oversampling_balances_each_epoch_and_is_seeded():
    order = epoch_order(TARGETS, seed=5, balance="oversample", task="classification", epoch=1)
    counts = np.bincount(TARGETS[order].argmax(1))
    assert counts.tolist() == [8, 8, 8]
    np.testing.assert_array_equal(order, epoch_order(TARGETS, seed=5, balance="oversample", task="classification", epoch=1))
    assert not np.array_equal(order, epoch_order(TARGETS, seed=5, balance="oversample", task="classification", epoch=2))


def test_plain_order_is_a_seeded_permutation():
    order = epoch_order(TARGETS, seed=5, balance="none", task="classification", epoch=3)
    assert sorted(order.tolist()) == list(range(11))


def test_per_sample_losses_have_batch_shape():
    y = tf.constant(TARGETS[:4])
    p = tf.constant(np.full((4, 3), 1 / 3, np.float32))
    ce = per_sample_loss("classification", y, p, label_smoothing=0.0).numpy()
    np.testing.assert_allclose(ce, np.log(3), rtol=1e-5)
    smooth = per_sample_loss("classification", y, tf.constant(TARGETS[:4] * 0.98 + 0.01), label_smoothing=0.1).numpy()
    sharp = per_sample_loss("classification", y, tf.constant(TARGETS[:4] * 0.98 + 0.01), label_smoothing=0.0).numpy()
    assert (smooth > sharp).all()
    assert per_sample_loss("multilabel", y, p, label_smoothing=0.0).shape == (4,)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_recipe_optimiser_exists(name):
    from dsplug.recipe.schema import TrainConfig

    assert name in TrainConfig.model_fields["optimizer"].annotation.__args__
    assert OPTIMIZERS[name](learning_rate=0.1).learning_rate.numpy() == pytest.approx(0.1)
