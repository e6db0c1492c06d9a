"""The SapAugment policy (Hu et al., ICASSP 2021), as adapted by DeepSpectrumLite.

The policy decides, per sample, how strongly and how often each augmentation is applied, from
the sample's training loss relative to the rest of the batch: samples the model already fits
well (low loss) are augmented more strongly and more often, hard samples less.

For a batch of ``B`` per-sample losses:

1. rank the losses in ascending order (``rank`` 0 = lowest loss; ties keep batch order) and
   scale the ranks to ``r = rank / (B - 1)`` in [0, 1] (``r = 0`` for ``B = 1``);
2. strength ``lambda = 1 - I_r(s * (1 - a), s * a)``, with ``I`` the regularised incomplete
   beta function (``tf.math.betainc``): 1 for the lowest loss, 0 for the highest, decreasing
   with the rank (a = 0.5, s = 10 in the paper);
3. execution probability ``p = p_min + (p_max - p_min) * lambda`` (10 % to 25 % in the paper);
4. for each augmentation in order, each sample is drawn with probability ``p`` (independent
   Bernoulli draws per sample and per augmentation) and augmented at strength ``lambda``;
   samples not drawn get strength 0 (unchanged).

Examples
--------
>>> policy = SapAugmentPolicy(a=0.5, s=10.0, p_min=0.10, p_max=0.25)
>>> images, labels = policy.apply(  # doctest: +SKIP
...     images, labels, losses, augmentations=[cutmix, specaugment],
...     fill_value=fill, seed=tf.constant([0, step], tf.int32))
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from dsplug.plugin import Augmentation
from dsplug.errors import RecipeError

__all__ = ["SapAugmentPolicy"]


class SapAugmentPolicy:
    """Per-sample augmentation strength and probability from the sample's loss rank.

    Parameters
    ----------
    a : float
        Shape parameter, in (0, 1) (recipe ``augment.a``).
    s : float
        Sharpness parameter, > 0 (recipe ``augment.s``).
    p_min, p_max : float
        Execution probability of the hardest and of the easiest sample,
        ``0 <= p_min <= p_max <= 1`` (recipe ``augment.p_min`` and ``augment.p_max``).

    Raises
    ------
    RecipeError
        If a parameter is out of range; the message names the recipe key.
    """

    def __init__(
        self, *, a: float = 0.5, s: float = 10.0, p_min: float = 0.10, p_max: float = 0.25
    ) -> None:
        if not 0 < a < 1:
            raise RecipeError(f"augment.a: expected a value in (0, 1), got {a!r}")
        if not s > 0:
            raise RecipeError(f"augment.s: expected a value > 0, got {s!r}")
        if not 0 <= p_min <= 1:
            raise RecipeError(f"augment.p_min: expected a value in [0, 1], got {p_min!r}")
        if not 0 <= p_max <= 1:
            raise RecipeError(f"augment.p_max: expected a value in [0, 1], got {p_max!r}")
        if p_min > p_max:
            raise RecipeError(
                f"augment.p_min ({p_min!r}) must not exceed augment.p_max ({p_max!r}); "
                "swap them or make them equal"
            )
        self.a = float(a)
        self.s = float(s)
        self.p_min = float(p_min)
        self.p_max = float(p_max)

    def __repr__(self) -> str:
        return (
            f"SapAugmentPolicy(a={self.a}, s={self.s}, p_min={self.p_min}, p_max={self.p_max})"
        )

    def strengths(self, losses: tf.Tensor) -> tf.Tensor:
        """Augmentation strength of every sample from its loss rank in the batch.

        Parameters
        ----------
        losses : tf.Tensor [shape=(batch,), dtype=float]
            Per-sample losses (any scale; only their order matters). No gradient flows.

        Returns
        -------
        tf.Tensor [shape=(batch,), dtype=float32]
            ``1 - I_r(s * (1 - a), s * a)`` with ``r = rank / (B - 1)``, in [0, 1]: 1 for the
            lowest loss, 0 for the highest, non-increasing with the loss.
        """
        losses = tf.stop_gradient(tf.convert_to_tensor(losses))
        batch = tf.shape(losses)[0]
        ranks = tf.argsort(tf.argsort(losses, stable=True), stable=True)
        r = tf.cast(ranks, tf.float32) / tf.cast(tf.maximum(batch - 1, 1), tf.float32)
        shape_a = tf.fill(tf.shape(r), self.s * (1.0 - self.a))
        shape_b = tf.fill(tf.shape(r), self.s * self.a)
        return tf.clip_by_value(1.0 - tf.math.betainc(shape_a, shape_b, r), 0.0, 1.0)

    def probabilities(self, strength: tf.Tensor) -> tf.Tensor:
        """Execution probability of each augmentation for a sample of a given strength.

        Parameters
        ----------
        strength : tf.Tensor [shape=(batch,), dtype=float32]
            Strengths in [0, 1] (from :meth:`strengths`).

        Returns
        -------
        tf.Tensor [shape=(batch,), dtype=float32]
            ``p_min + (p_max - p_min) * strength``, in [p_min, p_max].
        """
        strength = tf.clip_by_value(tf.cast(strength, tf.float32), 0.0, 1.0)
        return self.p_min + (self.p_max - self.p_min) * strength

    def apply(
        self,
        images: tf.Tensor,
        labels: tf.Tensor,
        losses: tf.Tensor,
        *,
        augmentations: Sequence[Augmentation],
        fill_value: tf.Tensor,
        seed: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Augment a training batch according to the per-sample losses.

        Works inside a ``tf.function`` with an unknown batch size; all random draws are
        stateless, so the same ``seed`` gives the same result.

        Parameters
        ----------
        images : tf.Tensor [shape=(batch, height, width, 3), dtype=float32]
            Normalised images (frequency along axis 1, time along axis 2).
        labels : tf.Tensor [shape=(batch, num_classes), dtype=float32]
            Targets.
        losses : tf.Tensor [shape=(batch,), dtype=float]
            Per-sample losses of the un-augmented batch (a forward pass in inference mode).
        augmentations : sequence of Augmentation
            Applied in this order, each with its own draws.
        fill_value : tf.Tensor [shape=(3,), dtype=float32]
            Normalised pixel value of silence, passed to the augmentations.
        seed : tf.Tensor [shape=(2,), dtype=int32]
            Base seed; change it every step (e.g. ``[run_seed, step]``). Augmentation ``k``
            uses ``stateless_fold_in(seed, k)``, split into a seed for the Bernoulli draws and
            one for the augmentation itself.

        Returns
        -------
        images, labels : tf.Tensor
            Augmented batch, same shapes and dtypes as the inputs.
        """
        strength = self.strengths(losses)
        probability = self.probabilities(strength)
        for index, augmentation in enumerate(augmentations):
            step_seed = tf.random.experimental.stateless_fold_in(seed, index)
            draw_seed, augment_seed = tf.unstack(
                tf.random.experimental.stateless_split(step_seed, num=2)
            )
            drawn = tf.random.stateless_uniform(tf.shape(strength), seed=draw_seed) < probability
            sample_strength = tf.where(drawn, strength, tf.zeros_like(strength))
            images, labels = augmentation.apply(
                images, labels, sample_strength, fill_value=fill_value, seed=augment_seed
            )
        return images, labels
