"""Tests of the spectrogram front-end: librosa parity, TFLite builtins, orientation, colour maps."""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import matplotlib
import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from ai_edge_litert.interpreter import Interpreter

from dsplug import registry
from dsplug.audio import chunk_signal, load_audio
from dsplug.errors import PluginNotFound, RecipeError
from dsplug.frontend.colormaps import MatplotlibColormap, colormap_table
from dsplug.frontend.layers import SpectrogramImage, image_freq_axis, image_time_axis
from dsplug.frontend.plot import plot_images

DATA = Path(__file__).resolve().parent.parent / "data"
TONES = sorted((DATA / "tones" / "audio").glob("*.ogg"))
SR = 16000
GRAY = colormap_table("gray")


def _sine(freq: float, *, samples: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(samples) / SR)).astype(np.float32)


@pytest.fixture(scope="module")
def real_chunks() -> np.ndarray:
    """Five real recordings (both speakers, several tones), 16 kHz, one 1 s chunk each."""
    picks = [TONES[i] for i in np.linspace(0, len(TONES) - 1, 5).astype(int)]
    frames = []
    for path in picks:
        signal = load_audio(path, sample_rate=SR)
        frames.append(
            chunk_signal(signal, sample_rate=SR, chunk_seconds=1.0, hop_seconds=1.0).frames[0]
        )
    return np.stack(frames)


@pytest.fixture(scope="module")
def layer() -> SpectrogramImage:
    return SpectrogramImage(colormap=colormap_table("viridis"))


def _librosa_mel_db(chunk: np.ndarray, *, top_db: float | None = 80.0) -> np.ndarray:
    """The reference: librosa on the peak-normalised chunk, (frames, n_mels)."""
    y = chunk / np.abs(chunk).max()
    power = librosa.feature.melspectrogram(
        y=y,
        sr=SR,
        n_fft=512,
        hop_length=256,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=128,
    )
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=top_db).T


# ------------------------------------------------------------------------------------------
# Parity with librosa
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stft", ["rfft", "dft"])
def test_mel_db_matches_librosa(real_chunks: np.ndarray, stft: str) -> None:
    layer = SpectrogramImage(colormap=GRAY, stft=stft)  # type: ignore[arg-type]
    ours = layer.mel_db(tf.constant(real_chunks)).numpy()
    assert ours.shape == (5, 1 + SR // 256, 128)
    for got, chunk in zip(ours, real_chunks, strict=True):
        expected = _librosa_mel_db(chunk)
        # Reached: correlation > 0.9999999, max |error| ~5e-4 dB (rfft) / ~2e-3 dB (dft).
        assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.999
        np.testing.assert_allclose(got, expected, atol=0.01)


def test_mel_db_without_top_db_matches_librosa(real_chunks: np.ndarray) -> None:
    layer = SpectrogramImage(colormap=GRAY, top_db=None)
    got = layer.mel_db(tf.constant(real_chunks[:1])).numpy()[0]
    expected = _librosa_mel_db(real_chunks[0], top_db=None)
    assert got.min() == pytest.approx(-100.0)  # the zero padding reaches the amin floor
    # Within 80 dB of the peak the float32 FFT matches; deeper bins (near -100 dB) may not.
    strong = expected > expected.max() - 80
    np.testing.assert_allclose(got[strong], expected[strong], atol=0.01)


def test_image_is_min_max_scaled_colour_mapped_mel_db(real_chunks: np.ndarray) -> None:
    n_frames = 1 + SR // 256
    # With the image size of the spectrogram no resize happens: pixels are exact table rows.
    layer = SpectrogramImage(colormap=GRAY, image_size=(128, n_frames))
    image = layer(tf.constant(real_chunks[:1])).numpy()[0]
    db = _librosa_mel_db(real_chunks[0])
    unit = (db - db.min()) / (db.max() - db.min())
    levels = np.minimum(np.floor(unit * 256), 255)
    expected = levels.T[::-1]  # (n_mels, frames), low frequencies in the last row
    assert image.shape == (128, n_frames, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])  # gray: R = G = B
    level_error = np.abs(image[..., 0] - expected)
    assert level_error.max() <= 1  # a value on a level boundary may fall either way
    assert (level_error > 0).mean() < 0.01
    assert image.min() == 0.0 and image.max() == 255.0


