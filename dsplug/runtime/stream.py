"""Sliding-window inference on a live sample stream: an audio file played block by block, or the microphone.

A :class:`Streamer` keeps the latest chunk of audio in a ring buffer and runs the model every
hop; :func:`stream_file` and :func:`stream_microphone` feed it and summarise the latency per
window and the real-time factor (:class:`StreamSummary`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsplug.audio import chunk_signal, load_audio
from dsplug.errors import AudioError, install_extra
from dsplug.runtime.predict import file_notes

if TYPE_CHECKING:  # pragma: no cover - typing only (model.py imports this module)
    from dsplug.runtime.model import Model

__all__ = [
    "StreamResult",
    "StreamSummary",
    "Streamer",
    "format_stream_result",
    "format_stream_summary",
    "stream_file",
    "stream_microphone",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """The model's decision on one window of a stream.

    Attributes
    ----------
    time : float
        End of the window in seconds since the stream started (the window covers
        ``[time - chunk_seconds, time]``).
    label : str
        Decision on the smoothed outputs (arg-max class; classes above 0.5 for multi-label).
    confidence : float
        The largest smoothed output (the arg-max probability for classification).
    probabilities : np.ndarray [shape=(k,), dtype=float64]
        Moving average of the raw outputs of the last ``smoothing`` windows.
    raw_probabilities : np.ndarray [shape=(k,), dtype=float32]
        This window's outputs.
    latency_ms : float
        Time to evaluate the window: assembling it from the ring buffer, quantising, invoking
        the interpreter, reading and smoothing the outputs.
    """

    time: float
    label: str
    confidence: float
    probabilities: np.ndarray
    raw_probabilities: np.ndarray
    latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON lines)."""
        return {
            "time": round(self.time, 6), "label": self.label, "confidence": float(self.confidence),
            "probabilities": [float(p) for p in self.probabilities], "latency_ms": float(self.latency_ms),
        }


