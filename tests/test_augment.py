"""Property tests of CutMix, SpecAugment and the SapAugment policy."""

from __future__ import annotations

import csv
from pathlib import Path

import dsplug  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import librosa
import matplotlib
import numpy as np
import pytest
import scipy.special
import tensorflow as tf

from dsplug import registry
from dsplug.plugin import Augmentation
from dsplug.augment.cutmix import CutMix
from dsplug.augment.policy import SapAugmentPolicy
from dsplug.augment.specaugment import SpecAugment
from dsplug.errors import RecipeError
from dsplug.recipe.loader import validate_options

TONES = Path(__file__).resolve().parents[1] / "data" / "tones"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _seed(a: int, b: int = 0) -> tf.Tensor:
    return tf.constant([a, b], tf.int32)


def _random_images(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random normal images: no two samples share a pixel value, and none equals a fill value."""
    return np.random.default_rng(seed).normal(size=(batch, height, width, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def spectrograms() -> tuple[np.ndarray, np.ndarray]:
    """Eight viridis Mel-spectrogram images of bundled recordings, ImageNet-normalised.

    Returns
    -------
    images : np.ndarray [shape=(8, 224, 224, 3), dtype=float32]
        Row 0 is the highest Mel band, time runs along the columns.
    fill : np.ndarray [shape=(3,), dtype=float32]
        The normalised colour of silence (viridis level 0).
    """
    rows = list(csv.DictReader((TONES / "manifest.csv").open()))[:8]
    viridis = matplotlib.colormaps["viridis"]
    images = []
    for row in rows:
        audio, sr = librosa.load(TONES / row["path"], sr=16000, mono=True)
        mel = librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=512, hop_length=256,
                                             n_mels=128)
        db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
        level = (db - db.min()) / (db.max() - db.min())
        rgb = viridis(level[::-1])[..., :3].astype(np.float32)  # low frequencies at the bottom
        resized = tf.image.resize(rgb, (224, 224), method="bilinear").numpy()
        images.append((resized - IMAGENET_MEAN) / IMAGENET_STD)
    fill = (np.asarray(viridis(0.0)[:3], np.float32) - IMAGENET_MEAN) / IMAGENET_STD
    return np.stack(images).astype(np.float32), fill


def _partners(labels_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Partner index and mixing weight of each sample, for identity one-hot input labels."""
    batch = labels_out.shape[0]
    others = labels_out.copy()
    others[np.arange(batch), np.arange(batch)] = -1.0
    partner = others.argmax(axis=1)
    weight = labels_out[np.arange(batch), partner]
    return partner, weight


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name, cls", [("cutmix", CutMix), ("specaugment", SpecAugment)])
def test_augmentations_are_registered(name: str, cls: type) -> None:
    assert name in registry.names("augmentations")
    assert registry.load("augmentations", name) is cls
    assert issubclass(cls, Augmentation)


# --------------------------------------------------------------------------- CutMix


@pytest.mark.parametrize("height, width", [(224, 224), (128, 200)])
def test_cutmix_label_mass_equals_pasted_area(height: int, width: int) -> None:
    batch = 8
    images = _random_images(batch, height, width)
    labels = np.eye(batch, dtype=np.float32)
    strength = np.linspace(0.3, 1.0, batch).astype(np.float32)
    side = np.round(strength * 56 * np.sqrt(height * width) / 224).astype(int)
    clipped = 0
    for step in range(25):
        out, mixed = CutMix().apply(tf.constant(images), tf.constant(labels),
                                    tf.constant(strength), fill_value=tf.zeros(3),
                                    seed=_seed(step))
        out, mixed = out.numpy(), mixed.numpy()
        np.testing.assert_allclose(mixed.sum(axis=1), 1.0, rtol=1e-6)
        partner, weight = _partners(mixed)
        assert (partner != np.arange(batch)).all()
        for i in range(batch):
            changed = (out[i] != images[i]).any(axis=-1)
            # Every changed pixel comes from the partner, and the changed area is a rectangle.
            np.testing.assert_array_equal(out[i][changed], images[partner[i]][changed])
            rows, cols = np.nonzero(changed.any(axis=1))[0], np.nonzero(changed.any(axis=0))[0]
            patch_h, patch_w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
            assert changed.sum() == patch_h * patch_w
            # Label weight = changed area / image area, also for patches clipped by the border.
            assert weight[i] == pytest.approx(changed.sum() / (height * width), rel=1e-6)
            assert mixed[i, i] == pytest.approx(1.0 - weight[i], rel=1e-6)
            if (patch_h, patch_w) == (side[i], side[i]):
                continue
            clipped += 1
            assert patch_h <= side[i] and patch_w <= side[i]
            touches = (rows.min() == 0 or rows.max() == height - 1
                       or cols.min() == 0 or cols.max() == width - 1)
            assert touches, "only the border may shrink a patch"
    assert clipped > 0, "no patch was clipped by the border; the test proves nothing about it"


def test_cutmix_never_mixes_a_sample_with_itself_and_partners_vary() -> None:
    for batch in (2, 3, 4, 7):
        images = tf.constant(_random_images(batch, 32, 32))
        labels = tf.eye(batch)
        seen: set[tuple[int, int]] = set()
        for step in range(40):
            out, mixed = CutMix().apply(images, labels, tf.ones([batch]),
                                        fill_value=tf.zeros(3), seed=_seed(step, batch))
            partner, weight = _partners(mixed.numpy())
            assert (partner != np.arange(batch)).all()
            assert (weight > 0).all()
            seen.update(zip(range(batch), partner.tolist()))
        # Every ordered pair (i, j != i) occurs for small batches: the derangement is random.
        if batch <= 4:
            assert len(seen) == batch * (batch - 1)


def test_cutmix_batch_of_one_and_strength_zero_are_no_ops(spectrograms) -> None:
    images, _ = spectrograms
    labels = tf.one_hot([0, 1, 2, 3, 0, 1, 2, 3], 4)
    out, mixed = CutMix().apply(tf.constant(images), labels, tf.zeros([8]),
                                fill_value=tf.zeros(3), seed=_seed(1))
    np.testing.assert_array_equal(out.numpy(), images)
    np.testing.assert_array_equal(mixed.numpy(), labels.numpy())
    out, mixed = CutMix().apply(tf.constant(images[:1]), labels[:1], tf.ones([1]),
                                fill_value=tf.zeros(3), seed=_seed(1))
    np.testing.assert_array_equal(out.numpy(), images[:1])
    np.testing.assert_array_equal(mixed.numpy(), labels.numpy()[:1])


def test_cutmix_on_spectrograms(spectrograms) -> None:
    images, _ = spectrograms
    labels = np.eye(8, dtype=np.float32)
    out, mixed = CutMix().apply(tf.constant(images), tf.constant(labels), tf.ones([8]),
                                fill_value=tf.zeros(3), seed=_seed(7))
    out, mixed = out.numpy(), mixed.numpy()
    partner, weight = _partners(mixed)
    assert (partner != np.arange(8)).all()
    for i in range(8):
        changed = (out[i] != images[i]).any(axis=-1)
        differs = (images[partner[i]] != images[i]).any(axis=-1)
        assert not (changed & ~differs).any()
        np.testing.assert_array_equal(out[i][changed], images[partner[i]][changed])
        # Where both spectrograms hold the same colour (e.g. silence) nothing visibly changes,
        # so the visible change is at most the pasted area, and the pasted area <= 56 x 56.
        assert 0 < changed.sum() <= weight[i] * 224 * 224 + 1e-3
        assert weight[i] <= (56 * 56) / (224 * 224) + 1e-7


def test_cutmix_rejects_a_negative_size() -> None:
    with pytest.raises(RecipeError, match=r"augment\.methods\.0\.max_size.*-3"):
        validate_options(CutMix, {"max_size": -3}, key="augment.methods.0")


# --------------------------------------------------------------------------- SpecAugment


@pytest.mark.parametrize(
    "height, width, time_mask, freq_mask, strength",
    [(160, 224, 40, 20, 1.0), (224, 224, 67, 67, 1.0), (224, 224, 67, 67, 0.5),
     (128, 300, 67, 67, 0.8)],
)
def test_specaugment_masks_whole_columns_and_rows(
    height: int, width: int, time_mask: int, freq_mask: int, strength: float
) -> None:
    batch = 6
    images = _random_images(batch, height, width, seed=3)
    fill = np.array([-2.1, -0.3, 1.7], np.float32)
    aug = SpecAugment(options=SpecAugment.Options(time_mask=time_mask, freq_mask=freq_mask))
    labels = tf.one_hot(np.arange(batch) % 3, 3)
    out, labels_out = aug.apply(tf.constant(images), labels, tf.fill([batch], strength),
                                fill_value=tf.constant(fill), seed=_seed(11))
    out = out.numpy()
    np.testing.assert_array_equal(labels_out.numpy(), labels.numpy())
    n_cols = int(np.round(strength * time_mask * width / 224))
    n_rows = int(np.round(strength * freq_mask * height / 224))
    starts = set()
    for i in range(batch):
        changed = (out[i] != images[i]).any(axis=-1)
        np.testing.assert_array_equal(out[i][changed], np.broadcast_to(fill, (changed.sum(), 3)))
        full_cols = np.nonzero(changed.all(axis=0))[0]  # time mask: all rows of a column band
        full_rows = np.nonzero(changed.all(axis=1))[0]  # frequency mask: all columns of a row band
        assert len(full_cols) == n_cols and np.all(np.diff(full_cols) == 1)
        assert len(full_rows) == n_rows and np.all(np.diff(full_rows) == 1)
        expected = np.zeros((height, width), bool)
        expected[:, full_cols] = True
        expected[full_rows, :] = True
        np.testing.assert_array_equal(changed, expected)
        starts.add((int(full_cols[0]), int(full_rows[0])))
    assert len(starts) > 1, "mask positions should differ between samples"


def test_specaugment_strength_zero_is_a_no_op(spectrograms) -> None:
    images, fill = spectrograms
    labels = tf.one_hot(np.arange(8) % 4, 4)
    out, labels_out = SpecAugment().apply(tf.constant(images), labels, tf.zeros([8]),
                                          fill_value=tf.constant(fill), seed=_seed(2))
    np.testing.assert_array_equal(out.numpy(), images)
    np.testing.assert_array_equal(labels_out.numpy(), labels.numpy())


def test_specaugment_on_spectrograms_fills_with_silence(spectrograms) -> None:
    images, fill = spectrograms
    labels = tf.one_hot(np.arange(8) % 4, 4)
    out, _ = SpecAugment().apply(tf.constant(images), labels, tf.ones([8]),
                                 fill_value=tf.constant(fill), seed=_seed(3))
    out = out.numpy()
    silence = np.isclose(out, fill, atol=1e-6).all(axis=-1)
    for i in range(8):
        # 67 whole columns and 67 whole rows are silent; everything else is untouched.
        assert silence.all(axis=0).sum() >= 67
        assert silence.all(axis=1).sum() >= 67
        np.testing.assert_array_equal(out[i][~silence[i]], images[i][~silence[i]])
    # Silence is not 0 after ImageNet normalisation (the original code filled with 0).
    assert not np.allclose(fill, 0.0)


def test_specaugment_rejects_a_negative_width() -> None:
    with pytest.raises(RecipeError, match=r"augment\.methods\.1\.freq_mask"):
        validate_options(SpecAugment, {"freq_mask": -1}, key="augment.methods.1")


# --------------------------------------------------------------------------- policy


@pytest.mark.parametrize("a, s", [(0.5, 10.0), (0.3, 4.0), (0.8, 20.0)])
def test_strength_decreases_with_loss_rank(a: float, s: float) -> None:
    losses = np.random.default_rng(4).gamma(2.0, size=33).astype(np.float32)
    strength = SapAugmentPolicy(a=a, s=s).strengths(tf.constant(losses)).numpy()
    assert strength.shape == (33,) and strength.dtype == np.float32
    assert ((strength >= 0) & (strength <= 1)).all()
    by_loss = strength[np.argsort(losses)]
    assert (np.diff(by_loss) <= 0).all()
    assert by_loss[0] == pytest.approx(1.0) and by_loss[-1] == pytest.approx(0.0)
    rank = np.argsort(np.argsort(losses))
    expected = 1.0 - scipy.special.betainc(s * (1 - a), s * a, rank / 32.0)
    np.testing.assert_allclose(strength, expected, atol=2e-5)


def test_strength_of_a_single_sample_and_of_ties() -> None:
    policy = SapAugmentPolicy()
    assert policy.strengths(tf.constant([0.7])).numpy().tolist() == [1.0]
    tied = policy.strengths(tf.constant([1.0, 1.0, 1.0])).numpy()
    assert (np.diff(tied) <= 0).all() and tied[0] == 1.0 and tied[-1] == 0.0


def test_probabilities_stay_in_range() -> None:
    policy = SapAugmentPolicy(p_min=0.1, p_max=0.25)
    strength = policy.strengths(tf.constant(np.random.default_rng(5).normal(size=64),
                                            tf.float32))
    p = policy.probabilities(strength).numpy()
    assert (p >= 0.1 - 1e-7).all() and (p <= 0.25 + 1e-7).all()
    assert p.min() == pytest.approx(0.1) and p.max() == pytest.approx(0.25)
    np.testing.assert_allclose(p, 0.1 + 0.15 * strength.numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "params, key",
    [({"a": 0.0}, "augment.a"), ({"a": 1.0}, "augment.a"), ({"s": 0.0}, "augment.s"),
     ({"p_min": -0.1}, "augment.p_min"), ({"p_max": 1.2}, "augment.p_max"),
     ({"p_min": 0.5, "p_max": 0.2}, "augment.p_min")],
)
def test_policy_rejects_bad_parameters(params: dict, key: str) -> None:
    with pytest.raises(RecipeError, match=key.replace(".", r"\.")):
        SapAugmentPolicy(**params)


class _Probe(Augmentation):
    """Test augmentation: records in label column ``column`` whether a sample was augmented."""

    def __init__(self, column: int) -> None:
        super().__init__()
        self.column = column

    def apply(self, images, labels, strength, *, fill_value, seed):
        hit = tf.cast(strength > 0, labels.dtype)[:, tf.newaxis]
        return images, labels + hit * tf.one_hot(self.column, tf.shape(labels)[1])


def test_empirical_execution_rate_matches_probability() -> None:
    batch, draws = 16, 600
    policy = SapAugmentPolicy(p_min=0.10, p_max=0.25)
    losses = tf.constant(np.random.default_rng(6).permutation(batch), tf.float32)
    strength = policy.strengths(losses).numpy()
    p = policy.probabilities(strength).numpy()
    probes = [_Probe(0), _Probe(1)]

    @tf.function
    def run(seed):
        _, marks = policy.apply(tf.zeros([batch, 2, 2, 3]), tf.zeros([batch, 2]), losses,
                                augmentations=probes, fill_value=tf.zeros(3), seed=seed)
        return marks

    marks = np.stack([run(_seed(17, k)).numpy() for k in range(draws)])  # (draws, batch, 2)
    visible = strength > 0  # the hardest sample has strength 0: drawn or not, it is unchanged
    assert visible.sum() == batch - 1
    rate = marks.mean(axis=0)  # (batch, 2)
    for column in (0, 1):
        overall = rate[visible, column].mean()
        sigma = np.sqrt(np.mean(p[visible] * (1 - p[visible])) / (draws * visible.sum()))
        assert abs(overall - p[visible].mean()) < 4 * sigma
        per_sample_sigma = np.sqrt(p * (1 - p) / draws)
        assert (np.abs(rate[visible, column] - p[visible]) < 5 * per_sample_sigma[visible]).all()
    # Each augmentation draws independently: P(both) = p^2, not p.
    both = (marks[..., 0] * marks[..., 1]).mean(axis=0)[visible].mean()
    assert abs(both - np.mean(p[visible] ** 2)) < 0.01
    # Easy (low-loss) samples are augmented more often than hard ones.
    easiest, hardest_visible = np.argmax(strength), np.argmin(np.where(visible, strength, 2))
    assert rate[easiest].mean() > rate[hardest_visible].mean()


def test_policy_works_in_tf_function_with_unknown_batch(spectrograms) -> None:
    images, fill = spectrograms
    policy = SapAugmentPolicy(p_min=1.0, p_max=1.0)  # always execute: see every strength
    augmentations = [CutMix(), SpecAugment()]

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.float32),
        tf.TensorSpec([None, 8], tf.float32),
        tf.TensorSpec([None], tf.float32),
        tf.TensorSpec([2], tf.int32),
    ])
    def step(x, y, losses, seed):
        return policy.apply(x, y, losses, augmentations=augmentations,
                            fill_value=tf.constant(fill), seed=seed)

    labels = np.eye(8, dtype=np.float32)
    losses = np.arange(8, dtype=np.float32)[::-1].copy()  # sample 7 easiest, sample 0 hardest
    for batch in (1, 3, 8):
        out, mixed = step(images[:batch], labels[:batch], losses[:batch], _seed(5))
        assert out.shape == (batch, 224, 224, 3) and mixed.shape == (batch, 8)
        np.testing.assert_allclose(mixed.numpy().sum(axis=1), 1.0, rtol=1e-6)
    out, mixed = (t.numpy() for t in step(images, labels, losses, _seed(5)))
    # Hardest sample: strength 0, unchanged; easiest: full strength, masked and mixed.
    np.testing.assert_array_equal(out[0], images[0])
    np.testing.assert_array_equal(mixed[0], labels[0])
    assert np.isclose(out[7], fill, atol=1e-6).all(axis=-1).all(axis=0).sum() >= 67
    assert mixed[7, 7] < 1.0
    # Stateless: the same seed gives the same batch, another seed another one.
    again, _ = step(images, labels, losses, _seed(5))
    np.testing.assert_array_equal(again.numpy(), out)
    other, _ = step(images, labels, losses, _seed(6))
    assert not np.array_equal(other.numpy(), out)


def test_policy_with_default_probabilities_on_spectrograms(spectrograms) -> None:
    images, fill = spectrograms
    policy = SapAugmentPolicy()
    labels = np.eye(8, dtype=np.float32)
    losses = tf.constant(np.linspace(0.1, 2.0, 8), tf.float32)
    changed = 0
    for k in range(30):
        out, mixed = policy.apply(tf.constant(images), tf.constant(labels), losses,
                                  augmentations=[CutMix(), SpecAugment()],
                                  fill_value=tf.constant(fill), seed=_seed(9, k))
        out, mixed = out.numpy(), mixed.numpy()
        np.testing.assert_allclose(mixed.sum(axis=1), 1.0, rtol=1e-6)
        # The hardest sample (last) has strength 0 and is never changed.
        np.testing.assert_array_equal(out[-1], images[-1])
        changed += int((out != images).any(axis=(1, 2, 3)).sum())
    # Expected: 30 draws x 7 visible samples x P(at least one of two) ~ 0.2-0.44 each.
    assert 20 < changed < 120
