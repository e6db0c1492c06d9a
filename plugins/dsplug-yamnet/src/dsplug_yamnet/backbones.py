"""The ``yamnet`` and ``lean`` backbones: audio-pretrained feature extractors on raw 16 kHz chunks.

Both are ``input_kind = "audio"`` backbones: dsplug hands them the raw chunk (batch, samples)
float32 and they compute their own front-end inside the model, so it is exported to TFLite with
the rest (builtin ops only: RFFT2D, FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, WHILE,
BATCH_MATMUL, SOFTMAX, ...).

``yamnet``
    YAMNet's log-Mel front-end and MobileNet-v1 body; features are the 1024-d embeddings of the
    0.96 s patches (hop 0.48 s): (batch, n_patches, 1, 1024), e.g. 2 patches per 1 s chunk. Its
    layers are those of the original, so ``train.phase2.finetune_layers`` unfreezes them from
    the top as for the image backbones.

``lean``
    LEAN's feature extractor (wave encoder + YAMNet + cross-attention): the chunk cut into 25 ms
    patches (e.g. (40, 400) for 1 s) through two bidirectional LSTM layers -> (steps, 2 x units)
    (``RNN(LSTMCell)``: exported as a builtin WHILE loop; the ``LSTM`` layer would be fused into
    TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM, builtin too, but that op keeps its state in variable
    tensors, so each chunk would start from the previous chunk's final state);
    YAMNet's patch embeddings through a Dense projection; multi-head attention with the wave
    sequence as query and the projected embeddings as key and value re-aligns YAMNet to the
    wave encoder's steps; both are concatenated: (batch, steps, 1, 2 x units + 2 x units). YAMNet
    sits in one layer (:class:`YamnetEmbeddings`) that stays frozen (inference mode, no trainable
    weights, whatever the trainer unfreezes) unless ``yamnet_trainable``.

Examples
--------
>>> from dsplug_yamnet import Lean
>>> lean = Lean(options=Lean.Options(lstm_units=128, projection=256, heads=4))
>>> model = lean.build(input_shape=(16000,))  # doctest: +SKIP
>>> model.output_shape  # doctest: +SKIP
(None, 40, 1, 512)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import tensorflow as tf
import tf_keras
from pydantic import Field, model_validator

from dsplug.plugin import Backbone, Options, PluginError, WeightSource
from dsplug_yamnet.frontend import SAMPLE_RATE, WINDOW_SAMPLES, YamnetLogMelPatches, patch_count
from dsplug_yamnet.network import CLASSIFIER_LAYER, EMBEDDING_SIZE, NUM_CLASSES, PatchFeatures, patch_model, yamnet_body
from dsplug_yamnet.savedmodel import AUDIOSET, load_yamnet

__all__ = ["Lean", "Yamnet", "YamnetEmbeddings", "audioset_classifier"]


def _audio_samples(input_shape: tuple[int, ...], *, backbone: str, multiple: int = 1) -> int:
    """The chunk length of an audio backbone's ``input_shape`` (samples,), checked."""
    shape = tuple(input_shape)
    if len(shape) != 1 or not isinstance(shape[0], int) or shape[0] < 1:
        raise PluginError(
            f"backbone {backbone!r} takes raw audio (input_kind 'audio'): input_shape must be (samples,), "
            f"got {shape}"
        )
    if shape[0] % multiple:
        raise PluginError(
            f"backbone {backbone!r} needs chunks that are a whole number of {multiple} samples "
            f"({multiple / SAMPLE_RATE * 1000:g} ms at {SAMPLE_RATE} Hz), got {shape[0]} samples; "
            "choose data.chunk_seconds accordingly (e.g. 1.0)"
        )
    return int(shape[0])


class _AudioBackbone(Backbone):
    """Shared class attributes of the raw-audio backbones."""

    input_kind: ClassVar[str] = "audio"  # type: ignore[misc]
    #: Sample rate the backbone's front-end and weights assume (data.sample_rate must match).
    sample_rate: ClassVar[int] = SAMPLE_RATE
    #: (frames, Mel bands) of one YAMNet patch; unused by dsplug for audio backbones.
    input_size: ClassVar[tuple[int, int]] = (96, 64)
    weight_sources: ClassVar[Mapping[str, WeightSource]] = {"audioset": AUDIOSET}

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """Not used: an audio backbone takes raw chunks and has its own front-end."""
        raise PluginError(
            f"backbone {self.name or type(self).__name__!r} takes raw audio (input_kind 'audio') and has no "
            "image preprocessing"
        )


