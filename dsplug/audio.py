"""Audio I/O and chunking: decode, mix to mono, resample, validate, cut into fixed-length chunks.

This module does not import TensorFlow: the TFLite inference runtime uses it too.

Examples
--------
>>> from dsplug.audio import load_audio, chunk_signal
>>> y = load_audio("data/tones/audio/spk3_0002_T1.ogg", sample_rate=16000)  # doctest: +SKIP
>>> chunks = chunk_signal(
...     y, sample_rate=16000, chunk_seconds=1.0, hop_seconds=0.5
... )  # doctest: +SKIP
>>> chunks.frames.shape  # doctest: +SKIP
(1, 16000)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import warnings
from typing import Literal

import numpy as np
import soundfile as sf

from dsplug.errors import AudioError

logger = logging.getLogger(__name__)

__all__ = ["Chunks", "PadMode", "chunk_signal", "load_audio", "prepare_signal", "validate_signal"]

PadMode = Literal["zero", "repeat"]

#: How dsplug's data pipeline and runtime fill a window shorter than the model's input: with
#: zeros, as MediaPipe and the browser do. A ``data.pad_mode: repeat`` model tiles the zero
#: padding itself (:class:`dsplug.frontend.padding.RepeatPad`), so every host feeds it the same.
HOST_PAD_MODE: PadMode = "zero"

#: soxr quality used by :func:`load_audio` (the same resampler as librosa's ``res_type="soxr_hq"``,
#: called directly so the inference runtime needs no librosa).
RESAMPLE_QUALITY = "HQ"

def validate_signal(signal: np.ndarray, *, source: str) -> None:
    """Check that a signal is a non-empty 1-D array of finite samples.

    Parameters
    ----------
    signal : np.ndarray [shape=(n,)]
        Audio samples (any float or integer dtype).
    source : str
        Where the signal comes from (a file path or a description); named in the error.

    Raises
    ------
    AudioError
        If the signal is not 1-D, has no samples, or holds NaN or infinite values. A signal of
        pure silence (all zeros) is valid.
    """
    array = np.asarray(signal)
    if array.ndim != 1:
        raise AudioError(
            f"{source}: expected a 1-D (mono) signal, got an array of shape {array.shape}; "
            "mix the channels down first (e.g. signal.mean(axis=-1))"
        )
    if array.size == 0:
        raise AudioError(f"{source}: the audio has no samples (0 s); remove or replace the file")
    if not np.issubdtype(array.dtype, np.number):
        raise AudioError(f"{source}: samples have dtype {array.dtype}, expected numbers")
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        n_nan = int(np.isnan(array).sum())
        raise AudioError(
            f"{source}: {bad.size} of {array.size} samples are not finite ({n_nan} NaN, "
            f"{bad.size - n_nan} infinite; first at sample {int(bad[0])}); the file is "
            "damaged: re-export or remove it"
        )


#: Sample rates a file may declare, in Hz; outside this range the header is damaged (and
#: resampling from, say, 1 Hz would allocate gigabytes).
MIN_FILE_RATE, MAX_FILE_RATE = 1_000, 768_000


def _check_rate(rate: int, *, path: str) -> int:
    if not MIN_FILE_RATE <= rate <= MAX_FILE_RATE:
        raise AudioError(
            f"audio file {path!r} declares a sample rate of {rate} Hz, outside {MIN_FILE_RATE}-"
            f"{MAX_FILE_RATE} Hz: its header is damaged; re-export or remove the file"
        )
    return rate


#: What librosa warns on every file it decodes after libsndfile failed (it tries soundfile once
#: more, then the deprecated audioread backend): (category, message pattern).
LIBROSA_FALLBACK_WARNINGS = (
    (UserWarning, r"PySoundFile failed"),
    (FutureWarning, r"librosa\.core\.audio\.__audioread_load"),
)
#: Set once the librosa fallback has been logged in this process (cleared: log it again).
FALLBACK_LOGGED = threading.Event()
_FALLBACK_LOCK = threading.Lock()


def _quiet_fallback(path: str) -> None:
    """Filter librosa's fallback warnings for the process, and log the fallback once.

    Files are decoded on several threads (:mod:`dsplug.data`), where ``warnings.catch_warnings``
    does not work: it swaps the process-wide filter list, so one thread's exit restores the
    filters while another still decodes, and the warnings reached the terminal once per file. The
    two known warnings are filtered instead (the filters stay; adding them again only moves them
    first), and one log line says that the slower decoder is in use.
    """
    with _FALLBACK_LOCK:
        for category, message in LIBROSA_FALLBACK_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        if not FALLBACK_LOGGED.is_set():
            FALLBACK_LOGGED.set()
            logger.info(
                "%s is not in a format libsndfile reads (WAV, FLAC, OGG, MP3); such files are decoded with "
                "librosa/audioread, which is slower and needs ffmpeg (converting them once is faster)", path,
            )


def _decode(path: str) -> tuple[np.ndarray, int]:
    """Decode a file to (samples, sample rate) with samples of shape (n, channels), float32."""
    try:
        info = sf.info(path)
    except Exception:  # noqa: BLE001  not a libsndfile format: the fallback below decides
        info = None
    if info is not None:
        _check_rate(int(info.samplerate), path=path)
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        return data, _check_rate(int(rate), path=path)
    except AudioError:
        raise
    except Exception as sf_err:  # noqa: BLE001  libsndfile raises several types for bad files
        logger.debug("soundfile cannot read %s (%s); trying librosa/audioread", path, sf_err)
        first_error: Exception = sf_err

    try:
        import librosa  # lazy: slow to import and only needed for unusual formats
    except ModuleNotFoundError:  # the runtime-only install: libsndfile's formats only
        raise AudioError(
            f"cannot decode audio file {path!r}: {first_error}. The file is corrupt or in a format "
            "libsndfile does not read; convert it to WAV, FLAC or OGG (e.g. `ffmpeg -i IN OUT.wav`)"
        ) from first_error

    _quiet_fallback(path)
    try:
        data, rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
    except Exception as err:  # audioread/ffmpeg raise many unrelated types
        fallback = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise AudioError(
            f"cannot decode audio file {path!r}: {first_error} (fallback decoder librosa/"
            f"audioread: {fallback}). The file is corrupt or in a format neither libsndfile nor "
            "an audioread backend (ffmpeg) reads; convert it to WAV, FLAC or OGG "
            "(e.g. `ffmpeg -i IN OUT.wav`)"
        ) from err
    data = np.atleast_2d(data).T  # librosa gives (channels, n) or (n,)
    return np.ascontiguousarray(data, dtype=np.float32), _check_rate(int(rate), path=path)


def load_audio(path: str | os.PathLike[str], *, sample_rate: int) -> np.ndarray:
    """Read an audio file as a mono float32 signal at ``sample_rate``.

    The file is decoded with soundfile (WAV, FLAC, OGG/Vorbis, MP3 with libsndfile >= 1.1, ...),
    falling back to librosa/audioread for formats libsndfile cannot read. Channels are averaged
    to mono, then the signal is resampled with soxr's high-quality resampler.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    sample_rate : int
        Target sample rate in Hz (> 0).

    Returns
    -------
    signal : np.ndarray [shape=(n,), dtype=float32]
        Samples in [-1, 1]. A float file whose peak exceeds 1 is scaled down to peak 1 (with a
        warning); the resampler's overshoot beyond +-1 is clipped.

    Raises
    ------
    AudioError
        If the file is missing, cannot be decoded (corrupt or unsupported format), has no
        samples, or holds NaN or infinite samples.
    """
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    name = os.fspath(path)
    if not os.path.exists(name):
        raise AudioError(
            f"audio file {name!r} does not exist; check the path (relative paths in a manifest "
            "are relative to the manifest's folder)"
        )
    if os.path.isdir(name):
        raise AudioError(f"{name!r} is a folder, not an audio file")

    data, rate = _decode(name)
    if data.size == 0:
        raise AudioError(
            f"audio file {name!r} holds no samples (0 s); remove it or replace it with a "
            "non-empty recording"
        )
    return prepare_signal(data, rate=rate, sample_rate=sample_rate, source=f"audio file {name!r}")


def prepare_signal(samples: np.ndarray, *, rate: int, sample_rate: int, source: str = "the audio") -> np.ndarray:
    """Samples as a mono float32 signal at ``sample_rate``: what :func:`load_audio` does after decoding.

    Parameters
    ----------
    samples : np.ndarray [shape=(n,) or (n, channels)]
        Float samples in [-1, 1], or integer PCM (scaled by the dtype's full scale, e.g.
        1 / 32768 for int16). Channels are averaged to mono.
    rate : int
        Their sample rate in Hz.
    sample_rate : int
        The target rate in Hz; soxr's high-quality resampler converts when they differ.
    source : str
        What the samples are, for messages.

    Returns
    -------
    signal : np.ndarray [shape=(m,), dtype=float32]
        In [-1, 1]: a float signal whose peak exceeds 1 is scaled down to peak 1 (a warning
        above 2); the resampler's overshoot is clipped.

    Raises
    ------
    AudioError
        Not 1-D or 2-D, no samples, NaN or infinite samples, a rate that is not a positive
        whole number, or too short to leave a sample at ``sample_rate``.
    """
    for what, value in (("rate", rate), ("sample_rate", sample_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise AudioError(f"{source}: {what} must be a positive whole number of Hz, got {value!r}")
    data = np.asarray(samples)
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / np.float32(-float(np.iinfo(data.dtype).min) or 1.0)
    if data.ndim == 2:
        data = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    validate_signal(data, source=source)
    signal = data.astype(np.float32, copy=False)
    peak = float(np.max(np.abs(signal)))
    if peak > 1.0:
        # Lossy codecs (Vorbis, MP3) overshoot full scale slightly; far above 1 suggests a float
        # file holding unscaled integer samples.
        level = logging.WARNING if peak > 2.0 else logging.DEBUG
        logger.log(level, "%s: peak amplitude %.3g > 1; scaled down to 1", source, peak)
        signal = signal / np.float32(peak)

    if rate != sample_rate:
        import soxr

        signal = soxr.resample(signal, int(rate), int(sample_rate), quality=RESAMPLE_QUALITY)
    signal = np.clip(signal, -1.0, 1.0).astype(np.float32, copy=False)
    if signal.size == 0:
        raise AudioError(
            f"{source} is too short: {data.shape[0]} samples at {rate} Hz leave no sample at {sample_rate} Hz"
        )
    return signal


@dataclasses.dataclass(frozen=True)
class Chunks:
    """Fixed-length chunks cut from one signal.

    Attributes
    ----------
    frames : np.ndarray [shape=(n_chunks, chunk_samples), dtype=float32]
        The chunks; the last one (and a signal shorter than one chunk) is padded.
    starts : np.ndarray [shape=(n_chunks,), dtype=float64]
        Start time of each chunk in seconds from the beginning of the signal.
    source : str
        Identifier of the signal (usually the file path).
    """

    frames: np.ndarray
    starts: np.ndarray
    source: str = ""


def _samples(seconds: float, *, sample_rate: int, what: str) -> int:
    if not isinstance(seconds, (int, float, np.number)) or not math.isfinite(seconds):
        raise AudioError(f"{what} must be a finite number of seconds, got {seconds!r}")
    if seconds <= 0:
        raise AudioError(f"{what} must be > 0 seconds, got {seconds!r}")
    count = round(float(seconds) * sample_rate)
    if count < 1:
        raise AudioError(
            f"{what}={seconds!r} s is shorter than one sample at {sample_rate} Hz; use at least "
            f"{1.0 / sample_rate:.3g} s"
        )
    return count


def _pad(segment: np.ndarray, *, length: int, pad_mode: PadMode) -> np.ndarray:
    """Fill ``segment`` up to ``length`` samples with zeros or by tiling it."""
    if segment.size == length:
        return segment
    if pad_mode == "repeat":
        return np.resize(segment, length)  # tiles the segment's own samples
    return np.pad(segment, (0, length - segment.size))


def chunk_signal(
    signal: np.ndarray,
    *,
    sample_rate: int,
    chunk_seconds: float,
    hop_seconds: float,
    pad_mode: PadMode = "zero",
    source: str = "",
) -> Chunks:
    """Cut a signal into sliding windows of ``chunk_seconds`` every ``hop_seconds``.

    No sample is dropped: a signal shorter than one chunk gives one padded chunk, and the last
    partial chunk is kept and padded. With ``n`` samples, chunk length ``L`` and hop ``H`` (in
    samples) there are ``1 + ceil(max(0, n - L) / H)`` chunks; chunk ``i`` starts at sample
    ``i * H``.

    Parameters
    ----------
    signal : np.ndarray [shape=(n,)]
        Mono samples, n >= 1.
    sample_rate : int
        Sample rate of ``signal`` in Hz.
    chunk_seconds : float
        Chunk length in seconds (> 0); ``L = round(chunk_seconds * sample_rate)``.
    hop_seconds : float
        Hop between chunk starts in seconds (> 0); ``H = round(hop_seconds * sample_rate)``.
    pad_mode : {"zero", "repeat"}
        How a chunk shorter than ``L`` is filled: with zeros, or by repeating (tiling) the
        samples it has.
    source : str
        Identifier stored in the result (e.g. the file path).

    Returns
    -------
    Chunks
        ``frames`` of shape (n_chunks, L) float32 and ``starts`` in seconds.

    Raises
    ------
    AudioError
        For an invalid signal (see :func:`validate_signal`) or invalid arguments.
    """
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    if pad_mode not in ("zero", "repeat"):
        raise AudioError(f"pad_mode must be 'zero' or 'repeat', got {pad_mode!r}")
    length = _samples(chunk_seconds, sample_rate=sample_rate, what="chunk_seconds")
    hop = _samples(hop_seconds, sample_rate=sample_rate, what="hop_seconds")
    validate_signal(signal, source=source or "signal")

    samples = np.asarray(signal, dtype=np.float32)
    n = samples.size
    n_chunks = 1 + math.ceil(max(0, n - length) / hop)
    frames = np.empty((n_chunks, length), dtype=np.float32)
    for i in range(n_chunks):
        frames[i] = _pad(samples[i * hop : i * hop + length], length=length, pad_mode=pad_mode)
    starts = np.arange(n_chunks, dtype=np.float64) * hop / sample_rate
    return Chunks(frames=frames, starts=starts, source=source)
