"""Front-end + backbone + head -> one Keras model (audio in, probabilities out).

The pipeline is built as two parts so augmentation can sit between them in training:

* ``frontend``: audio chunk (batch, samples) -> normalised image (batch, H, W, 3)
  (:class:`~dsplug.frontend.layers.SpectrogramImage` then the backbone's own normalisation);
* ``classifier``: normalised image -> outputs (backbone, then head).

``end_to_end`` chains them: it is what evaluation, export and inference use, so the deployed
model takes raw audio and nothing is re-implemented on the device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from dsplug import registry
from dsplug.artifacts import RunDir
from dsplug.data import ChunkSource
from dsplug.errors import RecipeError, RunError
from dsplug.frontend.colormaps import colormap_table
from dsplug.frontend.padding import RepeatPad, min_zeros_for  # also registers the layer for saved models
from dsplug.recipe.loader import RecipePoint, load_recipe
from dsplug.recipe.spec import PipelineSpec
from dsplug.recipe.schema import Recipe
from dsplug.weights import build_backbone

logger = logging.getLogger(__name__)


@tf_keras.utils.register_keras_serializable(package="dsplug")
class BackbonePreprocess(tf_keras.layers.Layer):
    """The backbone plugin's input normalisation as a layer.

    Serialised by the plugin's entry-point name and its options, so a loaded model normalises
    exactly as the trained one, whatever the plugin's options.

    Parameters
    ----------
    backbone : str
        The backbone's entry-point name.
    options : dict or None
        The plugin's options as plain data (``Options.model_dump(mode="json")``); ``None``: the
        plugin's defaults.
    """

    def __init__(self, *, backbone: str, options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backbone = backbone
        cls = registry.load("backbones", backbone)
        # JSON mode: the plain data of get_config (lists for tuples) validates strictly
        self._plugin = cls(options=cls.Options.model_validate_json(json.dumps(options or {})))

    def call(self, images: tf.Tensor) -> tf.Tensor:
        """Normalise (batch, H, W, 3) images with values in [0, 255]."""
        return self._plugin.preprocess(images)

    def get_config(self) -> dict[str, Any]:
        """Serialisable configuration: the plugin's name and options."""
        options = self._plugin.options.model_dump(mode="json")
        return {**super().get_config(), "backbone": self.backbone, "options": options}


@dataclasses.dataclass
class Pipeline:
    """The built model and its parts.

    Attributes
    ----------
    frontend : tf_keras.Model
        (batch, samples) float32 audio -> (batch, H, W, 3) normalised images.
    classifier : tf_keras.Model
        Normalised images -> (batch, outputs) probabilities (or values): ``head(backbone(x))``.
    head : tf_keras.Model
        Backbone features (batch, h, w, channels) -> outputs.
    end_to_end : tf_keras.Model
        Audio -> outputs.
    backbone : tf_keras.Model
        The backbone feature extractor inside ``classifier`` (for freezing/unfreezing).
    fill_value : np.ndarray [shape=(3,), dtype=float32]
        The normalised pixel value of silence (colour-map row 0), for masks.
    spec : PipelineSpec
        What it was built from (the exporter describes the model from it).
    """

    frontend: tf_keras.Model
    classifier: tf_keras.Model
    head: tf_keras.Model
    end_to_end: tf_keras.Model
    backbone: tf_keras.Model
    fill_value: np.ndarray
    spec: PipelineSpec

    @property
    def input_kind(self) -> str:
        """The backbone's input: ``image`` (spectrogram images) or ``audio`` (raw chunks)."""
        return self.spec.input_kind

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the images."""
        return self.spec.image_size


@contextlib.contextmanager
def precision(mixed: bool) -> Iterator[None]:
    """Keras' global dtype policy ``mixed_float16`` inside the block (restored after)."""
    if not mixed:
        yield
        return
    before = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(before)


def build_frontend(spec: PipelineSpec) -> tf_keras.layers.Layer:
    """The spectrogram-image layer of a spec (its ``frontend`` section, sample rate and image size)."""
    from dsplug.frontend.layers import SpectrogramImage

    fe = spec.frontend
    return SpectrogramImage(
        sample_rate=spec.sample_rate,
        window_ms=fe.window_ms,
        hop_ms=fe.hop_ms,
        n_mels=fe.n_mels,
        fmin=fe.fmin,
        fmax=fe.fmax,
        top_db=fe.top_db,
        colormap=colormap_table(fe.colormap),
        image_size=spec.image_size,
        normalize_signal=fe.normalize_signal,
        name="spectrogram_image",
        dtype="float32",  # FFT, dB and colour lookup stay float32 under mixed precision
    )