class Yamnet(_AudioBackbone):
    """YAMNet (AudioSet) on raw 16 kHz audio: 1024-d embeddings of 0.96 s patches (hop 0.48 s)."""

    def build(self, *, input_shape: tuple[int, ...]) -> tf_keras.Model:
        """Build YAMNet's front-end and body, randomly initialised.

        Parameters
        ----------
        input_shape : tuple[int]
            ``(samples,)``: the chunk length at 16 kHz.

        Returns
        -------
        tf_keras.Model
            (batch, samples) float32 audio -> (batch, n_patches, 1, 1024) embeddings, with
            ``n_patches = dsplug_yamnet.frontend.patch_count(samples)``.
        """
        samples = _audio_samples(input_shape, backbone="yamnet")
        audio = tf_keras.Input((samples,), name="audio")
        patches = YamnetLogMelPatches(name="yamnet_log_mel_patches")(audio)
        features = PatchFeatures(n_patches=patch_count(samples), name="yamnet_features")(yamnet_body(patches))
        return tf_keras.Model(audio, features, name="yamnet")

    def load_pretrained(self, model: tf_keras.Model, path: Path) -> None:
        """Load YAMNet's weights (a SavedModel folder or a converted ``.h5``) by layer name."""
        load_yamnet(model, path)


def audioset_classifier(*, samples: int, weights: str | os.PathLike[str] | None) -> tf_keras.Model:
    """YAMNet with its AudioSet classifier: clip scores as the original computes them.

    Each patch is classified (Dense 521 + sigmoid) and the patch scores are averaged over the
    chunk, as in YAMNet's inference example (``np.mean(scores, axis=0)``).

    Parameters
    ----------
    samples : int
        Chunk length at 16 kHz.
    weights : path or None
        A YAMNet SavedModel folder or a converted ``yamnet_audioset.h5`` (``None``: random), e.g.
        ``dsplug.weights.resolve_weights(Yamnet(), "audioset", input_shape=(samples,)).path``.

    Returns
    -------
    tf_keras.Model
        (batch, samples) float32 audio -> (batch, 521) AudioSet class scores in [0, 1].
    """
    backbone = Yamnet().build(input_shape=(samples,))
    scores = tf_keras.layers.Activation("sigmoid", name="audioset_scores")(
        tf_keras.layers.Dense(NUM_CLASSES, name=CLASSIFIER_LAYER)(backbone.output)
    )  # (batch, n_patches, 1, 521)
    clip = tf_keras.layers.GlobalAveragePooling2D(name="audioset_clip_scores")(scores)
    model = tf_keras.Model(backbone.input, clip, name="yamnet_audioset")
    if weights is not None:
        load_yamnet(model, Path(weights).expanduser())
    return model


