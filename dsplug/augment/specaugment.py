"""SpecAugment masking on spectrogram images: one time mask and one frequency mask per sample.

Images have frequency along axis 1 (rows; row 0 is the highest frequency) and time along axis 2
(columns). For each sample:

- a time mask covers ``round(strength * time_mask * W / 224)`` whole columns (all rows) starting
  at a column uniform in ``[0, W - width]``;
- a frequency mask covers ``round(strength * freq_mask * H / 224)`` whole rows (all columns)
  starting at a row uniform in ``[0, H - height]``.

Masks lie fully inside the image and are filled with ``fill_value``, the normalised pixel value
of silence (not 0, which is not silence after the backbone's normalisation). ``time_mask`` and
``freq_mask`` are given for 224 x 224 images and scaled with the width and the height. Labels
are unchanged. ``round`` rounds half to even (``tf.round``).

Unlike the original DeepSpectrumLite code, the axes follow the image layout (time = columns,
frequency = rows) and the fill value comes from the backbone's normalisation.
"""

from __future__ import annotations

import tensorflow as tf
from pydantic import Field

from dsplug.plugin import Augmentation, Options

__all__ = ["REFERENCE_SIZE", "SpecAugment"]

#: Image side (pixels) at which the mask widths are given; scaled by W/224 and H/224.
REFERENCE_SIZE = 224


def _band(
    strength: tf.Tensor, *, max_width: int, length: tf.Tensor, seed: tf.Tensor
) -> tf.Tensor:
    """Boolean mask of one random band per sample along an axis of ``length`` pixels.

    Parameters
    ----------
    strength : tf.Tensor [shape=(batch,), dtype=float32]
        Strength in [0, 1].
    max_width : int
        Band width at strength 1 for a 224-pixel axis.
    length : tf.Tensor [shape=(), dtype=int32]
        Number of pixels along the axis.
    seed : tf.Tensor [shape=(2,), dtype=int32]
        Seed of the band position.

    Returns
    -------
    tf.Tensor [shape=(batch, length), dtype=bool]
        True inside the band.
    """
    scale = tf.cast(length, tf.float32) / REFERENCE_SIZE
    width = tf.cast(tf.round(strength * float(max_width) * scale), tf.int32)
    width = tf.minimum(width, length)
    uniform = tf.random.stateless_uniform(tf.shape(strength), seed=seed)
    start = tf.cast(tf.floor(uniform * tf.cast(length - width + 1, tf.float32)), tf.int32)
    start = tf.minimum(start, length - width)
    positions = tf.range(length)[tf.newaxis, :]
    return (positions >= start[:, tf.newaxis]) & (positions < (start + width)[:, tf.newaxis])


class SpecAugment(Augmentation):
    """SpecAugment: one time mask (columns) and one frequency mask (rows) per sample."""

    class Options(Options):
        """Options of ``specaugment`` (an entry of ``augment.methods``)."""

        time_mask: int = Field(
            67,
            ge=0,
            le=1024,
            description="Width in columns of the time mask at strength 1, for a 224-pixel-wide image; "
            "scaled by W / 224. Paper: 67.",
        )
        freq_mask: int = Field(
            67,
            ge=0,
            le=1024,
            description="Height in rows of the frequency mask at strength 1, for a 224-pixel-high "
            "image; scaled by H / 224. Paper: 67.",
        )

    def apply(
        self, images: tf.Tensor, labels: tf.Tensor, strength: tf.Tensor, *, fill_value: tf.Tensor, seed: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Mask one band of columns and one band of rows in every sample.

        Arguments and shapes as :meth:`dsplug.plugin.Augmentation.apply`; ``strength`` is clipped to
        [0, 1], the masks are filled with ``fill_value`` (silence), ``seed`` draws their positions
        and the labels are returned unchanged.
        """
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        strength = tf.clip_by_value(tf.cast(strength, tf.float32), 0.0, 1.0)
        seeds = tf.random.experimental.stateless_split(seed, num=2)
        columns = _band(strength, max_width=self.options.time_mask, length=width, seed=seeds[0])
        rows = _band(strength, max_width=self.options.freq_mask, length=height, seed=seeds[1])
        mask = rows[:, :, tf.newaxis, tf.newaxis] | columns[:, tf.newaxis, :, tf.newaxis]
        fill = tf.reshape(tf.cast(fill_value, images.dtype), [1, 1, 1, 3])
        return tf.where(mask, fill, images), labels