class Streamer:
    """Sliding-window inference on a live sample stream.

    A ring buffer holds the latest chunk of audio. Once it is full (``chunk_seconds`` after the
    start), the model runs on it every ``hop_seconds`` of new audio, so window ``i`` ends at
    ``chunk_seconds + i * hop_seconds``: exactly the windows :func:`dsplug.audio.chunk_signal`
    cuts with the same hop, without padding.

    Parameters
    ----------
    model : Model
        From :func:`dsplug.runtime.load_model`.
    hop_seconds : float, optional
        Seconds of new audio between two windows. Default: a quarter of the chunk
        (``model.chunk_seconds / 4``), so a decision follows a sound within a quarter chunk,
        while the metadata's hop (often a whole chunk) is kept for files.
    smoothing : int
        Number of recent windows whose outputs are averaged (1: no smoothing).

    Raises
    ------
    AudioError
        ``hop_seconds`` is not positive or shorter than one sample; ``smoothing`` < 1.
    """

    def __init__(self, model: Model, *, hop_seconds: float | None = None, smoothing: int = 1) -> None:
        hop = model.chunk_seconds / 4 if hop_seconds is None else hop_seconds
        if not isinstance(hop, (int, float)) or not math.isfinite(hop) or hop <= 0:
            raise AudioError(f"hop_seconds must be a positive number of seconds, got {hop_seconds!r}")
        hop_samples = round(hop * model.sample_rate)
        if hop_samples < 1:
            raise AudioError(f"hop_seconds={hop!r} is shorter than one sample at {model.sample_rate} Hz")
        if isinstance(smoothing, bool) or not isinstance(smoothing, int) or smoothing < 1:
            raise AudioError(f"smoothing must be a whole number of windows >= 1, got {smoothing!r}")
        self.model = model
        self.hop_samples = hop_samples
        self.hop_seconds = hop_samples / model.sample_rate
        self.smoothing = smoothing
        self._ring = np.zeros(model.chunk_samples, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget all audio and smoothing history (start a new stream)."""
        self._ring[:] = 0.0
        self._write_at = 0  # ring index of the next sample (= of the oldest sample once full)
        self._received = 0  # samples pushed since the start
        self._next_end = self.model.chunk_samples  # sample count at which the next window ends
        self._recent: collections.deque[np.ndarray] = collections.deque(maxlen=self.smoothing)

    @property
    def samples(self) -> int:
        """Samples received since the start."""
        return self._received

    @property
    def seconds(self) -> float:
        """Audio received since the start, in seconds."""
        return self._received / self.model.sample_rate

    def push(self, samples: np.ndarray) -> list[StreamResult]:
        """Feed new samples; evaluate every window that ends within them.

        Parameters
        ----------
        samples : np.ndarray [shape=(n,)]
            New mono samples in [-1, 1] at ``model.sample_rate``; any ``n`` >= 0.

        Returns
        -------
        list of StreamResult
            One per completed window, oldest first (empty until the first chunk is full).

        Raises
        ------
        AudioError
            ``samples`` is not 1-D or holds NaN or infinite values.
        """
        block = np.asarray(samples, dtype=np.float32)
        if block.ndim != 1:
            raise AudioError(
                f"push() takes 1-D mono samples, got shape {block.shape}; mix channels down first "
                "(e.g. samples.mean(axis=1))"
            )
        if not np.isfinite(block).all():
            raise AudioError("pushed samples hold NaN or infinite values; the audio source is damaged")
        results = []
        offset = 0
        while offset < block.size:
            take = min(block.size - offset, self._next_end - self._received)
            self._write(block[offset : offset + take])
            offset += take
            self._received += take
            if self._received == self._next_end:
                results.append(self._evaluate())
                self._next_end += self.hop_samples
        return results

    def finish(self) -> list[StreamResult]:
        """End the stream: a stream shorter than one window still gets one decision.

        If fewer than ``chunk_samples`` samples arrived (and at least one), the window is what
        arrived followed by zeros, as a host pads a short clip; a ``repeat`` model fills the
        zeros itself. Streams that gave a window already give nothing more. Call
        :meth:`reset` before reusing the streamer.

        Returns
        -------
        list of StreamResult
            The one decision of a short stream, or an empty list.
        """
        if not 0 < self._received < self.model.chunk_samples:
            return []
        self._write_at = 0  # the ring never wrapped: its samples start at index 0, zeros follow
        self._next_end = self._received + self.hop_samples
        return [self._evaluate()]

    def _write(self, block: np.ndarray) -> None:
        size = self._ring.size
        if block.size >= size:
            self._ring[:] = block[-size:]
            self._write_at = 0
            return
        first = min(block.size, size - self._write_at)
        self._ring[self._write_at : self._write_at + first] = block[:first]
        self._ring[: block.size - first] = block[first:]
        self._write_at = (self._write_at + block.size) % size

    def _evaluate(self) -> StreamResult:
        start = time.perf_counter()
        window = np.concatenate((self._ring[self._write_at :], self._ring[: self._write_at]))
        raw = self.model.predict_chunks(window[None, :])[0]
        self._recent.append(raw)
        smoothed: np.ndarray = np.stack(self._recent).mean(axis=0, dtype=np.float64)
        label = self.model.task.decide(smoothed, classes=self.model.classes)
        latency_ms = (time.perf_counter() - start) * 1e3
        return StreamResult(
            time=self._received / self.model.sample_rate, label=label, confidence=float(smoothed.max()),
            probabilities=smoothed, raw_probabilities=raw, latency_ms=latency_ms,
        )


@dataclasses.dataclass(frozen=True)
class StreamSummary:
    """Statistics of one stream.

    Attributes
    ----------
    source : str
        The file streamed, or ``"microphone"``.
    duration : float
        Seconds of audio streamed.
    windows : int
        Windows evaluated.
    hop_seconds, block_seconds : float
        Hop between windows; size of the blocks the audio arrived in.
    smoothing : int
        Windows averaged per decision.
    latency_mean_ms, latency_p50_ms, latency_p95_ms, latency_max_ms : float
        Per-window latency (see :attr:`StreamResult.latency_ms`); NaN without windows.
    processing_seconds : float
        Time spent in :meth:`Streamer.push` (sleeps and callbacks excluded).
    real_time_factor : float
        ``processing_seconds / duration`` (< 1: faster than real time).
    wall_seconds : float
        Wall-clock time of the whole stream (includes real-time pacing).
    realtime : bool
        Whether the audio was paced at real time.
    notes : tuple of str
        Resampling, padding, input overflows.
    """

    source: str
    duration: float
    windows: int
    hop_seconds: float
    block_seconds: float
    smoothing: int
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    processing_seconds: float
    real_time_factor: float
    wall_seconds: float
    realtime: bool
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON); NaN latencies become None."""
        data = dataclasses.asdict(self)
        data["notes"] = list(self.notes)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}