@tf_keras.utils.register_keras_serializable(package="dsplug_yamnet")
class YamnetEmbeddings(tf_keras.layers.Layer):
    """YAMNet as one layer: raw chunks (batch, samples) -> patch embeddings (batch, n_patches, 1024).

    With ``trainable_body=False`` the layer is frozen for good: it reports ``trainable=False``
    whatever is assigned to it (so a trainer that unfreezes the whole backbone leaves YAMNet
    alone) and runs its BatchNormalization layers in inference mode.

    Parameters
    ----------
    trainable_body : bool
        Whether YAMNet's weights may be fine-tuned.
    """

    def __init__(self, *, trainable_body: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trainable_body = bool(trainable_body)
        self.log_mel_patches = YamnetLogMelPatches(name="yamnet_log_mel_patches")
        self.body = patch_model(classifier=False, name="yamnet_body")

    @property
    def trainable(self) -> bool:
        """False for a frozen YAMNet, else the assigned value."""
        return bool(self._trainable) and getattr(self, "trainable_body", True)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for layer in self._flatten_layers():
            layer._trainable = value

    def call(self, audio: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Embeddings (batch, n_patches, 1024) of chunks (batch, samples)."""
        embeddings = self.body(self.log_mel_patches(audio), training=training if self.trainable_body else False)
        return tf.reshape(embeddings, [-1, patch_count(audio.shape[-1]), EMBEDDING_SIZE])

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        """(None, n_patches, 1024)."""
        return tf.TensorShape([None, patch_count(int(tf.TensorShape(input_shape)[-1])), EMBEDDING_SIZE])

    def get_config(self) -> dict[str, Any]:
        """Serialisable configuration."""
        return {**super().get_config(), "trainable_body": self.trainable_body}


class Lean(_AudioBackbone):
    """LEAN (wave-encoder BiLSTM + YAMNet, cross-attention) on raw 16 kHz audio: (steps, 1, 512) per chunk."""

    class Options(Options):
        """Options of the ``lean`` backbone (recipe section ``model.backbone``)."""

        lstm_units: int = Field(128, ge=1, description="Units per direction of the two BiLSTM layers (paper: 128).")
        projection: int = Field(256, ge=1, description="Size of YAMNet's projected embeddings (paper: 256).")
        heads: int = Field(4, ge=1, description="Cross-attention heads (projection must be a multiple).")
        yamnet_trainable: bool = Field(False, description="Fine-tune YAMNet too (default: frozen, inference mode).")

        @model_validator(mode="after")
        def _heads_split_projection(self) -> Lean.Options:
            if self.projection % self.heads:
                raise ValueError(f"projection ({self.projection}) must be a multiple of heads ({self.heads})")
            return self

    def build(self, *, input_shape: tuple[int, ...]) -> tf_keras.Model:
        """Build LEAN's feature extractor, randomly initialised (``weights: audioset`` then loads
        YAMNet's weights into its YAMNet layer; the wave encoder, projection and attention always
        start from random initialisation).

        Parameters
        ----------
        input_shape : tuple[int]
            ``(samples,)``: the chunk length at 16 kHz, a multiple of 400 (25 ms).

        Returns
        -------
        tf_keras.Model
            (batch, samples) float32 audio -> (batch, samples / 400, 1, 4 x lstm_units)
            features: [wave encoder (2 x lstm_units), attended YAMNet (2 x lstm_units)].
        """
        o = self.options
        samples = _audio_samples(input_shape, backbone="lean", multiple=WINDOW_SAMPLES)
        steps = samples // WINDOW_SAMPLES
        audio = tf_keras.Input((samples,), name="audio")

        wave = tf_keras.layers.Reshape((steps, WINDOW_SAMPLES), name="wave_patches")(audio)
        for index in (1, 2):
            # RNN(LSTMCell), not LSTM: TFLite's fused (UNIDIRECTIONAL_SEQUENCE_LSTM) op keeps its
            # state in variable tensors that carry over from one invocation to the next.
            lstm = tf_keras.layers.RNN(tf_keras.layers.LSTMCell(o.lstm_units), return_sequences=True)
            wave = tf_keras.layers.Bidirectional(lstm, name=f"wave_bilstm{index}")(wave)

        yamnet = YamnetEmbeddings(trainable_body=o.yamnet_trainable, name="yamnet")
        embeddings = tf_keras.layers.Dense(o.projection, name="yamnet_projection")(yamnet(audio))
        attention = tf_keras.layers.MultiHeadAttention(
            num_heads=o.heads, key_dim=o.projection // o.heads, name="cross_attention"
        )
        attended = attention(query=wave, value=embeddings, key=embeddings)  # (batch, steps, 2 x units)
        joined = tf_keras.layers.Concatenate(name="lean_concat")([wave, attended])
        features = tf_keras.layers.Reshape((steps, 1, 4 * o.lstm_units), name="lean_features")(joined)
        return tf_keras.Model(audio, features, name="lean")

    def load_pretrained(self, model: tf_keras.Model, path: Path) -> None:
        """Load YAMNet's weights (a SavedModel folder or a converted ``.h5``) into the YAMNet layer."""
        load_yamnet(model.get_layer("yamnet").body, path)
