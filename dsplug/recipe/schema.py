"""The recipe schema: every key, its type, default and meaning.

A recipe is a YAML mapping validated against :class:`Recipe`. Unknown keys are errors, values
are type-checked strictly (``'5'`` is not a number). Sections that select a plugin
(``model.backbone``, ``model.head``, each entry of ``augment.methods``) take ``name`` plus the
options the plugin declares in its ``Options`` model; those are validated against the plugin
in :mod:`dsplug.recipe.loader`.

The field descriptions are the recipe reference: ``docs/`` is generated from them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dsplug.task import Task, TaskName

#: Version of the recipe format written into every resolved recipe.
RECIPE_VERSION = 1

#: Bounds on what one chunk may cost: samples per chunk, chunks per second of audio (the
#: chunk / hop overlap) and STFT frames per chunk (a 2**24-sample chunk is 64 MB of float32).
MAX_CHUNK_SAMPLES = 2**24
MAX_CHUNK_OVERLAP = 100
MAX_FRAMES = 65536


class Section(BaseModel):
    """A strict recipe section: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, allow_inf_nan=False)


class PluginSection(BaseModel):
    """A section that selects a plugin by ``name``; other keys are the plugin's options."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    name: str = Field(description="Entry-point name of the plugin (see `dsplug plugins`).")


def check_group_pattern(pattern: str) -> re.Pattern[str]:
    """Compile ``data.group_pattern``: a regular expression with one group, or a group named ``group``.

    Raises
    ------
    ValueError
        The pattern does not compile, or has no group, or several groups and none named ``group``.
    """
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"data.group_pattern '{pattern}' is not a valid regular expression: {err}") from err
    if "group" not in compiled.groupindex and compiled.groups != 1:
        raise ValueError(
            f"data.group_pattern '{pattern}' has {compiled.groups} groups; it needs exactly one "
            r"(e.g. '^(spk\d+)_') or one named group (e.g. '^(?P<group>[^_]+)_(?P<take>\d+)')"
        )
    return compiled


class SplitConfig(Section):
    """How to split a manifest that has no ``partition`` column."""

    devel: float = Field(
        0.15, gt=0, lt=1,
        description="About this fraction of the files goes to devel, in whole groups, every class spread "
        "over the partitions (stratified group k-fold; see docs/concepts.md).",
    )
    test: float = Field(0.15, gt=0, lt=1, description="About this fraction of the files goes to test, like devel.")


class DataConfig(Section):
    """The dataset and how audio becomes fixed-length chunks."""

    manifest: str = Field(
        description="REQUIRED. Manifest CSV (path, label[, partition][, group]), or a folder with one "
        "subfolder of audio files per class (optionally inside train/devel/test folders); relative to "
        "the recipe file's folder."
    )
    group_pattern: str | None = Field(
        None,
        description="Regular expression searched in each file name whose one group (or group named "
        "`group`) is the speaker/session, e.g. `^(spk\\d+)_`; for a folder, or a CSV without a group "
        "column. A file name it does not match is an error.",
    )
    task: TaskName = Field(
        "classification",
        description="classification (one label), multilabel (`;`-separated labels) or "
        "regression (a number).",
    )
    classes: list[str] | None = Field(
        None, description="Class names in output order; default: sorted labels of the data."
    )
    sample_rate: int = Field(16000, ge=1000, le=768000, description="Sample rate in Hz audio is resampled to.")
    chunk_seconds: float = Field(3.0, gt=0, le=600, description="Length of one chunk in seconds.")
    hop_seconds: float | None = Field(
        None, gt=0, description="Hop between chunk starts in seconds; default: chunk_seconds."
    )
    pad_mode: Literal["zero", "repeat"] = Field(
        "zero", description="How chunks shorter than chunk_seconds are filled."
    )
    split: SplitConfig = Field(
        default_factory=SplitConfig,  # type: ignore[arg-type]
        description="Seeded, group-aware split used when the manifest has no partition column.",
    )
    balance: Literal["none", "oversample", "class_weights"] = Field(
        "none", description="Class balancing of the training partition."
    )
    on_bad_file: Literal["error", "skip"] = Field(
        "error",
        description="error: stop before training on an unreadable/invalid file; skip: warn, "
        "skip it and record it in skipped_files.csv.",
    )
    storage: Literal["auto", "memory", "disk"] = Field(
        "auto",
        description="Where decoded chunks live: memory (one array), disk (shards in data.cache_dir, "
        "read by tf.data, reused by later runs), auto (memory up to 1 GiB of decoded float32 chunks).",
    )
    cache_dir: str | None = Field(
        None,
        description="Folder of the on-disk chunk shards; default $DSPLUG_CACHE/chunks, else "
        "~/.cache/dsplug/chunks. Relative to the current folder.",
    )
    shard_dtype: Literal["float16", "float32"] = Field(
        "float16",
        description="Sample type in the shards: float16 halves disk and reads (mean image "
        "difference 0.01 of 255, see docs/scaling.md); float32 is exact.",
    )

    @field_validator("task")
    @classmethod
    def _task(cls, value: str) -> Task:
        return Task(value)  # the owner of what the task means; it is its name in YAML and JSON

    @field_validator("group_pattern")
    @classmethod
    def _group_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            check_group_pattern(value)
        return value


class FrontendConfig(Section):
    """Audio chunk to colour image (inside the model, also in TFLite)."""

    window_ms: float = Field(32.0, gt=0, description="STFT (Hann) window length in ms.")
    hop_ms: float = Field(16.0, gt=0, description="STFT hop in ms (paper: 50 % of the window).")
    n_mels: int = Field(128, gt=0, le=512, description="Number of Mel bands.")
    fmin: float = Field(0.0, ge=0, description="Lowest Mel frequency in Hz.")
    fmax: float | None = Field(None, gt=0, description="Highest Mel frequency in Hz; default sr/2.")
    top_db: float | None = Field(
        80.0, gt=0, description="Dynamic range kept below each image's peak, in dB; null: all."
    )
    colormap: str = Field(
        "viridis",
        description="A `dsplug.colormaps` plugin name, or any matplotlib colour-map name.",
    )
    image_size: list[int] | None = Field(
        None,
        description="[height, width] in pixels, each 8 to 1024; default: the backbone's input size.",
    )
    normalize_signal: bool = Field(True, description="Peak-normalise each chunk first.")

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 2 or not all(8 <= side <= 1024 for side in value)):
            raise ValueError(f"frontend.image_size: expected [height, width] with sides from 8 to 1024 pixels, got {value}")
        return value


class BackboneConfig(PluginSection):
    """The image CNN (a `dsplug.backbones` plugin)."""

    name: str = Field("densenet121", description="Backbone plugin name.")
    weights: str = Field(
        "imagenet",
        description="imagenet (or another source the backbone offers), none (random init), "
        "or a path to a weights file. Missing weights are an error, never replaced.",
    )
    weights_dir: str | None = Field(
        None, description="Extra folder searched for pretrained weight files before downloading."
    )


class HeadConfig(PluginSection):
    """The classifier on the pooled features (a `dsplug.heads` plugin)."""

    name: str = Field("mlp", description="Head plugin name.")


class ModelConfig(Section):
    """Backbone and head."""

    backbone: BackboneConfig = Field(default_factory=BackboneConfig)  # type: ignore[arg-type]
    taps: Literal["last", "auto"] | list[str] = Field(
        "last",
        description="Which backbone depths feed the head: last (the final feature maps), auto (the ends "
        "of the three deepest stages, mean- and max-pooled and concatenated: mid-level features transfer "
        "to spectrograms better), or a list of layer names.",
    )
    head: HeadConfig = Field(default_factory=HeadConfig)  # type: ignore[arg-type]


class Phase1Config(Section):
    """Phase 1: the backbone is frozen, the head is trained."""

    epochs: int = Field(40, ge=0, description="Epochs of phase 1.")
    lr: float | None = Field(None, gt=0, description="Learning rate; default: train.lr.")


class Phase2Config(Section):
    """Phase 2: the top layers of the backbone are unfrozen."""

    epochs: int = Field(80, ge=0, description="Epochs of phase 2.")
    finetune_layers: float | Literal["all"] = Field(
        85,
        description="Backbone layers unfrozen from the top: a count (>= 1, e.g. 85; 0: none), "
        "a fraction in (0, 1), or all.",
    )
    lr_factor: float = Field(0.1, gt=0, description="Phase-2 lr = train.lr x lr_factor.")
    lr: float | None = Field(None, gt=0, description="Explicit phase-2 lr (overrides lr_factor).")


class ProbeConfig(Section):
    """The linear probe (``train.method: probe``): a logistic-regression head on frozen features."""

    folds: int = Field(
        5, ge=2, le=50,
        description="Cross-validation folds over the groups of train+devel that choose the "
        "regularisation (fewer if there are fewer groups).",
    )
    c_grid: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [float(f"{c:.3g}") for c in (10 ** (k / 2) for k in range(-12, 3))],
        min_length=1,
        description="Candidate inverse L2 strengths C; the best by cross-validated file-level UAR wins "
        "(ties: the smaller C). When the best is the largest, the grid grows by up to 3 steps of its "
        "own ratio while the new C wins.",
    )


class TrainConfig(Section):
    """Training: two-phase fine-tuning, or a linear probe on frozen features."""

    method: Literal["finetune", "probe"] = Field(
        "finetune",
        description="finetune: the paper's two phases (gradient descent on the head, then on the top "
        "backbone layers); probe: a logistic-regression head fitted on frozen-backbone features, its "
        "regularisation chosen by cross-validation over groups (fast, robust on small data).",
    )
    probe: ProbeConfig = Field(default_factory=ProbeConfig)  # type: ignore[arg-type]
    batch_size: int = Field(32, gt=0, le=65536, description="Batch size.")
    optimizer: Literal["adadelta", "adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad"] = Field(
        "adadelta", description="Optimiser (paper: adadelta)."
    )
    lr: float = Field(0.001, gt=0, description="Initial learning rate.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the loss.")
    phase1: Phase1Config = Field(default_factory=Phase1Config)  # type: ignore[arg-type]
    phase2: Phase2Config = Field(default_factory=Phase2Config)  # type: ignore[arg-type]
    early_stopping: int | None = Field(
        None, gt=0, description="Stop a phase after this many epochs without devel UAR gain."
    )
    final_fit: bool = Field(
        False,
        description="Paper's final mode: retrain on train+devel (the same epochs; for a probe, the "
        "chosen regularisation), then evaluate once on test.",
    )
    cache_features: bool = Field(
        True,
        description="Phase 1 without augmentation: compute frozen-backbone features once (in memory, "
        "for chunks on disk in RUN/checkpoints/features while phase 1 runs).",
    )
    steps_per_epoch: int | None = Field(
        None, gt=0,
        description="At most this many steps (global batches) per epoch, in both phases; null: every "
        "chunk once. For quick trials and benchmarks on large sets; a capped phase 1 caches features "
        "only if it reads at least as many chunks as there are.",
    )
    distribute: Literal["auto", "none", "mirrored", "multiworker"] = Field(
        "auto",
        description="Data parallelism: mirrored (all local GPUs), multiworker (TF_CONFIG or SLURM), "
        "auto (mirrored when more than one GPU is visible), none.",
    )
    scale_lr: bool = Field(
        True,
        description="With several replicas the global batch is batch_size x replicas; scale the "
        "learning rate by the number of replicas (linear scaling rule).",
    )
    mixed_precision: bool = Field(
        False, description="mixed_float16 compute on GPUs (front-end and outputs stay float32)."
    )
    xla: bool = Field(False, description="Compile the training step with XLA.")


class AugmentMethod(PluginSection):
    """One augmentation (a `dsplug.augmentations` plugin) and its options."""


class AugmentConfig(Section):
    """Training-time augmentation driven by the SapAugment policy."""

    policy: Literal["sapaugment", "none"] = Field(
        "sapaugment", description="sapaugment: strength by loss rank; none: no augmentation."
    )
    a: float = Field(0.5, gt=0, lt=1, description="SapAugment shape parameter a.")
    s: float = Field(10.0, gt=0, description="SapAugment sharpness parameter s.")
    p_min: float = Field(0.10, ge=0, le=1, description="Lowest execution probability.")
    p_max: float = Field(0.25, ge=0, le=1, description="Highest execution probability.")
    methods: list[AugmentMethod] = Field(
        default_factory=lambda: [
            AugmentMethod(name="cutmix"),
            AugmentMethod(name="specaugment"),
        ],
        description="Augmentations in the order they are applied.",
    )


class EvaluateConfig(Section):
    """Metrics and confidence intervals."""

    bootstrap: int = Field(1000, ge=0, le=100_000, description="Bootstrap resamples for the CIs (0: none).")
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence level of the CIs.")
    aggregate: Literal["mean", "vote"] = Field(
        "mean", description="Chunk to file: mean of probabilities or majority vote."
    )


class ExportConfig(Section):
    """What `dsplug run` exports besides the float32 model (also the defaults of `dsplug export`)."""

    quantize: list[Literal["dynamic", "float16", "int8", "qat"]] = Field(
        default_factory=list,
        description="Extra TFLite models: dynamic (int8 weights), float16, int8 (post-training "
        "integer quantisation of the classifier) and/or qat (quantization-aware "
        "fine-tuning, then int8). The float32 model.tflite is always written.",
    )
    prune: float | None = Field(
        None, gt=0, lt=1, description="Target sparsity of magnitude pruning (also exports the pruned models)."
    )
    prune_epochs: int = Field(6, ge=1, description="Fine-tuning epochs while pruning.")
    prune_lr: float = Field(1e-4, gt=0, description="Adam learning rate while pruning.")
    qat_epochs: int = Field(3, ge=1, description="Epochs of quantization-aware fine-tuning.")
    qat_lr: float = Field(1e-5, gt=0, description="Adam learning rate of quantization-aware fine-tuning.")
    representative_size: int = Field(
        200, ge=1, le=100_000, description="Training chunks that calibrate int8 (and QAT) quantisation ranges."
    )
    int8_float_threshold: float | None = Field(
        1.5,
        gt=0,
        description="int8: classifier layers whose quantisation error (RMS over 32 calibration "
        "chunks, in quantisation steps; rounding alone gives 0.29) exceeds this stay float32 "
        "(TensorFlow's selective quantisation). null: a full-integer classifier.",
    )


class Recipe(Section):
    """A dsplug recipe (format version 1)."""

    version: Literal[1] = Field(RECIPE_VERSION, description="Recipe format version.")
    name: str = Field(
        "run",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="Run name: the run directory is runs/NAME (letters, digits, '.', '_', '-'; no '/').",
    )
    seed: int = Field(0, ge=0, le=4_294_967_295, description="Seed for splits, shuffling, initialisation, bootstrap.")
    data: DataConfig
    frontend: FrontendConfig = Field(default_factory=FrontendConfig)  # type: ignore[arg-type]
    model: ModelConfig = Field(default_factory=ModelConfig)  # type: ignore[arg-type]
    train: TrainConfig = Field(default_factory=TrainConfig)  # type: ignore[arg-type]
    augment: AugmentConfig = Field(default_factory=AugmentConfig)  # type: ignore[arg-type]
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)  # type: ignore[arg-type]
    export: ExportConfig = Field(default_factory=ExportConfig)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _cross_field_checks(self) -> Recipe:
        """Checks that involve several keys (each message names the keys and the fix)."""
        if self.augment.p_min > self.augment.p_max:
            raise ValueError(
                f"augment.p_min ({self.augment.p_min}) must not exceed augment.p_max ({self.augment.p_max})"
            )
        split = self.data.split
        if split.devel + split.test >= 1:
            raise ValueError(
                f"data.split.devel + data.split.test must be below 1, got {split.devel + split.test:g}"
            )
        rate = self.data.sample_rate
        fmax = self.frontend.fmax or rate / 2
        if fmax > rate / 2 or self.frontend.fmin >= fmax:
            raise ValueError(
                f"frontend.fmin/fmax must satisfy 0 <= fmin < fmax <= sample_rate/2 ({rate / 2:g} Hz), "
                f"got fmin={self.frontend.fmin:g}, fmax={fmax:g}"
            )
        if self.data.chunk_seconds * 1000 < self.frontend.window_ms:
            raise ValueError(
                f"data.chunk_seconds ({self.data.chunk_seconds:g} s) is shorter than one STFT window "
                f"(frontend.window_ms {self.frontend.window_ms:g} ms); use longer chunks or a shorter window"
            )
        chunk = self.data.chunk_seconds * rate
        if chunk > MAX_CHUNK_SAMPLES:
            raise ValueError(
                f"data.chunk_seconds ({self.data.chunk_seconds:g} s) at data.sample_rate {rate} Hz makes chunks of "
                f"{chunk:.0f} samples, more than {MAX_CHUNK_SAMPLES}; use shorter chunks"
            )
        hop = self.data.hop_seconds
        if hop is not None and (hop * rate < 1 or self.data.chunk_seconds / hop > MAX_CHUNK_OVERLAP):
            raise ValueError(
                f"data.hop_seconds ({hop:g} s) must be at least one sample at {rate} Hz and at least "
                f"data.chunk_seconds / {MAX_CHUNK_OVERLAP} ({self.data.chunk_seconds / MAX_CHUNK_OVERLAP:g} s): "
                "smaller hops multiply the chunks (and the memory) without new audio"
            )
        hop_samples = self.frontend.hop_ms * rate / 1000
        if hop_samples < 1 or chunk / hop_samples > MAX_FRAMES:
            raise ValueError(
                f"frontend.hop_ms ({self.frontend.hop_ms:g} ms) must be at least one sample at {rate} Hz and give "
                f"at most {MAX_FRAMES} STFT frames per chunk (it gives {chunk / max(hop_samples, 1e-9):.0f}); "
                "use a longer hop"
            )
        if self.frontend.window_ms * rate / 1000 < 16:
            raise ValueError(
                f"frontend.window_ms ({self.frontend.window_ms:g} ms) is too short at data.sample_rate "
                f"{rate} Hz: a window needs at least 16 samples"
            )
        if self.train.method == "probe" and (self.model.head.name != "linear" or not self.data.task.exclusive):
            raise ValueError(
                "train.method: probe fits a logistic-regression head for classification: it needs "
                f"model.head.name: linear (got {self.model.head.name!r}) and data.task: classification "
                f"(got '{self.data.task}'); use train.method: finetune otherwise"
            )
        layers = self.train.phase2.finetune_layers
        if layers != "all" and (layers < 0 or (layers >= 1 and layers != int(layers))):
            raise ValueError(
                "train.phase2.finetune_layers: expected a count (integer >= 1) or a fraction in (0, 1), "
                f"or all; got {layers}"
            )
        return self