def test_batch_elements_are_independent(real_chunks: np.ndarray, layer: SpectrogramImage) -> None:
    batch = real_chunks[:2] * np.array([[1.0], [0.01]], dtype=np.float32)
    together = layer(tf.constant(batch)).numpy()
    for i in range(2):
        alone = layer(tf.constant(batch[i : i + 1])).numpy()[0]
        np.testing.assert_allclose(together[i], alone, atol=1e-3)
    # Peak normalisation: a 40 dB quieter copy gives the same image.
    louder = layer(tf.constant(real_chunks[1:2])).numpy()[0]
    np.testing.assert_allclose(together[1], louder, atol=0.5)


# ------------------------------------------------------------------------------------------
# TFLite
# ------------------------------------------------------------------------------------------


def _convert(model: tf_keras.Model) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no SELECT_TF_OPS
    return converter.convert()


@pytest.mark.heavy
def test_tflite_builtins_only_and_matches_keras(
    real_chunks: np.ndarray, layer: SpectrogramImage
) -> None:
    audio = tf_keras.Input((SR,))
    model = tf_keras.Model(audio, layer(audio))
    flatbuffer = _convert(model)
    assert len(flatbuffer) < 200_000  # bytes; mostly the 257 x 128 Mel matrix

    interpreter = Interpreter(model_content=flatbuffer)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "RFFT2D" in ops and "FULLY_CONNECTED" in ops
    assert not any(name.startswith("Flex") or name == "CUSTOM" for name in ops), ops

    batch = np.concatenate([real_chunks, np.zeros((1, SR), dtype=np.float32)])
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, batch.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, batch)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    expected = model(batch).numpy()
    assert got.shape == expected.shape == (6, 224, 224, 3)
    # Reached: max |diff| ~1e-3 of 255. A pixel next to a colour-level boundary may switch
    # level (float rounding); one viridis step is < 3 / 255, so allow that for a few pixels.
    difference = np.abs(got - expected)
    assert difference.max() < 3.0
    assert difference.mean() < 1e-2


# ------------------------------------------------------------------------------------------
# Silence, orientation, axes
# ------------------------------------------------------------------------------------------


def test_silence_gives_a_finite_constant_image(layer: SpectrogramImage) -> None:
    image = layer(tf.zeros((2, SR))).numpy()
    assert np.isfinite(image).all()
    lowest = np.broadcast_to(layer.colormap[0] * 255, image.shape)  # every pixel at level 0
    np.testing.assert_allclose(image, lowest, atol=1e-4)
    db = layer.mel_db(tf.zeros((1, SR))).numpy()
    np.testing.assert_allclose(db, -100.0)


def _brightest_row(image: np.ndarray) -> int:
    return int(np.argmax(image[..., 0].mean(axis=1)))


def test_low_frequencies_at_the_bottom() -> None:
    layer = SpectrogramImage(colormap=GRAY)
    rows_hz = layer.image_freq_axis()
    high = layer(tf.constant(_sine(3000.0, samples=SR)[None])).numpy()[0]
    low = layer(tf.constant(_sine(300.0, samples=SR)[None])).numpy()[0]
    high_row, low_row = _brightest_row(high), _brightest_row(low)
    assert low_row > high_row  # larger row index = lower frequency
    assert rows_hz[high_row] == pytest.approx(3000.0, rel=0.05)
    assert rows_hz[low_row] == pytest.approx(300.0, rel=0.1)


