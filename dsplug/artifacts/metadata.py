"""The exported model's description (:class:`ModelMetadata`) and the predictions CSV format: one definition each, TensorFlow-free.

A :class:`ModelMetadata` travels inside the ``.tflite`` (:meth:`ModelMetadata.to_tflite`, read
back by :meth:`ModelMetadata.from_tflite`) as standard TFLite Model Metadata plus the packed
model card ``dsplug.json``; the ``model.json`` sidecar beside a model is the same card.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dsplug.version import __version__
from dsplug.artifacts import tflite_metadata
from dsplug.artifacts.files import PathLike, read_json, to_jsonable
from dsplug.errors import DataError, ExportError
from dsplug.task import Task

logger = logging.getLogger(__name__)

Quantize = Literal["none", "dynamic", "float16", "int8", "qat"]

#: The model card packed inside an exported ``.tflite`` (the sidecar's content).
CARD_FILE = "dsplug.json"
#: Fields also stored as the metadata's custom key/values (shown by any metadata displayer).
CUSTOM_FIELDS = (
    "format", "dsplug_version", "recipe_hash", "task", "chunk_seconds", "hop_seconds", "pad_mode", "pad_in_model", "quantize", "backbone",
)
#: The shortest hop a model may declare, in samples and as a share of its chunk: a hop of one
#: sample turns a 10 s file into 160,000 windows (gigabytes).
MIN_HOP_SAMPLES = 16
MAX_WINDOWS_PER_CHUNK = 64
#: Fields a sidecar must share with the metadata inside its model.
SAME_FIELDS = ("recipe_hash", "task", "classes", "sample_rate", "chunk_seconds", "input", "output")


# --------------------------------------------------------------------------------------------
# the exported model's description
# --------------------------------------------------------------------------------------------


class TensorInfo(BaseModel):
    """Shape and type of the model's input tensor."""

    model_config = ConfigDict(extra="ignore")

    name: str = "audio"
    shape: list[int] = Field(min_length=2, max_length=2)
    dtype: Literal["float32"] = "float32"


class OutputInfo(BaseModel):
    """Shape and meaning of the model's output tensor."""

    model_config = ConfigDict(extra="ignore")

    shape: list[int] = Field(min_length=2, max_length=2)
    meaning: Literal["probabilities", "values"] = "probabilities"