def pad_layer(spec: PipelineSpec) -> tf_keras.layers.Layer:
    """The model's first layer: :class:`~dsplug.frontend.padding.RepeatPad` for
    ``data.pad_mode: repeat`` (hosts feed zero-padded windows, the model tiles them), else an
    identity."""
    if spec.pad_mode == "repeat":
        return RepeatPad(min_zeros=min_zeros_for(spec.sample_rate), name="repeat_pad", dtype="float32")
    return tf_keras.layers.Identity(name="zero_pad")


def build_pipeline(spec: PipelineSpec, *, num_outputs: int) -> Pipeline:
    """Build front-end, backbone and head from a spec (:meth:`PipelineSpec.of` a recipe).

    Parameters
    ----------
    spec : PipelineSpec
        The model the recipe describes, checked.
    num_outputs : int
        Number of classes (or regression targets).

    Raises
    ------
    WeightsError
        Requested pretrained weights are missing (never replaced by random ones).
    """
    tf_keras.utils.set_random_seed(spec.seed)
    backbone_plugin = spec.backbone
    samples = spec.chunk_samples
    audio = tf_keras.Input((samples,), dtype="float32", name="audio")
    window = pad_layer(spec)(audio)  # hosts zero-pad short windows; the model fills them
    if spec.input_kind == "audio":  # the backbone has its own front-end
        frontend = tf_keras.Model(audio, tf_keras.layers.Identity(name="raw_audio")(window), name="frontend")
    else:
        image = build_frontend(spec)(window)
        normalised = BackbonePreprocess(
            backbone=spec.backbone_name,
            options=backbone_plugin.options.model_dump(mode="json"),
            name="backbone_preprocess",
            dtype="float32",
        )(image)
        frontend = tf_keras.Model(audio, normalised, name="frontend")
    input_shape = spec.input_shape

    backbone = build_backbone(backbone_plugin, input_shape=input_shape, weights=spec.weights, weights_dir=spec.weights_dir)
    if spec.taps != "last":
        backbone = tapped(backbone, layers=tap_layers(backbone, taps=spec.taps))
    features = tf_keras.Input(backbone.output_shape[1:], dtype="float32", name="features")
    head_model = tf_keras.Model(
        features, spec.head.build(features, num_outputs=num_outputs, task=spec.task), name="head"
    )
    images = tf_keras.Input(input_shape, dtype="float32", name="image" if len(input_shape) == 3 else "samples")
    classifier = tf_keras.Model(images, head_model(backbone(images)), name="classifier")

    end_to_end = tf_keras.Model(audio, classifier(frontend(audio)), name="dsplug")
    if spec.input_kind == "audio":
        fill = np.zeros(3, np.float32)  # unused: image augmentations do not apply to raw audio
    else:
        silence = colormap_table(spec.frontend.colormap)[:1] * 255.0
        fill = backbone_plugin.preprocess(tf.constant(silence.reshape(1, 1, 1, 3)))
    return Pipeline(
        frontend=frontend,
        classifier=classifier,
        head=head_model,
        end_to_end=end_to_end,
        backbone=backbone,
        fill_value=np.asarray(fill, dtype=np.float32).reshape(3),
        spec=spec,
    )


def stage_ends(backbone: tf_keras.Model) -> list[str]:
    """The layers that end the backbone's stages, shallow to deep: where mid-level features are.

    A stage is a run of blocks of one feature width. With residual blocks (MobileNet, EfficientNet,
    ResNet) its end is the last residual addition of that width; without them (VGG, DenseNet,
    SqueezeNet) it is the last layer of each spatial resolution. The backbone's output is always
    last.

    Returns
    -------
    list of str
        Layer names.
    """
    spatial = [layer for layer in backbone.layers if len(getattr(layer, "output_shape", ()) or ()) == 4]
    adds = [layer for layer in spatial if isinstance(layer, tf_keras.layers.Add)]
    ends: list[str] = []
    if adds:
        for layer, after in zip(adds, [*adds[1:], None]):
            if after is None or after.output_shape[-1] != layer.output_shape[-1]:
                ends.append(layer.name)
    else:
        for layer, after in zip(spatial, [*spatial[1:], None]):
            if after is None or after.output_shape[1:3] != layer.output_shape[1:3]:
                ends.append(layer.name)
    last = backbone.layers[-1].name
    return [name for name in ends if name != last] + [last]


def tap_layers(backbone: tf_keras.Model, *, taps: str | list[str]) -> list[str]:
    """The layers ``model.taps`` names: ``auto`` (the ends of the three deepest stages) or a list.

    Raises
    ------
    RecipeError
        A named layer is not in the backbone (the message lists the stage ends to choose from).
    """
    ends = stage_ends(backbone)
    if taps == "auto":
        inner = ends[:-1] if len(ends) > 3 else ends
        return inner[-3:]
    names = {layer.name for layer in backbone.layers}
    unknown = [name for name in taps if name not in names]
    if unknown:
        raise RecipeError(
            f"model.taps: no layer {', '.join(map(repr, unknown))} in backbone {backbone.name!r}; its stage "
            f"ends are {', '.join(ends)}"
        )
    return list(taps)