def test_time_runs_along_the_width() -> None:
    layer = SpectrogramImage(colormap=GRAY)
    burst = _sine(1000.0, samples=SR)
    burst[SR // 2 :] = 0.0  # tone in the first half only
    image = layer(tf.constant(burst[None])).numpy()[0, ..., 0]
    assert image[:, :100].max(axis=0).min() > 200  # every early column shows the tone
    assert image[:, 124:].max() < 10  # late columns are silence (level 0)
    seconds = layer.image_time_axis(chunk_samples=SR)
    lit = image.max(axis=0) > 128
    assert seconds[lit].max() == pytest.approx(0.5, abs=0.05)  # the burst ends at 0.5 s


def test_axes() -> None:
    seconds = image_time_axis(
        width=224, chunk_samples=48000, sample_rate=SR, n_fft=512, hop_length=256
    )
    assert seconds.shape == (224,)
    assert np.all(np.diff(seconds) > 0)
    assert seconds[0] >= 0 and seconds[-1] == pytest.approx(3.0, abs=0.02)
    hz = image_freq_axis(height=224, n_mels=128, sample_rate=SR, fmin=0.0, fmax=None)
    assert hz.shape == (224,)
    assert np.all(np.diff(hz) <= 0) and hz[0] > hz[-1]  # row 0 is the highest
    assert 7000 < hz[0] < 8000 and 0 < hz[-1] < 50
    limited = image_freq_axis(height=128, n_mels=128, sample_rate=SR, fmin=300.0, fmax=4000.0)
    assert 300 < limited[-1] < limited[0] < 4000


# ------------------------------------------------------------------------------------------
# Configuration and serialisation
# ------------------------------------------------------------------------------------------


def test_get_config_round_trip(real_chunks: np.ndarray) -> None:
    layer = SpectrogramImage(
        sample_rate=SR,
        n_mels=64,
        fmin=50.0,
        fmax=7000.0,
        top_db=60.0,
        colormap=colormap_table("magma"),
        image_size=(96, 128),
        normalize_signal=False,
    )
    config = json.loads(json.dumps(layer.get_config()))  # JSON-serialisable
    clone = SpectrogramImage.from_config(config)
    assert clone.get_config() == config
    x = tf.constant(real_chunks[:2])
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())
    assert layer(x).shape == (2, 96, 128, 3)


@pytest.mark.heavy
def test_model_save_and_load(
    tmp_path: Path, real_chunks: np.ndarray, layer: SpectrogramImage
) -> None:
    audio = tf_keras.Input((SR,))
    model = tf_keras.Model(audio, layer(audio))
    path = tmp_path / "frontend.keras"
    model.save(path)
    loaded = tf_keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(real_chunks).numpy(), model(real_chunks).numpy())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmax": 9000.0}, "Nyquist"),
        ({"fmin": 5000.0, "fmax": 4000.0}, "fmin"),
        ({"colormap": np.zeros((10, 3))}, "colormap"),
        ({"colormap": np.full((256, 3), 2.0)}, "colormap"),
        ({"top_db": 0.0}, "top_db"),
        ({"image_size": (0, 224)}, "image_size"),
        ({"sample_rate": 22050, "stft": "rfft"}, "power-of-two"),
        ({"stft": "fft"}, "stft"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        SpectrogramImage(**kwargs)


def test_non_power_of_two_window_uses_dft() -> None:
    layer = SpectrogramImage(sample_rate=22050, colormap=GRAY)  # 32 ms = 706 samples
    assert layer.n_fft == 706
    chunk = _sine(1000.0, samples=22050)
    got = layer.mel_db(tf.constant(chunk[None])).numpy()[0]
    power = librosa.feature.melspectrogram(
        y=chunk / np.abs(chunk).max(), sr=22050, n_fft=706, hop_length=353, pad_mode="constant"
    )
    expected = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80.0).T
    np.testing.assert_allclose(got, expected, atol=0.05)


# ------------------------------------------------------------------------------------------
# Colour maps
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["viridis", "cividis", "inferno", "magma", "plasma", "gray"])
def test_colormap_plugins(name: str) -> None:
    plugin = registry.load("colormaps", name)
    assert issubclass(plugin, MatplotlibColormap)
    table = plugin().table()
    assert table.shape == (256, 3) and table.dtype == np.float32
    assert table.min() >= 0.0 and table.max() <= 1.0
    reference = matplotlib.colormaps[name]
    np.testing.assert_allclose(table[0], reference(0.0)[:3], atol=1e-6)  # row 0 = lowest
    np.testing.assert_allclose(table[-1], reference(1.0)[:3], atol=1e-6)
    assert len(np.unique(table, axis=0)) > 200  # 256 distinct levels (almost all)