class ModelMetadata(BaseModel):
    """The description of an exported model: one definition for the writer and the runtime.

    The model takes one chunk of mono audio, float32 in [-1, 1], shape ``(1, samples)`` with
    ``samples = round(chunk_seconds * sample_rate)``, and gives ``(1, k)`` outputs: class
    probabilities (softmax for ``classification``, independent sigmoids for ``multilabel``) or
    regression values.

    Attributes
    ----------
    name, description : str
        Human-readable model name (the recipe's ``name``) and one-line description.
    dsplug_version : str
        The dsplug version that exported the model.
    recipe_hash : str
        sha256 prefix of the resolved recipe the model was trained from.
    task : {"classification", "multilabel", "regression"}
    classes : list of str
        Output names in order (may be empty for regression).
    sample_rate : int
        Hz.
    chunk_seconds, hop_seconds : float
        Chunk length, and the hop between chunks used for files and streams (seconds).
    pad_mode : {"zero", "repeat"}
        How a chunk shorter than the input is filled.
    pad_in_model : bool
        The model fills short chunks itself: hosts feed them zero-padded (MediaPipe's and the
        browser's way) and a ``repeat`` model tiles the padding in its first layer. False for
        models exported before this field existed, which expect the host to pad as ``pad_mode`` says.
    backbone : str
        The backbone plugin's name.
    quantize : {"none", "dynamic", "float16", "int8", "qat"}
    pruning, qat : dict or None
        Pruning / quantization-aware-training summaries of the model, if any.
    float_layers : list of str or None
        int8 models: the classifier layers that compute in float32.
    weights_sha256 : str
        :func:`~dsplug.artifacts.tflite_metadata.weights_digest` of the exported model (its graph
        and weights), checked when the model is read: a model altered after export (a flipped
        bit) is refused. Empty in sidecars and in models exported before it existed.
    """

    model_config = ConfigDict(extra="ignore")

    format: Literal["dsplug-tflite"] = "dsplug-tflite"
    name: str = "dsplug model"
    description: str = ""
    dsplug_version: str = __version__
    recipe_hash: str = ""
    task: Task
    classes: list[str]
    sample_rate: int = Field(gt=0)
    chunk_seconds: float = Field(gt=0)
    hop_seconds: float = Field(gt=0)
    pad_mode: Literal["zero", "repeat"] = "zero"
    pad_in_model: bool = False
    input: TensorInfo
    output: OutputInfo
    backbone: str = ""
    quantize: Quantize = "none"
    pruning: dict[str, Any] | None = None
    qat: dict[str, Any] | None = None
    float_layers: list[str] | None = None
    weights_sha256: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ModelMetadata:
        expected = round(self.chunk_seconds * self.sample_rate)
        if self.input.shape != [1, expected]:
            raise ValueError(
                f"input shape {self.input.shape} does not hold chunk_seconds={self.chunk_seconds} at "
                f"{self.sample_rate} Hz ([1, {expected}])"
            )
        if self.task.has_classes and self.output.shape[-1] != len(self.classes):
            raise ValueError(f"{self.output.shape[-1]} outputs but {len(self.classes)} classes")
        repeated = sorted({name for name in self.classes if self.classes.count(name) > 1})
        if repeated:
            raise ValueError(f"class names repeated: {', '.join(map(repr, repeated))}")
        if self.hop_seconds * self.sample_rate < MIN_HOP_SAMPLES or self.hop_seconds < self.chunk_seconds / MAX_WINDOWS_PER_CHUNK:
            raise ValueError(
                f"hop_seconds={self.hop_seconds:g} is too short: at least {MIN_HOP_SAMPLES} samples and 1/{MAX_WINDOWS_PER_CHUNK} "
                f"of the chunk ({self.chunk_seconds:g} s), or a file becomes millions of windows"
            )
        return self

    @property
    def samples(self) -> int:
        """Samples in one input chunk."""
        return int(self.input.shape[1])

    @property
    def host_pad_mode(self) -> Literal["zero", "repeat"]:
        """How a host fills a chunk shorter than the input before feeding it: ``zero`` when the
        model pads itself (every model dsplug exports now), else ``pad_mode``."""
        return "zero" if self.pad_in_model else self.pad_mode

    @property
    def n_outputs(self) -> int:
        """Outputs per chunk."""
        return int(self.output.shape[-1])

    @classmethod
    def for_model(
        cls,
        *,
        name: str,
        task: Task,
        classes: Sequence[str],
        sample_rate: int,
        chunk_seconds: float,
        hop_seconds: float | None,
        pad_mode: Literal["zero", "repeat"],
        backbone: str,
        recipe_hash: str,
        quantize: Quantize = "none",
        pruning: Mapping[str, Any] | None = None,
        qat: Mapping[str, Any] | None = None,
    ) -> ModelMetadata:
        """The metadata of a model trained from a recipe (shapes derived from the audio settings)."""
        samples = round(chunk_seconds * sample_rate)
        task = Task(task)
        return cls(
            name=name,
            description=(
                f"dsplug {__version__}: {task.verb} {chunk_seconds:g} s chunks of mono {sample_rate} Hz audio"
                + (f" into {', '.join(classes)}" if task.has_classes else "")
                + f" ({backbone}, recipe {recipe_hash})"
            ),
            recipe_hash=recipe_hash,
            task=task,
            classes=list(classes),
            sample_rate=sample_rate,
            chunk_seconds=chunk_seconds,
            hop_seconds=hop_seconds or chunk_seconds,
            pad_mode=pad_mode,
            pad_in_model=True,
            input=TensorInfo(shape=[1, samples]),
            output=OutputInfo(
                shape=[1, max(len(classes), 1)],
                meaning=task.output_meaning,
            ),
            backbone=backbone,
            quantize=quantize,
            pruning=dict(pruning) if pruning is not None else None,
            qat=dict(qat) if qat is not None else None,
        )

    @classmethod
    def parse(cls, document: Any, *, source: str) -> ModelMetadata:
        """Validate metadata read from ``source`` (a file name, for messages).

        Raises
        ------
        ExportError
            Not dsplug metadata, or a field is missing or invalid (each problem is named).
        """
        if not isinstance(document, dict) or document.get("format") != "dsplug-tflite":
            got = document.get("format") if isinstance(document, dict) else type(document).__name__
            raise ExportError(
                f"{source}: not dsplug model metadata (format {got!r}, expected 'dsplug-tflite'); "
                "re-export the model with `dsplug export RUN_DIR`"
            )
        try:
            return cls.model_validate(document)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'metadata'}: {e['msg']}" for e in err.errors()
            )
            raise ExportError(
                f"{source}: invalid model metadata: {problems}; re-export the model with "
                "`dsplug export RUN_DIR`"
            ) from err

    @classmethod
    def from_json_file(cls, path: PathLike) -> ModelMetadata:
        """Read a ``model.json`` sidecar.

        Raises
        ------
        ExportError
            The file is missing, unreadable or invalid.
        """
        document = read_json(path, error=ExportError, fix="re-export the model with `dsplug export RUN_DIR`")
        return cls.parse(document, source=str(path))

    def to_json(self) -> str:
        """The metadata as indented JSON text."""
        return json.dumps(to_jsonable(self.model_dump(mode="json")), indent=2) + "\n"

    @property
    def labels(self) -> list[str]:
        """Names of the outputs as the TFLite metadata lists them (the classes; value names for regression)."""
        return list(self.classes) if self.task.has_classes else self.task.output_columns(self.classes, k=self.n_outputs)

    def to_tflite(self, model: bytes, *, source: str = "the model") -> bytes:
        """``model`` (a ``.tflite`` flatbuffer) with this description embedded as TFLite Model Metadata.

        Writes the standard metadata MediaPipe Tasks reads (name, description, version, author;
        the input as ``sample_rate`` Hz mono audio; the output's labels as ``labels.txt``),
        :data:`CUSTOM_FIELDS` as custom key/values, and this whole description as the packed
        model card ``dsplug.json``; then reads it back and checks it against the model's tensors.

        Raises
        ------
        ExportError
            The model cannot be described (not one float32 ``(1, samples)`` audio input, an
            output width other than the classes): a runtime could not use it.
        """
        card = self.model_copy(update={"weights_sha256": tflite_metadata.weights_digest(model, source=source)}).to_json().encode("utf-8")
        tagged = tflite_metadata.write_audio_classifier_metadata(
            model, labels=self.labels, sample_rate=self.sample_rate, name=self.name, description=self.description,
            version=f"dsplug {self.dsplug_version}, recipe {self.recipe_hash or '-'}, quantize {self.quantize}",
            author="dsplug", custom={key: getattr(self, key) for key in CUSTOM_FIELDS},
            files={CARD_FILE: ("dsplug model card (the model.json sidecar), see dsplug's docs/deployment.md", card)},
            scores=self.task.has_classes, source=source,
        )
        self.from_tflite(tagged, source=source)  # what a runtime will read: refuse it here if it fails
        return tagged

    @classmethod
    def from_tflite(cls, model: bytes, *, source: str = "the model") -> ModelMetadata:
        """The description embedded in ``model`` by :meth:`to_tflite`, checked against the model.

        Raises
        ------
        MetadataMissing
            The model has no TFLite Model Metadata (exported by an older dsplug).
        ExportError
            The metadata is not dsplug's, is invalid, or contradicts the model's tensors or its
            own standard fields (labels, sample rate).
        """
        embedded = tflite_metadata.read_metadata(model, source=source)
        if CARD_FILE not in embedded.packed_files:
            raise ExportError(
                f"{source} has TFLite Model Metadata but no dsplug model card ({CARD_FILE}); it was not "
                "exported by dsplug: re-export it with `dsplug export RUN_DIR`"
            )
        try:
            document = json.loads(embedded.packed_files[CARD_FILE])
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ExportError(f"{source}: its model card {CARD_FILE} is damaged ({err}); re-export it") from err
        meta = cls.parse(document, source=f"{source} ({CARD_FILE})")
        standard = {"labels": embedded.labels, "sample_rate": embedded.sample_rate}
        differ = [key for key, value in standard.items() if value != getattr(meta, key)]
        if differ:
            raise ExportError(
                f"{source}: its TFLite metadata and its model card disagree on {', '.join(differ)} "
                f"({', '.join(f'{standard[k]!r} vs {getattr(meta, k)!r}' for k in differ)}); re-export it with "
                "`dsplug export RUN_DIR`"
            )
        meta.check_tensors(input_shape=embedded.input_shape, output_shape=embedded.output_shape, model=source)
        if meta.weights_sha256 and tflite_metadata.weights_digest(model, source=source) != meta.weights_sha256:
            raise ExportError(
                f"{source} was altered after export: its graph or weights no longer match the checksum recorded "
                "in its model card (a damaged copy or a flipped bit); copy the model again or re-export it with "
                "`dsplug export RUN_DIR`"
            )
        return meta

    def check_same(self, sidecar: ModelMetadata, *, model: str, sidecar_path: str) -> None:
        """Refuse a sidecar that disagrees with the metadata inside its model (:data:`SAME_FIELDS`).

        Raises
        ------
        ExportError
            Naming each differing field, both values, and the fix.
        """
        differ = [key for key in SAME_FIELDS if getattr(self, key) != getattr(sidecar, key)]
        if differ:
            values = "; ".join(f"{key}: {getattr(self, key)!r} inside, {getattr(sidecar, key)!r} in the sidecar" for key in differ)
            raise ExportError(
                f"{sidecar_path} does not belong to {model}, whose embedded metadata differs ({values}); "
                f"delete the stale {sidecar_path} (the model describes itself) or re-export both with "
                "`dsplug export RUN_DIR`"
            )

    def check_tensors(self, *, input_shape: Sequence[int], output_shape: Sequence[int], model: str) -> None:
        """Refuse metadata that does not belong to a model with these tensor shapes.

        Raises
        ------
        ExportError
            The input is not ``(1, samples)`` or the output width differs from the classes.
        """
        shape = [int(s) for s in input_shape]
        if shape != self.input.shape:
            raise ExportError(
                f"the metadata does not belong to {model}: the model's input shape is {shape}, but the "
                f"metadata declares {self.input.shape} (chunk_seconds={self.chunk_seconds} at "
                f"{self.sample_rate} Hz); keep each model with the metadata exported with it "
                "(`dsplug export RUN_DIR` writes both)"
            )
        n_out = int(output_shape[-1])
        if n_out != self.n_outputs:
            declared = (
                f"lists {len(self.classes)} classes" if self.task.has_classes else f"declares {self.n_outputs}"
            )
            raise ExportError(
                f"the metadata does not belong to {model}: the model has {n_out} outputs but the "
                f"metadata {declared}; keep each model with the metadata exported with it "
                "(`dsplug export RUN_DIR` writes both)"
            )


