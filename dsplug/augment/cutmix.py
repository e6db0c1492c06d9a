"""CutMix for spectrogram images: square patches pasted between samples, labels mixed by area.

For each sample ``i`` of a batch, a square patch is cut from another sample ``j != i`` and pasted
onto ``i`` at the same place. Its side is ``round(strength_i * max_size * sqrt(H * W) / 224)``
pixels (``max_size`` is given for 224 x 224 images and scaled so that the largest patch covers
the same fraction of any image size: ``(56 / 224)**2 = 1/16`` by default). The patch centre is
uniform over the image, so a patch may be clipped by the border. The labels are mixed by the
area actually pasted, after clipping::

    w_i = area_i / (H * W)
    y_i' = (1 - w_i) * y_i + w_i * y_j

The partner ``j`` is drawn as a random derangement (no sample is mixed with itself): the batch is
shuffled by a random permutation ``order`` and each sample takes its partner ``offset`` places
further along ``order`` (cyclically), with ``offset`` uniform in ``[1, B - 1]``. A batch of one
sample is returned unchanged.

Unlike the original DeepSpectrumLite code, labels are mixed by the clipped area (not the
nominal patch area) and a sample is never mixed with itself.
"""

from __future__ import annotations

import tensorflow as tf
from pydantic import Field

from dsplug.plugin import Augmentation, Options

__all__ = ["REFERENCE_SIZE", "CutMix"]

#: Image side (pixels) at which ``max_size`` is given; other sizes scale it by sqrt(H*W)/224.
REFERENCE_SIZE = 224


class CutMix(Augmentation):
    """CutMix: paste a square patch from another sample, mix the labels by the pasted area."""

    class Options(Options):
        """Options of ``cutmix`` (an entry of ``augment.methods``)."""

        max_size: int = Field(
            56,
            ge=0,
            le=1024,
            description="Side in pixels of the patch at strength 1, for a 224 x 224 image; scaled by "
            "sqrt(H * W) / 224 for other image sizes. Paper: 56.",
        )

    def apply(
        self, images: tf.Tensor, labels: tf.Tensor, strength: tf.Tensor, *, fill_value: tf.Tensor, seed: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Paste a patch from another sample onto every sample, with its own strength.

        Arguments and shapes as :meth:`dsplug.plugin.Augmentation.apply`; ``strength`` is clipped to
        [0, 1], ``fill_value`` is unused (CutMix pastes image content) and ``seed`` draws the
        partners and patch positions. The labels returned are
        ``(1 - w) * labels + w * labels[partner]`` with ``w = pasted area / (H * W)``.
        """
        del fill_value  # CutMix pastes image content
        shape = tf.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        seeds = tf.random.experimental.stateless_split(seed, num=4)

        # Random derangement: shift a random permutation cyclically by 1..B-1 places.
        order = tf.argsort(tf.random.stateless_uniform([batch], seed=seeds[0]))
        offset = tf.random.stateless_uniform(
            [], seed=seeds[1], minval=1, maxval=tf.maximum(batch, 2), dtype=tf.int32
        )
        partner = tf.gather(
            tf.roll(order, shift=-offset, axis=0), tf.math.invert_permutation(order)
        )

        # Patch side in pixels; 0 for a batch of one (there is no other sample).
        scale = tf.sqrt(tf.cast(height * width, tf.float32)) / REFERENCE_SIZE
        side = tf.cast(
            tf.round(
                tf.clip_by_value(tf.cast(strength, tf.float32), 0.0, 1.0)
                * float(self.options.max_size)
                * scale
            ),
            tf.int32,
        )
        side = side * tf.cast(batch > 1, tf.int32)

        # Patch centres uniform over the image; the square is clipped by the border.
        centre_y = tf.random.stateless_uniform(
            [batch], seed=seeds[2], minval=0, maxval=height, dtype=tf.int32
        )
        centre_x = tf.random.stateless_uniform(
            [batch], seed=seeds[3], minval=0, maxval=width, dtype=tf.int32
        )
        top = centre_y - side // 2
        left = centre_x - side // 2
        y0 = tf.clip_by_value(top, 0, height)
        y1 = tf.clip_by_value(top + side, 0, height)
        x0 = tf.clip_by_value(left, 0, width)
        x1 = tf.clip_by_value(left + side, 0, width)

        rows = tf.range(height)[tf.newaxis, :]
        cols = tf.range(width)[tf.newaxis, :]
        in_rows = (rows >= y0[:, tf.newaxis]) & (rows < y1[:, tf.newaxis])  # (B, H)
        in_cols = (cols >= x0[:, tf.newaxis]) & (cols < x1[:, tf.newaxis])  # (B, W)
        mask = in_rows[:, :, tf.newaxis, tf.newaxis] & in_cols[:, tf.newaxis, :, tf.newaxis]

        mixed_images = tf.where(mask, tf.gather(images, partner), images)

        area = tf.cast((y1 - y0) * (x1 - x0), labels.dtype)
        weight = (area / tf.cast(height * width, labels.dtype))[:, tf.newaxis]
        mixed_labels = (1.0 - weight) * labels + weight * tf.gather(labels, partner)
        return mixed_images, mixed_labels
