"""Tests of dsplug.audio: decoding, mono mix-down, resampling, validation and chunking."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dsplug.audio import Chunks, chunk_signal, load_audio, validate_signal
from dsplug.errors import AudioError

DATA = Path(__file__).resolve().parent.parent / "data"
TONES = sorted((DATA / "tones" / "audio").glob("*.ogg"))
DRUMS = sorted((DATA / "drums" / "audio").glob("*.ogg"))
SR = 16000


def _sine(freq: float, *, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Chunking
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, 1),  # a single sample
        (8000, 1),  # shorter than a chunk
        (16000, 1),  # exactly one chunk
        (16001, 2),  # one sample longer: the partial chunk is kept
        (24000, 2),  # exactly chunk + hop
        (24001, 3),
        (40000, 4),  # chunk + 3 hops
    ],
)
def test_chunk_counts_and_contents(n: int, expected: int) -> None:
    signal = np.arange(1, n + 1, dtype=np.float32) / n  # a ramp: every sample is distinct
    chunks = chunk_signal(signal, sample_rate=SR, chunk_seconds=1.0, hop_seconds=0.5, source="x")
    assert isinstance(chunks, Chunks)
    assert chunks.frames.shape == (expected, SR)
    assert chunks.frames.dtype == np.float32
    assert chunks.starts.dtype == np.float64
    assert chunks.source == "x"
    assert expected == 1 + math.ceil(max(0, n - SR) / 8000)
    np.testing.assert_allclose(chunks.starts, np.arange(expected) * 0.5)
    for i, frame in enumerate(chunks.frames):
        part = signal[i * 8000 : i * 8000 + SR]
        np.testing.assert_array_equal(frame[: part.size], part)
        np.testing.assert_array_equal(frame[part.size :], 0.0)  # zero padding
    # No sample is dropped: the last chunk reaches the end of the signal.
    assert chunks.starts[-1] * SR + SR >= n


def test_last_partial_chunk_is_kept_with_non_overlapping_hop() -> None:
    signal = np.linspace(-1, 1, SR * 2 + 10, dtype=np.float32)
    chunks = chunk_signal(signal, sample_rate=SR, chunk_seconds=1.0, hop_seconds=1.0)
    assert chunks.frames.shape == (3, SR)
    np.testing.assert_array_equal(chunks.frames[2, :10], signal[-10:])
    np.testing.assert_array_equal(chunks.frames[2, 10:], 0.0)
    np.testing.assert_allclose(chunks.starts, [0.0, 1.0, 2.0])


def test_repeat_padding_tiles_the_signal() -> None:
    signal = np.array([0.5, -0.25, 0.75], dtype=np.float32)
    zero = chunk_signal(signal, sample_rate=10, chunk_seconds=0.8, hop_seconds=0.4)
    repeat = chunk_signal(
        signal, sample_rate=10, chunk_seconds=0.8, hop_seconds=0.4, pad_mode="repeat"
    )
    np.testing.assert_array_equal(zero.frames, [[0.5, -0.25, 0.75, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(repeat.frames, [[0.5, -0.25, 0.75, 0.5, -0.25, 0.75, 0.5, -0.25]])


def test_repeat_padding_of_last_partial_chunk_uses_its_own_samples() -> None:
    signal = np.arange(1, 11, dtype=np.float32)  # 10 samples
    chunks = chunk_signal(
        signal, sample_rate=10, chunk_seconds=0.4, hop_seconds=0.4, pad_mode="repeat"
    )
    assert chunks.frames.shape == (3, 4)
    np.testing.assert_array_equal(chunks.frames[2], [9, 10, 9, 10])


def test_real_file_chunking_covers_the_whole_file() -> None:
    signal = load_audio(TONES[1], sample_rate=SR)
    chunks = chunk_signal(
        signal, sample_rate=SR, chunk_seconds=0.25, hop_seconds=0.1, source=str(TONES[1])
    )
    hop, length = round(0.1 * SR), round(0.25 * SR)
    assert len(chunks.frames) == 1 + math.ceil(max(0, signal.size - length) / hop)
    rebuilt = np.concatenate([chunks.frames[0]] + [f[-hop:] for f in chunks.frames[1:]])
    np.testing.assert_array_equal(rebuilt[: signal.size], signal)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_seconds": 0.0, "hop_seconds": 0.5}, "chunk_seconds"),
        ({"chunk_seconds": -1.0, "hop_seconds": 0.5}, "chunk_seconds"),
        ({"chunk_seconds": 1.0, "hop_seconds": 0.0}, "hop_seconds"),
        ({"chunk_seconds": 1.0, "hop_seconds": float("nan")}, "hop_seconds"),
        ({"chunk_seconds": 1e-6, "hop_seconds": 0.5}, "shorter than one sample"),
        ({"chunk_seconds": 1.0, "hop_seconds": 0.5, "pad_mode": "reflect"}, "pad_mode"),
    ],
)
def test_chunk_argument_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        chunk_signal(np.zeros(100, dtype=np.float32), sample_rate=SR, **kwargs)


def test_chunk_rejects_empty_and_multichannel_signals() -> None:
    with pytest.raises(AudioError, match="no samples"):
        chunk_signal(np.zeros(0), sample_rate=SR, chunk_seconds=1.0, hop_seconds=1.0)
    with pytest.raises(AudioError, match="1-D"):
        chunk_signal(np.zeros((10, 2)), sample_rate=SR, chunk_seconds=1.0, hop_seconds=1.0)


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------


def test_validate_signal() -> None:
    validate_signal(np.zeros(5, dtype=np.float32), source="silence")  # silence is valid
    bad = np.zeros(5, dtype=np.float32)
    bad[3] = np.nan
    with pytest.raises(AudioError, match=r"mic.*1 NaN.*first at sample 3"):
        validate_signal(bad, source="mic")
    bad[3] = np.inf
    with pytest.raises(AudioError, match="infinite"):
        validate_signal(bad, source="mic")
    with pytest.raises(AudioError, match="no samples"):
        validate_signal(np.zeros(0), source="mic")


# ------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------


def test_load_real_ogg_resamples_to_16k() -> None:
    path = TONES[0]
    info = sf.info(str(path))
    assert info.samplerate == 44100
    signal = load_audio(path, sample_rate=SR)
    assert signal.dtype == np.float32 and signal.ndim == 1
    assert abs(signal.size - info.frames * SR / info.samplerate) <= 1
    assert np.all(np.abs(signal) <= 1.0)
    assert np.abs(signal).max() > 0.01  # real speech, not silence
    # The same file at its own rate is returned unchanged (no resampling).
    native = load_audio(path, sample_rate=44100)
    original, _ = sf.read(str(path), dtype="float32")
    np.testing.assert_array_equal(native, original)


def test_resampling_preserves_a_sine(tmp_path: Path) -> None:
    path = tmp_path / "sine.wav"
    sf.write(path, _sine(1000.0, seconds=0.5, rate=44100), 44100, subtype="FLOAT")
    signal = load_audio(path, sample_rate=SR)
    expected = _sine(1000.0, seconds=0.5, rate=SR)
    assert signal.size == expected.size
    inner = slice(200, -200)  # away from the filter's edge transients
    assert np.abs(signal[inner] - expected[inner]).max() < 1e-3


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left = _sine(440.0, seconds=0.2, rate=SR)
    right = _sine(660.0, seconds=0.2, rate=SR, amplitude=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    signal = load_audio(path, sample_rate=SR)
    np.testing.assert_allclose(signal, (left + right) / 2, atol=1e-7)


def test_real_stereo_ogg_is_mixed_to_mono() -> None:
    path = DRUMS[0]
    assert sf.info(str(path)).channels == 2
    stereo, rate = sf.read(str(path), dtype="float32")
    signal = load_audio(path, sample_rate=rate)
    np.testing.assert_allclose(signal, stereo.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize(("suffix", "subtype"), [(".wav", "PCM_16"), (".flac", "PCM_16")])
def test_round_trip(tmp_path: Path, suffix: str, subtype: str) -> None:
    original = _sine(300.0, seconds=0.3, rate=SR, amplitude=0.8)
    path = tmp_path / f"tone{suffix}"
    sf.write(path, original, SR, subtype=subtype)
    signal = load_audio(path, sample_rate=SR)
    np.testing.assert_allclose(signal, original, atol=1.0 / 2**15)


def test_mp3_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "tone.mp3"
    sf.write(path, _sine(300.0, seconds=0.5, rate=22050), 22050, format="MP3")
    signal = load_audio(path, sample_rate=SR)
    assert abs(signal.size - SR * 0.5) < 0.05 * SR  # MP3 adds encoder delay/padding
    assert 0.3 < np.abs(signal).max() <= 1.0


def test_float_file_louder_than_full_scale_is_scaled(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    sf.write(path, 4 * _sine(200.0, seconds=0.1, rate=SR), SR, subtype="FLOAT")
    signal = load_audio(path, sample_rate=SR)
    assert np.abs(signal).max() == pytest.approx(1.0, abs=1e-6)


def test_silent_file_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(800, dtype=np.float32), SR)
    signal = load_audio(path, sample_rate=SR)
    assert signal.shape == (800,) and not signal.any()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "missing.wav"
    with pytest.raises(AudioError, match="does not exist") as info:
        load_audio(path, sample_rate=SR)
    assert str(path) in str(info.value)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioError, match="cannot decode") as info:
        load_audio(path, sample_rate=SR)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is not None


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioError, match="no samples") as info:
        load_audio(path, sample_rate=SR)
    assert str(path) in str(info.value)


def test_nan_samples(tmp_path: Path) -> None:
    samples = _sine(200.0, seconds=0.1, rate=SR)
    samples[100:110] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, samples, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="10 NaN") as info:
        load_audio(path, sample_rate=SR)
    assert str(path) in str(info.value)


def test_bad_sample_rate() -> None:
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(TONES[0], sample_rate=0)


def test_fallback_decoder_warnings_stay_quiet_on_threads(tmp_path: Path, caplog) -> None:
    """librosa warns on every file it decodes after soundfile failed; decoding runs on threads,
    where ``warnings.catch_warnings`` is not safe, so those warnings leaked to the terminal. They
    are filtered for the process; the fallback is logged once instead."""
    import logging
    import warnings

    from dsplug import audio
    from dsplug.data.chunks import ordered_map

    paths = []
    for i in range(24):
        path = tmp_path / f"clip{i}.m4a"  # not a libsndfile format: the librosa/audioread fallback
        path.write_bytes(np.random.default_rng(i).bytes(2000))
        paths.append(path)

    def decode(path: Path) -> str:
        try:
            load_audio(path, sample_rate=16000)
        except AudioError as err:
            return str(err)
        return ""

    audio.FALLBACK_LOGGED.clear()  # as in a fresh process
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger="dsplug.audio"):
        warnings.simplefilter("always")
        errors = list(ordered_map(decode, paths, workers=4))
    assert all("cannot decode audio file" in error for error in errors)
    leaked = [str(w.message) for w in caught if "PySoundFile" in str(w.message) or "audioread" in str(w.message)]
    assert not leaked, leaked[:2]
    fallback = [r for r in caplog.records if "librosa/audioread" in r.getMessage()]
    assert len(fallback) == 1, [r.getMessage() for r in fallback]