def tapped(backbone: tf_keras.Model, *, layers: list[str]) -> tf_keras.Model:
    """A feature extractor giving the mean- and max-pooled outputs of several backbone layers.

    Mid-level features transfer to spectrograms better than the last layer's ImageNet-specific ones.

    Parameters
    ----------
    backbone : tf_keras.Model
        (batch, H, W, 3) -> feature maps.
    layers : list of str
        Layer names whose (batch, h, w, c) outputs are pooled.

    Returns
    -------
    tf_keras.Model
        (batch, H, W, 3) -> (batch, 2 * sum(c)): per layer the spatial mean, then the spatial max.
    """
    pooled = []
    for name in layers:
        output = backbone.get_layer(name).output
        pooled += [
            tf_keras.layers.GlobalAveragePooling2D(name=f"tap_mean_{name}")(output),
            tf_keras.layers.GlobalMaxPooling2D(name=f"tap_max_{name}")(output),
        ]
    joined = pooled[0] if len(pooled) == 1 else tf_keras.layers.Concatenate(name="taps")(pooled)
    return tf_keras.Model(backbone.input, joined, name=f"{backbone.name}_taps")


def predict_batches(
    model: tf_keras.Model, inputs: np.ndarray | ChunkSource, *, batch_size: int, progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Outputs of a Keras model for many inputs, batch by batch, in inference mode.

    Parameters
    ----------
    model : tf_keras.Model
        Any model of the pipeline (end-to-end, classifier, head).
    inputs : np.ndarray [shape=(n, ...)] or ChunkSource
        Audio chunks (n, samples), images or features; or a chunk source (in memory or on disk),
        read in chunk order one batch at a time.
    batch_size : int
        Inputs per call.
    progress : callable, optional
        Called after each batch with the number of inputs done so far (for a progress bar).

    Returns
    -------
    np.ndarray [shape=(n, outputs)]
    """
    if isinstance(inputs, np.ndarray):
        batches: Iterator[np.ndarray] = (inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size))
    else:
        batches = inputs.batches(batch_size=batch_size)
    outputs, done = [], 0
    for batch in batches:
        outputs.append(model(batch, training=False).numpy())
        done += len(batch)
        if progress is not None:
            progress(done)
    return np.concatenate(outputs) if outputs else np.zeros((0, model.output_shape[-1]), np.float32)


@dataclasses.dataclass
class TrainedRun:
    """A finished run's resolved recipe and its rebuilt, trained pipeline.

    Attributes
    ----------
    run : RunDir
        The run directory.
    point : RecipePoint
        The run's resolved recipe (``recipe.yaml``).
    pipeline : Pipeline
        The pipeline with the trained weights of ``model.keras``.
    classes : list of str
        Output names in order (``data.json``).
    """

    run: RunDir
    point: RecipePoint
    pipeline: Pipeline
    classes: list[str]

    @property
    def recipe(self) -> Recipe:
        """The run's resolved recipe."""
        return self.point.recipe

    @property
    def samples(self) -> int:
        """Samples per chunk."""
        return self.pipeline.spec.chunk_samples


def load_trained(run_dir: str | Path | RunDir, *, command: str) -> TrainedRun:
    """Rebuild a finished run's pipeline and load its trained weights: the one way to do it.

    The pipeline is built from ``recipe.yaml`` with ``model.backbone.weights: none`` (the trained
    weights replace any initialisation, so no pretrained file is needed), then the weights of
    ``model.keras`` are loaded into it.

    Parameters
    ----------
    run_dir : path or RunDir
        A directory written by ``dsplug run``.
    command : str
        The command asking (``export``, ``explain``), for messages.

    Raises
    ------
    RunError
        A file is missing, or the weights do not fit the recipe's model.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run.require([RunDir.RECIPE, RunDir.DATA, RunDir.KERAS_MODEL], command=command)
    [point] = load_recipe(run / RunDir.RECIPE)
    classes = [str(c) for c in run.data_summary().get("classes", [])]
    spec = dataclasses.replace(PipelineSpec.of(point.recipe), weights=None)
    pipeline = build_pipeline(spec, num_outputs=max(len(classes), 1))
    try:
        pipeline.end_to_end.load_weights(str(run / RunDir.KERAS_MODEL))
    except Exception as err:  # noqa: BLE001  any load failure means the same thing here
        raise RunError(
            f"{run / RunDir.KERAS_MODEL} does not fit the model of {run / RunDir.RECIPE} ({err}); "
            "was the run directory's recipe edited after training? Re-run `dsplug run`"
        ) from err
    return TrainedRun(run=run, point=point, pipeline=pipeline, classes=classes)