def _block_samples(block_seconds: float, *, sample_rate: int) -> int:
    if not isinstance(block_seconds, (int, float)) or not math.isfinite(block_seconds) or block_seconds <= 0:
        raise AudioError(f"block_seconds must be a positive number of seconds, got {block_seconds!r}")
    return max(1, round(block_seconds * sample_rate))


def _push(
    streamer: Streamer, samples: np.ndarray | None, *, latencies: list[float],
    on_result: Callable[[StreamResult], None] | None,
) -> float:
    """Push ``samples`` (None: :meth:`Streamer.finish`), append each window's latency to
    ``latencies``, call ``on_result``.

    Returns the seconds spent in :meth:`Streamer.push` (``on_result`` is not timed).
    """
    tick = time.perf_counter()
    results = streamer.finish() if samples is None else streamer.push(samples)
    spent = time.perf_counter() - tick
    for result in results:
        latencies.append(result.latency_ms)
        if on_result is not None:
            on_result(result)
    return spent


def _summary(
    *, source: str, streamer: Streamer, latencies: list[float], processing: float, wall: float,
    block_seconds: float, realtime: bool, notes: Sequence[str],
) -> StreamSummary:
    lat = np.asarray(latencies, dtype=np.float64)
    nan = float("nan")
    duration = streamer.seconds
    return StreamSummary(
        source=source,
        duration=duration,
        windows=int(lat.size),
        hop_seconds=streamer.hop_seconds,
        block_seconds=block_seconds,
        smoothing=streamer.smoothing,
        latency_mean_ms=float(lat.mean()) if lat.size else nan,
        latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else nan,
        latency_p95_ms=float(np.percentile(lat, 95)) if lat.size else nan,
        latency_max_ms=float(lat.max()) if lat.size else nan,
        processing_seconds=processing,
        real_time_factor=processing / duration if duration > 0 else nan,
        wall_seconds=wall,
        realtime=realtime,
        notes=tuple(notes),
    )


def stream_file(
    model: Model,
    path: str | os.PathLike[str],
    *,
    realtime: bool,
    block_seconds: float = 0.1,
    hop_seconds: float | None = None,
    smoothing: int = 1,
    on_result: Callable[[StreamResult], None] | None = None,
) -> StreamSummary:
    """Stream an audio file through a :class:`Streamer` block by block.

    The file is read and resampled block by block (memory does not grow with its length); a
    file shorter than one chunk gives one window (:meth:`Streamer.finish`: zero-padded, filled
    by the model as its ``pad_mode`` says). Blocks of
    ``block_seconds`` are then pushed, either as fast as possible or, with ``realtime``, each
    when its last sample would have been recorded. Sleeping and ``on_result`` run outside the
    timed region.

    Parameters
    ----------
    model : Model
    path : path
        An audio file.
    realtime : bool
        Pace the blocks at real time (the call then lasts about the file's duration).
    block_seconds : float
        Audio per pushed block in seconds (like a sound card's buffer).
    hop_seconds : float, optional
        Hop between windows; default ``chunk_seconds / 4`` (see :class:`Streamer`).
    smoothing : int
        Windows averaged per decision.
    on_result : callable, optional
        Called with each :class:`StreamResult` as it comes.

    Returns
    -------
    StreamSummary

    Raises
    ------
    AudioError
        The file is missing or cannot be decoded; invalid block, hop or smoothing.
    """
    streamer = Streamer(model, hop_seconds=hop_seconds, smoothing=smoothing)
    block = _block_samples(block_seconds, sample_rate=model.sample_rate)
    source = Path(path)
    blocks, samples = _file_blocks(source, model=model, block=block)
    notes = file_notes(source, model=model, samples=samples)
    latencies: list[float] = []
    processing = 0.0
    offset = 0
    began = time.perf_counter()
    for piece in blocks:
        offset += piece.size
        if realtime:
            due = began + offset / model.sample_rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        processing += _push(streamer, piece, latencies=latencies, on_result=on_result)
    processing += _push(streamer, None, latencies=latencies, on_result=on_result)
    return _summary(
        source=str(source), streamer=streamer, latencies=latencies, processing=processing,
        wall=time.perf_counter() - began, block_seconds=block / model.sample_rate, realtime=realtime,
        notes=notes,
    )


