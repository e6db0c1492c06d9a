"""Load an exported model (a ``.tflite`` that describes itself) into a LiteRT interpreter.

The model takes one raw mono chunk, float32 of shape (1, chunk_samples) in [-1, 1] at the
metadata's sample rate, and returns (1, k) outputs (class probabilities, or values for
regression). Its description is :class:`dsplug.artifacts.ModelMetadata`, read from the TFLite
Model Metadata inside the file; a ``model.json`` sidecar next to it must agree with it, and is
read only for models exported before dsplug embedded the metadata.

:class:`Model` is also the Python API (:func:`dsplug.load`): :meth:`Model.predict` on a file or
an array, :meth:`Model.stream` on an iterator of sample blocks, :attr:`Model.classes`,
:attr:`Model.sample_rate`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dsplug.artifacts import ModelMetadata
from dsplug.errors import AudioError, ExportError, MetadataMissing
from dsplug.task import Task
from dsplug.runtime.predict import FilePrediction, predict_files, predict_signal
from dsplug.audio import prepare_signal
from dsplug.runtime.stream import StreamResult, Streamer

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ai_edge_litert.interpreter import Interpreter

logger = logging.getLogger(__name__)

__all__ = ["Model", "load_model", "read_model_metadata", "resolve_model_path"]


class Model:
    """An exported dsplug model loaded into a LiteRT interpreter (not thread-safe).

    Create it with :func:`load_model`; give each further thread a :meth:`replica`.

    Attributes
    ----------
    path : Path
        The ``.tflite`` file.
    metadata : ModelMetadata
        The model's description (embedded in the ``.tflite``, or an older model's sidecar).
    classes : tuple of str
        Class names, in output order (empty for regression: a prediction's ``columns`` name its
        values). ``labels``, its old twin, still works with a DeprecationWarning.
    task : dsplug.task.Task
        What the outputs mean: softmax probabilities, independent probabilities, or values.
    sample_rate : int
        Sample rate in Hz the model expects.
    chunk_samples : int
        Samples in one input chunk.
    chunk_seconds : float
        Chunk length in seconds.
    hop_seconds : float
        Hop between chunks used for files (from the metadata).
    pad_mode : {"zero", "repeat"}
        How a chunk shorter than ``chunk_samples`` is filled.
    host_pad_mode : {"zero", "repeat"}
        How this runtime fills a short chunk before feeding it: ``zero`` for models that pad
        themselves (``metadata.pad_in_model``), as MediaPipe and the browser do.
    n_outputs : int
        Outputs per chunk (``k``).
    threads : int or None
        Threads asked of the interpreter (None: the runtime's default).
    """

    def __init__(self, *, path: Path, metadata: ModelMetadata, interpreter: Interpreter, threads: int | None) -> None:
        self.path = path
        self.metadata = metadata
        self.threads = threads
        self.classes: tuple[str, ...] = tuple(metadata.classes)
        self.task: Task = Task(metadata.task)
        self.sample_rate = metadata.sample_rate
        self.chunk_seconds = metadata.chunk_seconds
        self.hop_seconds = metadata.hop_seconds
        self.pad_mode: Literal["zero", "repeat"] = metadata.pad_mode
        self.host_pad_mode: Literal["zero", "repeat"] = metadata.host_pad_mode
        self._interpreter = interpreter
        self._input = interpreter.get_input_details()[0]
        self._output = interpreter.get_output_details()[0]
        self.chunk_samples = int(self._input["shape"][1])
        self.n_outputs = int(self._output["shape"][-1])

    @property
    def labels(self) -> tuple[str, ...]:
        """Deprecated: :attr:`classes` (this gave the same, or the value names of a regression model)."""
        import warnings

        warnings.warn("Model.labels is Model.classes now", DeprecationWarning, stacklevel=2)
        return tuple(self.metadata.labels)

    def __repr__(self) -> str:
        return (
            f"Model({str(self.path)!r}, task={self.task!r}, classes={list(self.classes)}, "
            f"chunk={self.chunk_seconds:g} s at {self.sample_rate} Hz)"
        )

    def replica(self) -> Model:
        """The same model in a new interpreter of its own, for another thread.

        A :class:`Model` is not thread-safe; replicas are: each has its own tensors, and LiteRT
        releases the GIL while it runs, so replicas in different threads run at once. A replica
        computes exactly what this model computes (same file, same interpreter threads).

        Returns
        -------
        Model
            Sharing :attr:`metadata` and :attr:`threads` with this one.

        Raises
        ------
        ExportError
            The file can no longer be loaded (it was changed or removed since).
        """
        interpreter = _open_interpreter(self.path, threads=self.threads)
        return Model(path=self.path, metadata=self.metadata, interpreter=interpreter, threads=self.threads)

    def predict_chunks(self, chunks: np.ndarray) -> np.ndarray:
        """Run the model on chunks, one invocation per chunk.

        Parameters
        ----------
        chunks : np.ndarray [shape=(n, chunk_samples)]
            Raw mono audio in [-1, 1] at :attr:`sample_rate`; ``n`` may be 0.

        Returns
        -------
        outputs : np.ndarray [shape=(n, n_outputs), dtype=float32]
            Probabilities (or values) per chunk. Integer (quantised) input and output tensors
            are quantised / dequantised with the tensors' scale and zero point.

        Raises
        ------
        AudioError
            If ``chunks`` has the wrong shape or holds non-finite samples.
        """
        array = np.asarray(chunks, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != self.chunk_samples:
            raise AudioError(
                f"chunks must have shape (n, {self.chunk_samples}) ({self.chunk_seconds:g} s at "
                f"{self.sample_rate} Hz), got {array.shape}; cut audio with dsplug.audio.chunk_signal"
            )
        if not np.isfinite(array).all():
            raise AudioError("chunks hold NaN or infinite samples; the audio is damaged")
        outputs = np.empty((array.shape[0], self.n_outputs), dtype=np.float32)
        for i, chunk in enumerate(array):
            self._interpreter.set_tensor(self._input["index"], _quantize(chunk[None, :], self._input))
            self._interpreter.invoke()
            outputs[i] = _dequantize(self._interpreter.get_tensor(self._output["index"])[0], self._output)
        return outputs


    def predict(
        self,
        audio: str | os.PathLike[str] | np.ndarray,
        *,
        sample_rate: int | None = None,
        hop_seconds: float | None = None,
        aggregate: Literal["mean", "vote"] = "mean",
    ) -> FilePrediction:
        """Chunk- and file-level predictions for one recording: a file, or samples in memory.

        Parameters
        ----------
        audio : path or np.ndarray [shape=(n,) or (n, channels)]
            An audio file (any format :func:`dsplug.audio.load_audio` decodes), or samples:
            float in [-1, 1] or integer PCM; channels are averaged to mono.
        sample_rate : int, optional
            The samples' rate in Hz: required for an array (resampled to :attr:`sample_rate`
            with soxr when it differs), not allowed with a file (its header says it).
        hop_seconds : float, optional
            Hop between chunks; default the model's (``metadata.hop_seconds``).
        aggregate : {"mean", "vote"}
            Chunk outputs to file outputs (see :func:`dsplug.runtime.predict_files`).

        Returns
        -------
        FilePrediction
            ``label`` and ``probabilities`` for the whole recording, ``chunk_labels`` and
            ``chunk_probabilities`` per chunk, with ``starts`` and ``ends`` in seconds.

        Raises
        ------
        AudioError
            A missing or undecodable file; an array without ``sample_rate``, or with invalid
            samples.
        """
        if isinstance(audio, (str, os.PathLike)):
            if sample_rate is not None:
                raise AudioError(
                    f"sample_rate={sample_rate!r} is only for arrays: a file's header gives its rate; "
                    f"call predict({os.fspath(audio)!r}) without it"
                )
            return predict_files(self, [audio], aggregate=aggregate, hop_seconds=hop_seconds)[0]
        if sample_rate is None:
            raise AudioError(
                f"predict() got an array of shape {np.shape(audio)} without its sample rate; pass "
                f"sample_rate=... (the model runs at {self.sample_rate} Hz and resamples other rates)"
            )
        return predict_signal(self, audio, sample_rate=sample_rate, hop_seconds=hop_seconds, aggregate=aggregate)

    def stream(
        self,
        blocks: Iterable[np.ndarray],
        *,
        sample_rate: int | None = None,
        hop_seconds: float | None = None,
        smoothing: int = 1,
    ) -> Iterator[StreamResult]:
        """Sliding-window decisions on a live stream of sample blocks (a generator).

        Parameters
        ----------
        blocks : iterable of np.ndarray [shape=(n,) or (n, channels)]
            Consecutive blocks of samples of any size (a sound card's buffers, a file read in
            pieces); float in [-1, 1] or integer PCM, channels averaged to mono.
        sample_rate : int, optional
            The blocks' rate in Hz; default :attr:`sample_rate`. Another rate is resampled
            block by block with soxr's streaming resampler.
        hop_seconds : float, optional
            Seconds of audio between two decisions; default a quarter chunk.
        smoothing : int
            Windows whose outputs are averaged per decision.

        Yields
        ------
        StreamResult
            One per window as soon as its last sample arrived: ``time`` (end of the window in
            seconds), ``label``, ``confidence``, ``probabilities``, ``latency_ms``. A stream
            shorter than one window gives one decision when it ends (zero-padded).

        Raises
        ------
        AudioError
            Invalid hop, smoothing or rate (at the call, before a block is read), or invalid
            samples in a block.
        """
        streamer = Streamer(self, hop_seconds=hop_seconds, smoothing=smoothing)
        rate = self.sample_rate if sample_rate is None else sample_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise AudioError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
        return self._stream(streamer, blocks, rate=int(rate))

    def _stream(self, streamer: Streamer, blocks: Iterable[np.ndarray], *, rate: int) -> Iterator[StreamResult]:
        resampler = None
        if rate != self.sample_rate:
            import soxr

            resampler = soxr.ResampleStream(rate, self.sample_rate, 1, dtype="float32", quality="HQ")
        for number, block in enumerate(blocks):
            if np.size(block) == 0:
                continue
            mono = prepare_signal(block, rate=self.sample_rate, sample_rate=self.sample_rate, source=f"block {number}")
            if resampler is not None:
                mono = np.clip(resampler.resample_chunk(mono), -1.0, 1.0).astype(np.float32, copy=False)
            yield from streamer.push(mono)
        if resampler is not None:  # the resampler's delayed tail
            yield from streamer.push(np.clip(resampler.resample_chunk(np.zeros(0, np.float32), last=True), -1.0, 1.0))
        yield from streamer.finish()  # a stream shorter than one window: one decision, zero-padded


def _quantize(values: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """Float values -> the input tensor's dtype (``q = round(x / scale) + zero_point`` if integer)."""
    dtype = np.dtype(details["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return values.astype(dtype, copy=False)
    scale, zero_point = details["quantization"]  # scale > 0: checked by load_model
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    """The output tensor's values -> float32 (``(q - zero_point) * scale`` if integer)."""
    if not np.issubdtype(np.dtype(details["dtype"]), np.integer):
        return values.astype(np.float32)
    scale, zero_point = details["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """The ``.tflite`` file of ``path`` (a file, or a run directory holding ``model.tflite``).

    Raises
    ------
    ExportError
        The file does not exist, or the folder holds no ``model.tflite``.
    """
    model_path = Path(path)
    if model_path.is_dir():
        inside = model_path / "model.tflite"
        if not inside.is_file():
            raise ExportError(
                f"{model_path} is a folder without model.tflite; pass the .tflite file, or run "
                f"`dsplug export {model_path}` to write it"
            )
        return inside
    if not model_path.is_file():
        raise ExportError(
            f"model file {str(model_path)!r} does not exist; pass the model.tflite of a run "
            "directory (written by `dsplug run` or `dsplug export RUN_DIR`)"
        )
    return model_path


def _check_flatbuffer(model_path: Path) -> bytes:
    """The model's bytes; a file without the TFLite identifier ``TFL3`` (bytes 4-8) is refused."""
    try:
        content = model_path.read_bytes()
    except OSError as err:
        raise ExportError(f"cannot read model file {model_path}: {err}") from err
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ExportError(
            f"{model_path} is not a TFLite model (no 'TFL3' identifier at bytes 4-8); pass the "
            "model.tflite written by `dsplug run` or `dsplug export RUN_DIR`"
        )
    return content


def read_model_metadata(model_path: Path, content: bytes) -> ModelMetadata:
    """The description of a model: its embedded metadata, checked against a sidecar if there is one.

    A model exported by an older dsplug has no embedded metadata: its sidecar ``model.json``
    (same folder, same stem) is read instead.

    Raises
    ------
    ExportError
        No metadata inside and no sidecar; invalid metadata; a sidecar that disagrees with the
        metadata inside (recipe hash, task, classes, rate, chunk, shapes).
    """
    try:
        embedded: ModelMetadata | None = ModelMetadata.from_tflite(content, source=str(model_path))
    except MetadataMissing:
        embedded = None
    meta_path = model_path.with_suffix(".json")
    if not meta_path.is_file():
        if embedded is None:
            raise ExportError(
                f"{model_path} has no TFLite Model Metadata inside and no metadata file {meta_path} next "
                "to it (an export of an older dsplug keeps it there, with the same name and suffix "
                ".json); re-export the run with `dsplug export RUN_DIR`, which embeds the metadata"
            )
        return embedded
    sidecar = ModelMetadata.from_json_file(meta_path)
    if embedded is None:
        logger.debug("%s has no embedded metadata; using %s", model_path, meta_path)
        return sidecar
    embedded.check_same(sidecar, model=str(model_path), sidecar_path=str(meta_path))
    return embedded


def _open_interpreter(model_path: Path, *, threads: int | None) -> Interpreter:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as err:
        raise ExportError(
            f"{model_path}: the LiteRT interpreter cannot load the model ({str(err).strip()[:300]}); "
            "the file is damaged or was written by a newer converter: re-export it with "
            "`dsplug export RUN_DIR`"
        ) from err
    return interpreter


def _check_tensors(model_path: Path, meta: ModelMetadata, interpreter: Interpreter) -> None:
    """One input and one output tensor, shaped as the metadata says; integer ones quantised."""
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportError(
            f"{model_path}: expected one input and one output tensor, found {len(inputs)} and "
            f"{len(outputs)}; this is not a model exported by dsplug"
        )
    meta.check_tensors(input_shape=inputs[0]["shape"], output_shape=outputs[0]["shape"], model=str(model_path))
    for what, details in (("input", inputs[0]), ("output", outputs[0])):
        if np.issubdtype(np.dtype(details["dtype"]), np.integer) and not details["quantization"][0]:
            raise ExportError(
                f"{model_path}: the {what} tensor has integer type {np.dtype(details['dtype'])} but no "
                "quantisation scale, so its values cannot be mapped to audio / probabilities; "
                "re-export the model with `dsplug export RUN_DIR`"
            )


#: Interpreter threads allowed per CPU core: more only slows inference, and tens of thousands
#: crash LiteRT's thread pool (SIGSEGV).
MAX_THREADS_PER_CORE = 4


def load_model(path: str | os.PathLike[str], *, threads: int | None = None) -> Model:
    """Load an exported model and its metadata.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tflite`` exported by dsplug (it carries its metadata; a ``model.json`` beside it
        must agree with it), or a run directory holding ``model.tflite``.
    threads : int, optional
        CPU threads for the interpreter, 1 to 4 per core; None leaves the runtime's default (one thread
        with ai-edge-litert 2.x).

    Returns
    -------
    Model

    Raises
    ------
    ExportError
        The file is missing or not a TFLite flatbuffer; the metadata is missing, unreadable,
        does not match the model, or a sidecar contradicts it.
    """
    model_path = resolve_model_path(path)
    cores = os.cpu_count() or 1
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS_PER_CORE * cores):
        raise ExportError(
            f"threads must be a whole number from 1 to {MAX_THREADS_PER_CORE * cores} ({MAX_THREADS_PER_CORE} per core of "
            f"this machine's {cores}) or None, got {threads!r}"
        )
    meta = read_model_metadata(model_path, _check_flatbuffer(model_path))
    interpreter = _open_interpreter(model_path, threads=threads)
    _check_tensors(model_path, meta, interpreter)
    model = Model(path=model_path, metadata=meta, interpreter=interpreter, threads=threads)
    logger.debug("loaded %r", model)
    return model