def test_gray_is_monotonic() -> None:
    table = colormap_table("gray")
    np.testing.assert_array_equal(table[:, 0], table[:, 1])
    assert table[0, 0] == 0.0 and table[-1, 0] == 1.0
    assert np.all(np.diff(table[:, 0]) > 0)


def test_any_matplotlib_colormap_by_name() -> None:
    table = colormap_table("twilight_shifted")
    assert table.shape == (256, 3) and table.dtype == np.float32
    reversed_table = colormap_table("viridis_r")
    np.testing.assert_allclose(reversed_table, colormap_table("viridis")[::-1], atol=1e-6)


def test_unknown_colormap_name() -> None:
    with pytest.raises(PluginNotFound, match=r"'virdis'.*did you mean 'viridis'"):
        colormap_table("virdis")
    with pytest.raises(PluginNotFound, match="no colour map named"):
        colormap_table("no-such-map")


# ------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------


def test_plot_images(tmp_path: Path, layer: SpectrogramImage) -> None:
    signal = load_audio(TONES[3], sample_rate=SR)
    chunks = chunk_signal(signal, sample_rate=SR, chunk_seconds=0.3, hop_seconds=0.15)
    images = layer(tf.constant(chunks.frames)).numpy()
    common = {
        "starts": chunks.starts,
        "chunk_seconds": 0.3,
        "sample_rate": SR,
        "fmin": 0.0,
        "fmax": None,
        "n_mels": 128,
        "title": TONES[3].name,
    }
    written = plot_images(images, out=tmp_path / "grid.png", grid=True, **common)
    assert written == [tmp_path / "grid.png"]
    assert matplotlib.image.imread(written[0]).ndim == 3
    singles = plot_images(images, out=tmp_path / "one.png", grid=False, **common)
    assert len(singles) == len(images) > 1
    assert all(path.exists() and path.suffix == ".png" for path in singles)
    with pytest.raises(ValueError, match="start times"):
        plot_images(images, out=tmp_path / "bad.png", grid=True, **{**common, "starts": [0.0]})


# ------------------------------------------------------------------ repeat padding in the model
def test_repeat_pad_tiles_what_a_host_zero_pads_as_the_data_pipeline_did() -> None:
    """A zero-padded tone clip through RepeatPad equals the clip tiled (numpy.resize), in Keras
    and in the converted TFLite model; all-zero windows and short zero runs pass unchanged."""
    from dsplug.frontend.padding import RepeatPad

    clip = load_audio(next(p for p in TONES if p.name.startswith("spk5_")), sample_rate=16000)
    assert clip.size < 8000
    zero = chunk_signal(clip, sample_rate=16000, chunk_seconds=0.5, hop_seconds=0.5, pad_mode="zero").frames
    tiled = chunk_signal(clip, sample_rate=16000, chunk_seconds=0.5, hop_seconds=0.5, pad_mode="repeat").frames
    quiet_tail = np.concatenate([tiled[:, :-5], np.zeros((1, 5), np.float32)], axis=1)  # 5 zeros < min_zeros
    windows = np.concatenate([zero, np.zeros((1, 8000), np.float32), quiet_tail])
    layer = RepeatPad(min_zeros=160)
    expected = np.concatenate([tiled, windows[1:]])
    np.testing.assert_array_equal(layer(windows).numpy(), expected)

    inputs = tf_keras.Input((8000,))
    converter = tf.lite.TFLiteConverter.from_keras_model(tf_keras.Model(inputs, layer(inputs)))
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    for window, want in zip(windows, expected):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], window[None])
        interpreter.invoke()
        np.testing.assert_array_equal(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0], want)


def test_repeat_pad_survives_saving_the_model(tmp_path) -> None:
    import dsplug.pipeline  # noqa: F401  (registers dsplug's layers, as every loader imports it)
    from dsplug.frontend.padding import RepeatPad

    inputs = tf_keras.Input((8,))
    tf_keras.Model(inputs, RepeatPad(min_zeros=2)(inputs)).save(tmp_path / "m.keras")
    loaded = tf_keras.models.load_model(tmp_path / "m.keras")
    window = np.array([[1, 2, 3, 0, 0, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(loaded(window).numpy(), [[1, 2, 3, 1, 2, 3, 1, 2]])