def _file_blocks(source: Path, *, model: Model, block: int) -> tuple[Iterator[np.ndarray], int]:
    """A file as mono blocks of ``block`` samples at the model's rate, and its length in them.

    libsndfile's formats are read and resampled piece by piece (soxr's streaming resampler), so
    memory does not grow with the file; other formats (librosa's fallback), and files shorter
    than a chunk for a model that expects the host to repeat them, are decoded whole.

    Raises
    ------
    AudioError
        The file is missing or cannot be decoded (when opened, or at the block that fails).
    """
    import soundfile

    try:
        info = soundfile.info(str(source))
    except (soundfile.LibsndfileError, RuntimeError, OSError, TypeError):
        info = None
    readable = info is not None and info.frames >= 1 and info.samplerate >= 1
    samples = math.ceil(info.frames * model.sample_rate / info.samplerate) if readable else 0
    if not readable or (samples < model.chunk_samples and model.host_pad_mode == "repeat"):
        signal = load_audio(source, sample_rate=model.sample_rate)  # the decoder's own errors name the file
        if signal.size < model.chunk_samples and model.host_pad_mode == "repeat":  # a model that does not pad itself
            signal = chunk_signal(
                signal, sample_rate=model.sample_rate, chunk_seconds=model.chunk_seconds,
                hop_seconds=model.chunk_seconds, pad_mode="repeat", source=str(source),
            ).frames[0]
        return (signal[i : i + block] for i in range(0, signal.size, block)), signal.size
    return _read_blocks(source, rate=int(info.samplerate), model=model, block=block), samples


def _read_blocks(source: Path, *, rate: int, model: Model, block: int) -> Iterator[np.ndarray]:
    import soundfile
    import soxr

    resampler = soxr.ResampleStream(rate, model.sample_rate, 1, dtype="float32", quality="HQ") if rate != model.sample_rate else None
    native = max(1, round(block * rate / model.sample_rate))
    pending = np.zeros(0, np.float32)
    try:
        with soundfile.SoundFile(str(source)) as handle:
            while True:
                data = handle.read(native, dtype="float32", always_2d=True)
                last = len(data) < native
                mono = data.mean(axis=1, dtype=np.float32) if data.size else np.zeros(0, np.float32)
                if not np.isfinite(mono).all():
                    raise AudioError(f"{source}: NaN or infinite samples near {handle.tell() / rate:.1f} s; the file is damaged")
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                pending = np.concatenate([pending, np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)])
                while pending.size >= block:
                    yield pending[:block]
                    pending = pending[block:]
                if last:
                    break
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"cannot decode {str(source)!r} while streaming it ({err}); check the file") from err
    if pending.size:
        yield pending


def _import_sounddevice() -> Any:
    """Import the optional ``sounddevice`` package, or explain how to get it."""
    try:
        import sounddevice
    except ImportError as err:
        raise AudioError(
            f"microphone streaming needs the optional package sounddevice: {install_extra('mic')} "
            "(it uses the PortAudio library; on Debian/Ubuntu also `sudo apt-get install "
            "libportaudio2`). Without a microphone, stream a file instead (`dsplug stream MODEL --file F`)"
        ) from err
    except OSError as err:  # sounddevice raises OSError when libportaudio is missing
        raise AudioError(
            f"sounddevice is installed but cannot load the PortAudio library ({err}); install it "
            "(Debian/Ubuntu: `sudo apt-get install libportaudio2`, macOS: `brew install portaudio`, "
            "conda: `conda install portaudio`)"
        ) from err
    return sounddevice