# --------------------------------------------------------------------------------------------
# predictions
# --------------------------------------------------------------------------------------------


PREDICTION_COLUMNS = ("file", "level", "start", "end", "label", "predicted")


def predictions_csv(rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str], extra: Sequence[str] = ()) -> str:
    """CSV text of prediction rows: ``file, level, start, end, label, predicted`` + output columns.

    One format for evaluation and inference: ``label`` is the true class (empty when unknown),
    ``predicted`` the model's decision, ``level`` ``file`` or ``chunk``, times in seconds (empty
    for file rows of evaluation), then one column per output.

    Parameters
    ----------
    rows : sequence of mapping
        Each with the keys of :data:`PREDICTION_COLUMNS` (missing ones are empty) and
        ``outputs``: the row's values, one per output column.
    columns : sequence of str
        The output column names (:meth:`dsplug.task.Task.output_columns`).
    extra : sequence of str
        More columns after the outputs (``top1, top1_prob, ...`` of ``dsplug predict --top-k``);
        a row gives their cells under the key ``extra`` (empty when it has none).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*PREDICTION_COLUMNS, *columns, *extra])
    for row in rows:
        values = [float(v) for v in row["outputs"]]
        if len(values) != len(columns):
            raise DataError(f"a prediction row has {len(values)} outputs, the header {len(columns)}")
        cells = []
        for key in PREDICTION_COLUMNS:
            value = row.get(key)
            cells.append(f"{value:.3f}" if isinstance(value, float) else "" if value is None else str(value))
        more = [f"{v:.6g}" if isinstance(v, float) else str(v) for v in row.get("extra", ["" for _ in extra])]
        if len(more) != len(extra):
            raise DataError(f"a prediction row has {len(more)} extra cells, the header {len(extra)}")
        writer.writerow([*cells, *(f"{v:.6g}" for v in values), *more])
    return buffer.getvalue()
