"""Standard TFLite Model Metadata in a ``.tflite``: write it and read it back, TensorFlow-free.

What is written is what MediaPipe Tasks' ``AudioClassifier`` (Python, Android, iOS, web) needs,
and what TFLite Support's and MediaPipe's ``MetadataPopulator`` write:

* a ``ModelMetadata`` flatbuffer (file identifier ``M001``, the schema vendored in
  :mod:`dsplug.artifacts.vendor.metadata_schema_py_generated`) in a new model buffer, referenced
  by a ``Metadata`` entry named ``TFLITE_METADATA``: model name, description, version, author;
  the input tensor described as audio (``AudioProperties``: sample rate, channels); the output
  tensor with the class labels as its associated file ``labels.txt``
  (``TENSOR_AXIS_LABELS``); small key/values as a ``CustomMetadata`` entry;
* the associated files (``labels.txt`` and any others, e.g. dsplug's model card
  ``dsplug.json``) appended to the flatbuffer as an uncompressed zip archive: a ``.tflite`` with
  metadata is also a zip file, and LiteRT ignores the archive.

No maintained writer of the schema installs beside TensorFlow 2.21 (mediapipe's
``metadata_writers`` fail to import in every current wheel, and tflite-support needs
protobuf < 4), so the metadata is built with the schema's generated code and the model is
repacked with the TFLite schema shipped in ``ai-edge-litert``; dsplug's tests load the result
with MediaPipe's own ``AudioClassifier``.

Examples
--------
>>> model = open("model.tflite", "rb").read()  # doctest: +SKIP
>>> tagged = write_audio_classifier_metadata(model, labels=["yes", "no"], sample_rate=16000,
...                                          name="kws", description="keyword spotter", version="1")  # doctest: +SKIP
>>> read_metadata(tagged).labels  # doctest: +SKIP
['yes', 'no']
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import struct
import json
import logging
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import flatbuffers
from ai_edge_litert import schema_py_generated as tfl

from dsplug.artifacts.vendor import metadata_schema_py_generated as md
from dsplug.errors import ExportError, MetadataMissing

logger = logging.getLogger(__name__)

__all__ = [
    "LABELS_FILE",
    "TfliteMetadata",
    "check_audio_classifier",
    "has_metadata",
    "packed_files",
    "weights_digest",
    "read_metadata",
    "write_audio_classifier_metadata",
]

#: Name of the model's ``Metadata`` entry that points to the metadata buffer (the standard one).
METADATA_NAME = "TFLITE_METADATA"
#: The packed label file of the output tensor.
LABELS_FILE = "labels.txt"
#: Name of the subgraph's ``CustomMetadata`` entry written from ``custom``.
CUSTOM_NAME = "dsplug"

_MODEL_IDENTIFIER = b"TFL3"
_METADATA_IDENTIFIER = b"M001"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry times: the same model gives the same bytes
# Minimum metadata-parser version of each schema feature written here (metadata_version.cc's
# GetMinimumMetadataParserVersion): AudioProperties 1.3.0, CustomMetadata 1.5.0.
_AUDIO_PARSER_VERSION = "1.3.0"
_CUSTOM_PARSER_VERSION = "1.5.0"
_FIX = "re-export the model with `dsplug export RUN_DIR`"


@dataclasses.dataclass(frozen=True)
class TfliteMetadata:
    """The TFLite Model Metadata of a model, as read by :func:`read_metadata`.

    Attributes
    ----------
    name, description, version, author, min_parser_version : str or None
        ``ModelMetadata`` fields.
    sample_rate, channels : int or None
        The input tensor's ``AudioProperties`` (None if the input is not described as audio).
    labels : list of str or None
        The output tensor's label file (``TENSOR_AXIS_LABELS``), one label per output.
    custom : dict
        The subgraph's ``CustomMetadata`` entries: name -> decoded JSON (raw text if not JSON).
    packed_files : dict of str to bytes
        The associated files packed after the flatbuffer, by name.
    input_shape, output_shape : list of int
        Shapes of the model's (first) input and output tensor.
    input_type, output_type : str
        Their element types, e.g. ``"FLOAT32"`` or ``"INT8"``.
    """

    name: str | None
    description: str | None
    version: str | None
    author: str | None
    min_parser_version: str | None
    sample_rate: int | None
    channels: int | None
    labels: list[str] | None
    custom: dict[str, Any]
    packed_files: dict[str, bytes]
    input_shape: list[int]
    output_shape: list[int]
    input_type: str
    output_type: str


def _text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _type_name(code: int) -> str:
    names = {v: k for k, v in vars(tfl.TensorType).items() if not k.startswith("_")}
    return names.get(code, str(code))


def _shape(tensor: Any) -> list[int]:
    return [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []


def _root(model: bytes, *, source: str) -> Any:
    if len(model) < 8 or not tfl.Model.ModelBufferHasIdentifier(model, 0):
        raise ExportError(f"{source} is not a TFLite model (no 'TFL3' identifier at bytes 4-8); {_FIX}")
    return tfl.Model.GetRootAs(model, 0)


@contextlib.contextmanager
def _damaged(source: str) -> Iterator[None]:
    """Turn a flatbuffer read past its end (a truncated or damaged file) into an ExportError."""
    try:
        yield
    except (IndexError, struct.error, ValueError, TypeError, UnicodeDecodeError) as err:
        raise ExportError(f"{source} is damaged: its flatbuffer cannot be read ({type(err).__name__}: {err}); {_FIX}") from err


def check_audio_classifier(model: bytes, *, n_labels: int, channels: int = 1, source: str = "the model") -> None:
    """Refuse a model that MediaPipe's ``AudioClassifier`` (and so the metadata) cannot describe.

    The requirements are MediaPipe's: one subgraph, one float32 input of shape ``(1, N)`` or
    ``(N,)`` (raw audio; integer input is refused by MediaPipe), one output with ``n_labels``
    scores (float32, or quantised with a scale).

    Parameters
    ----------
    model : bytes
        The ``.tflite`` flatbuffer.
    n_labels : int
        Number of class labels that will describe the output.
    channels : int
        Audio channels interleaved in the input.
    source : str
        The model's name for messages.

    Raises
    ------
    ExportError
        A requirement is not met (the value found and the fix are named).
    """
    with _damaged(source):
        _check_audio_classifier(_root(model, source=source), n_labels=n_labels, channels=channels, source=source)


def _check_audio_classifier(root: Any, *, n_labels: int, channels: int, source: str) -> None:
    if root.SubgraphsLength() < 1:
        raise ExportError(f"{source} has no subgraph; it is not a model (export it again)")
    graph = root.Subgraphs(0)  # the main graph; more subgraphs are bodies of control flow (LSTM while loops)
    if graph.InputsLength() != 1 or graph.OutputsLength() != 1:
        raise ExportError(
            f"{source} has {graph.InputsLength()} input(s) and {graph.OutputsLength()} output(s); an audio "
            "classifier takes one audio tensor and gives one tensor of scores"
        )
    inp, out = graph.Tensors(graph.Inputs(0)), graph.Tensors(graph.Outputs(0))
    shape = _shape(inp)
    if inp.Type() != tfl.TensorType.FLOAT32:
        raise ExportError(
            f"{source}: the input tensor is {_type_name(inp.Type())}, but runtimes that read the model's "
            "metadata (MediaPipe AudioClassifier) take float32 audio; export without integer input "
            "(dsplug's int8 and qat models keep float32 input and output)"
        )
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] != 1) or shape[-1] % channels:
        raise ExportError(
            f"{source}: the input shape {shape} is not (1, samples) or (samples,) with a multiple of "
            f"{channels} channel(s); MediaPipe AudioClassifier takes only 1-D or (1, N) audio"
        )
    out_shape = _shape(out)
    if not out_shape or out_shape[-1] != n_labels:
        raise ExportError(
            f"{source}: the output shape {out_shape} does not hold {n_labels} class scores; pass one label "
            "per output"
        )
    if out.Type() != tfl.TensorType.FLOAT32 and not (out.Quantization() and out.Quantization().ScaleLength()):
        raise ExportError(
            f"{source}: the output tensor is {_type_name(out.Type())} without a quantisation scale; "
            "its scores cannot be read as probabilities"
        )


def _associated_file(name: str, description: str, file_type: int) -> Any:
    entry = md.AssociatedFileT()
    entry.name, entry.description, entry.type = name, description, file_type
    return entry


def _metadata_buffer(
    *, labels: Sequence[str], sample_rate: int, channels: int, name: str, description: str, version: str,
    author: str | None, custom: Mapping[str, Any] | None, files: Mapping[str, str], scores: bool,
) -> bytes:
    """The ``ModelMetadata`` flatbuffer (identifier M001) of a float-in, scores-out audio classifier."""
    audio = md.AudioPropertiesT()
    audio.sampleRate, audio.channels = sample_rate, channels
    in_content = md.ContentT()
    in_content.contentPropertiesType, in_content.contentProperties = md.ContentProperties.AudioProperties, audio
    audio_in = md.TensorMetadataT()
    audio_in.name = "audio"
    audio_in.description = (
        f"{channels}-channel float32 audio in [-1, 1] at {sample_rate} Hz, one window per inference "
        "(zero-padded when shorter)."
    )
    audio_in.content, audio_in.stats = in_content, md.StatsT()

    out_content = md.ContentT()
    out_content.contentPropertiesType = md.ContentProperties.FeatureProperties
    out_content.contentProperties = md.FeaturePropertiesT()
    stats = md.StatsT()
    if scores:
        stats.max, stats.min = [1.0], [0.0]
    output = md.TensorMetadataT()
    output.name = "probability" if scores else "value"
    what = "Probabilities of the classes" if scores else "Values of the outputs"
    output.description = f"{what}, in the order of {LABELS_FILE}."
    output.content, output.stats = out_content, stats
    output.associatedFiles = [
        _associated_file(LABELS_FILE, "Class names, one per line, in output order.", md.AssociatedFileType.TENSOR_AXIS_LABELS)
    ]

    graph = md.SubGraphMetadataT()
    graph.name, graph.description = name, description
    graph.inputTensorMetadata, graph.outputTensorMetadata = [audio_in], [output]
    if custom:
        entry = md.CustomMetadataT()
        entry.name = CUSTOM_NAME
        entry.data = list(json.dumps(dict(custom), sort_keys=True).encode("utf-8"))
        graph.customMetadata = [entry]

    meta = md.ModelMetadataT()
    meta.name, meta.description, meta.version, meta.author = name, description, version, author
    meta.subgraphMetadata = [graph]
    meta.associatedFiles = [
        _associated_file(file_name, text, md.AssociatedFileType.DESCRIPTIONS) for file_name, text in files.items()
    ] or None
    meta.minParserVersion = _CUSTOM_PARSER_VERSION if custom else _AUDIO_PARSER_VERSION
    builder = flatbuffers.Builder(1024)
    builder.Finish(meta.Pack(builder), _METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _flatbuffer_with(model: bytes, metadata: bytes) -> bytes:
    """``model``'s flatbuffer with ``metadata`` as its TFLITE_METADATA buffer (an old one replaced)."""
    model_t = tfl.ModelT.InitFromObj(tfl.Model.GetRootAs(model, 0))
    if any(getattr(buffer, "offset", 0) > 1 for buffer in model_t.buffers or []):
        raise ExportError("models larger than 2 GB (weights in external buffers) cannot carry metadata")
    buffer = tfl.BufferT()
    buffer.data = list(metadata)
    model_t.buffers = list(model_t.buffers or [])
    model_t.metadata = list(model_t.metadata or [])
    existing = [entry for entry in model_t.metadata if _text(entry.name) == METADATA_NAME]
    if existing:  # rewriting: replace the buffer in place, leave no orphan behind
        model_t.buffers[existing[0].buffer] = buffer
    else:
        model_t.buffers.append(buffer)
        entry = tfl.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(model_t.buffers) - 1
        model_t.metadata.append(entry)
    builder = flatbuffers.Builder(len(model) + len(metadata) + 4096)
    builder.Finish(model_t.Pack(builder), _MODEL_IDENTIFIER)
    return bytes(builder.Output())