def stream_microphone(
    model: Model,
    *,
    seconds: float | None,
    block_seconds: float = 0.1,
    hop_seconds: float | None = None,
    smoothing: int = 1,
    device: int | str | None = None,
    on_result: Callable[[StreamResult], None] | None = None,
) -> StreamSummary:
    """Stream the default (or a given) input device through a :class:`Streamer`.

    Needs the optional package ``sounddevice`` (and the PortAudio library). Audio is recorded
    mono at the model's sample rate in blocks of ``block_seconds``; Ctrl-C ends the stream
    early and still returns the summary.

    Parameters
    ----------
    model : Model
    seconds : float or None
        How long to listen; None: until Ctrl-C.
    block_seconds : float
        Audio per block read from the device.
    hop_seconds : float, optional
        Hop between windows; default ``chunk_seconds / 4``.
    smoothing : int
        Windows averaged per decision.
    device : int or str, optional
        PortAudio input device (index or name substring); default the system's.
    on_result : callable, optional
        Called with each :class:`StreamResult` as it comes.

    Returns
    -------
    StreamSummary
        ``source="microphone"``; ``notes`` counts input overflows (blocks dropped because
        processing fell behind).

    Raises
    ------
    AudioError
        sounddevice or PortAudio is missing, no usable input device, or invalid arguments.
    """
    streamer = Streamer(model, hop_seconds=hop_seconds, smoothing=smoothing)
    block = _block_samples(block_seconds, sample_rate=model.sample_rate)
    if seconds is not None and (not isinstance(seconds, (int, float)) or not seconds > 0):
        raise AudioError(f"seconds must be > 0 or None (until Ctrl-C), got {seconds!r}")
    sd = _import_sounddevice()
    total = None if seconds is None else round(seconds * model.sample_rate)
    latencies: list[float] = []
    processing = 0.0
    overflows = 0
    began = time.perf_counter()
    try:
        with sd.InputStream(
            samplerate=model.sample_rate, channels=1, dtype="float32", blocksize=block, device=device
        ) as stream:
            try:
                while total is None or streamer.samples < total:
                    wanted = block if total is None else min(block, total - streamer.samples)
                    data, overflowed = stream.read(wanted)
                    overflows += bool(overflowed)
                    samples = np.asarray(data, dtype=np.float32).reshape(-1)
                    processing += _push(streamer, samples, latencies=latencies, on_result=on_result)
            except KeyboardInterrupt:
                logger.info("microphone stream stopped by the user")
    except (sd.PortAudioError, ValueError) as err:
        raise AudioError(
            f"cannot record from input device {device if device is not None else '(default)'} at "
            f"{model.sample_rate} Hz: {err}; list devices with `python -m sounddevice` and pick "
            "one that has input channels"
        ) from err
    notes = [f"{overflows} input overflow(s): audio was dropped"] if overflows else []
    return _summary(
        source="microphone", streamer=streamer, latencies=latencies, processing=processing,
        wall=time.perf_counter() - began, block_seconds=block / model.sample_rate, realtime=True,
        notes=notes,
    )


def format_stream_result(result: StreamResult) -> str:
    """One line for a window: ``  1.250 s  T3          0.71   1.4 ms``."""
    return f"{result.time:8.3f} s  {result.label or '-':<16} {result.confidence:6.3f}  {result.latency_ms:7.2f} ms"


def format_stream_summary(summary: StreamSummary) -> str:
    """A few lines summarising a stream."""
    if summary.windows:
        latency = (
            f"latency per window: mean {summary.latency_mean_ms:.2f} ms, p50 "
            f"{summary.latency_p50_ms:.2f} ms, p95 {summary.latency_p95_ms:.2f} ms, max "
            f"{summary.latency_max_ms:.2f} ms"
        )
    else:
        latency = "no window evaluated (less audio than one chunk)"
    lines = [
        f"{summary.source}: {summary.duration:.2f} s of audio, {summary.windows} window(s) every "
        f"{summary.hop_seconds:g} s, smoothing {summary.smoothing}, "
        f"{'real-time pace' if summary.realtime else 'as fast as possible'}",
        latency,
        f"real-time factor {summary.real_time_factor:.4f} (processing {summary.processing_seconds:.3f} s "
        f"for {summary.duration:.2f} s of audio; wall {summary.wall_seconds:.2f} s)",
    ]
    lines += [f"note: {n}" for n in summary.notes]
    return "\n".join(lines)