def write_audio_classifier_metadata(
    model: bytes,
    *,
    labels: Sequence[str],
    sample_rate: int,
    name: str,
    description: str,
    version: str,
    channels: int = 1,
    author: str | None = None,
    custom: Mapping[str, Any] | None = None,
    files: Mapping[str, tuple[str, bytes]] | None = None,
    scores: bool = True,
    source: str = "the model",
) -> bytes:
    """Return ``model`` with audio-classifier metadata and its packed files (old ones replaced).

    The model's graph and weights are unchanged (its outputs stay bit-identical); only the
    metadata buffer and the zip archive after the flatbuffer are new.

    Parameters
    ----------
    model : bytes
        A ``.tflite`` flatbuffer, with or without metadata (see :func:`check_audio_classifier`).
    labels : sequence of str
        Class names in output order (packed as ``labels.txt``); non-empty, one line each.
    sample_rate : int
        Hz, written to the input's ``AudioProperties``: MediaPipe resamples audio to this rate.
    name, description, version : str
        ``ModelMetadata`` fields shown by metadata displayers.
    channels : int
        Audio channels of the input.
    author : str, optional
        ``ModelMetadata.author``.
    custom : mapping, optional
        Small JSON-serialisable key/values, stored as the subgraph's ``CustomMetadata`` entry
        ``"dsplug"`` (raises the minimum parser version to 1.5.0; MediaPipe accepts it).
    files : mapping of str to (str, bytes), optional
        More files to pack, ``name -> (description, content)``, listed as model-level
        associated files (type ``DESCRIPTIONS``).
    scores : bool
        The outputs are probabilities in [0, 1] (False: regression values).
    source : str
        The model's name for messages.

    Returns
    -------
    bytes
        The model with metadata: a valid ``.tflite`` and a zip archive of the packed files.

    Raises
    ------
    ExportError
        The model is not a single-input float32 audio classifier with ``len(labels)`` outputs,
        or a label is empty or spans lines, or ``sample_rate``/``channels`` is not positive.
    """
    labels = [str(label) for label in labels]
    bad = [label for label in labels if not label.strip() or "\n" in label or "\r" in label]
    if bad or not labels:
        raise ExportError(f"class labels must be non-empty single-line names, got {labels!r}; rename the classes in the manifest")
    for what, value in (("sample_rate", sample_rate), ("channels", channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ExportError(f"{what} must be a positive whole number, got {value!r}")
    extra = dict(files or {})
    if LABELS_FILE in extra:
        raise ExportError(f"{LABELS_FILE} is written from labels; do not pass it in files")
    check_audio_classifier(model, n_labels=len(labels), channels=channels, source=source)
    metadata = _metadata_buffer(
        labels=labels, sample_rate=sample_rate, channels=channels, name=name, description=description,
        version=version, author=author, custom=custom, files={k: v[0] for k, v in extra.items()}, scores=scores,
    )
    out = io.BytesIO(_flatbuffer_with(bytes(model), metadata))
    contents = {LABELS_FILE: ("\n".join(labels) + "\n").encode("utf-8"), **{k: v[1] for k, v in extra.items()}}
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for file_name, data in contents.items():
            info = zipfile.ZipInfo(file_name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED  # MediaPipe reads packed files uncompressed
            archive.writestr(info, data)
    return out.getvalue()


#: Bounds on the files packed in a model, checked before any is read (a 6 MB model may pack a
#: member that inflates to gigabytes).
MAX_PACKED_FILES = 16
MAX_PACKED_BYTES = 4_000_000


def packed_files(model: bytes) -> dict[str, bytes]:
    """The files packed after the flatbuffer, by name (``{}`` for a model without any).

    Raises
    ------
    ExportError
        The archive is damaged.
    """
    stream = io.BytesIO(model)
    if not zipfile.is_zipfile(stream):
        return {}
    try:
        with zipfile.ZipFile(stream) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_PACKED_FILES or sum(info.file_size for info in infos) > MAX_PACKED_BYTES:
                raise ExportError(
                    f"the model packs {len(infos)} files of {sum(i.file_size for i in infos):,} bytes; a dsplug model packs "
                    f"at most {MAX_PACKED_FILES} files of {MAX_PACKED_BYTES:,} bytes (labels and its model card): "
                    f"it is not a dsplug model or it was altered; {_FIX}"
                )
            return {info.filename: archive.read(info) for info in infos}
    except (zipfile.BadZipFile, OSError, KeyError, EOFError, zlib.error, NotImplementedError) as err:
        raise ExportError(f"the files packed in the model are damaged ({err}); {_FIX}") from err


def weights_digest(model: bytes, *, source: str = "the model") -> str:
    """sha256 of what a model computes: its graph (operator codes, tensors, operators) and every
    buffer except the metadata's, so adding or replacing metadata leaves it unchanged.

    Raises
    ------
    ExportError
        Not a TFLite model, or a flatbuffer that cannot be read.
    """
    import hashlib

    digest = hashlib.sha256()
    with _damaged(source):
        root = _root(model, source=source)
        skip = {int(root.Metadata(i).Buffer()) for i in range(root.MetadataLength())}
        for i in range(root.OperatorCodesLength()):
            code = root.OperatorCodes(i)
            digest.update(struct.pack("<iii", code.BuiltinCode(), code.DeprecatedBuiltinCode(), code.Version()))
        for g in range(root.SubgraphsLength()):
            graph = root.Subgraphs(g)
            for t in range(graph.TensorsLength()):
                tensor = graph.Tensors(t)
                digest.update(struct.pack("<ii", tensor.Type(), tensor.Buffer()) + bytes(_shape(tensor).__repr__(), "ascii"))
            for o in range(graph.OperatorsLength()):
                op = graph.Operators(o)
                digest.update(struct.pack("<I", op.OpcodeIndex()))
                digest.update(op.InputsAsNumpy().tobytes() if op.InputsLength() else b"")
                digest.update(op.OutputsAsNumpy().tobytes() if op.OutputsLength() else b"")
        for b in range(root.BuffersLength()):
            if b in skip:
                continue
            data = root.Buffers(b).DataAsNumpy()
            digest.update(struct.pack("<I", b) + (data.tobytes() if hasattr(data, "tobytes") else b""))
    return digest.hexdigest()[:32]


def _metadata_index(root: Any) -> int | None:
    for i in range(root.MetadataLength()):
        if _text(root.Metadata(i).Name()) == METADATA_NAME:
            return int(root.Metadata(i).Buffer())
    return None


def has_metadata(model: bytes) -> bool:
    """Whether ``model`` (a ``.tflite`` flatbuffer) has a ``TFLITE_METADATA`` entry."""
    with _damaged("the model"):
        return _metadata_index(_root(model, source="the model")) is not None


def _custom(graph: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for entry in graph.customMetadata or []:
        raw = bytes(entry.data if entry.data is not None else b"").decode("utf-8", errors="replace")
        try:
            found[_text(entry.name)] = json.loads(raw)
        except json.JSONDecodeError:
            found[_text(entry.name)] = raw
    return found


def read_metadata(model: bytes, *, source: str = "the model") -> TfliteMetadata:
    """Read a model's TFLite Model Metadata and packed files.

    Parameters
    ----------
    model : bytes
        A ``.tflite`` flatbuffer.
    source : str
        The model's name for messages.

    Returns
    -------
    TfliteMetadata

    Raises
    ------
    MetadataMissing
        The model has no ``TFLITE_METADATA`` entry.
    ExportError
        Not a TFLite model, or its metadata buffer is not a ``ModelMetadata`` flatbuffer.
    """
    with _damaged(source):
        return _read(model, _root(model, source=source), source=source)


def _read(model: bytes, root: Any, *, source: str) -> TfliteMetadata:
    index = _metadata_index(root)
    if index is None:
        raise MetadataMissing(f"{source} has no TFLite Model Metadata (no {METADATA_NAME} entry); {_FIX}")
    data = root.Buffers(index).DataAsNumpy()
    data = data.tobytes() if hasattr(data, "tobytes") else b""
    if not md.ModelMetadata.ModelMetadataBufferHasIdentifier(data, 0):
        raise ExportError(f"{source}: the {METADATA_NAME} buffer is not a ModelMetadata flatbuffer ('M001'); {_FIX}")
    meta = md.ModelMetadataT.InitFromObj(md.ModelMetadata.GetRootAs(data, 0))
    graph = (meta.subgraphMetadata or [md.SubGraphMetadataT()])[0]
    audio_in = (graph.inputTensorMetadata or [md.TensorMetadataT()])[0]
    props = audio_in.content.contentProperties if audio_in.content is not None else None
    audio = props if isinstance(props, md.AudioPropertiesT) else None
    files = packed_files(model)
    outputs = graph.outputTensorMetadata or []
    label_file = next(
        (_text(f.name) for f in (outputs[0].associatedFiles or [] if outputs else [])
         if f.type == md.AssociatedFileType.TENSOR_AXIS_LABELS),
        None,
    )
    labels = files[label_file].decode("utf-8").splitlines() if label_file in files else None
    tensors = root.Subgraphs(0)
    inp, out = tensors.Tensors(tensors.Inputs(0)), tensors.Tensors(tensors.Outputs(0))
    return TfliteMetadata(
        name=_text(meta.name), description=_text(meta.description), version=_text(meta.version),
        author=_text(meta.author), min_parser_version=_text(meta.minParserVersion),
        sample_rate=int(audio.sampleRate) if audio is not None else None,
        channels=int(audio.channels) if audio is not None else None,
        labels=labels, custom=_custom(graph), packed_files=files,
        input_shape=_shape(inp), output_shape=_shape(out),
        input_type=_type_name(inp.Type()), output_type=_type_name(out.Type()),
    )
