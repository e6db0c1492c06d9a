"""TFLite Model Metadata: written into a .tflite, read back, checked against the model (TF-free code).

The models are tiny Keras nets converted here (float32 IO, and int8 IO for the refusal); the
runtime's handling of a real exported run is in test_model_api.py.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from dsplug.artifacts import ModelMetadata, tflite_metadata
from dsplug.artifacts.metadata import OutputInfo, TensorInfo
from dsplug.errors import ExportError, MetadataMissing

LABELS = ["kick", "snare", "hat"]


def convert(*, integer_io: bool = False, outputs: int = 3, samples: int = 800) -> bytes:
    import tensorflow as tf
    import tf_keras

    inputs = tf_keras.Input((samples,))
    hidden = tf_keras.layers.Dense(8, activation="relu", kernel_initializer=tf_keras.initializers.RandomNormal(seed=1))(inputs)
    net = tf_keras.Model(inputs, tf_keras.layers.Dense(outputs, activation="softmax")(hidden))
    spec = tf.TensorSpec((1, samples), tf.float32, name="audio")
    function = tf.function(lambda audio: net(audio, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], net)
    if integer_io:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        frames = np.random.default_rng(0).uniform(-1, 1, (8, samples)).astype(np.float32)
        converter.representative_dataset = lambda: ([f[None, :]] for f in frames)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return bytes(converter.convert())


@pytest.fixture(scope="module")
def plain() -> bytes:
    return convert()


def outputs_of(model: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def write(model: bytes, **kwargs) -> bytes:
    options = dict(labels=LABELS, sample_rate=16000, name="drums", description="three drums", version="7")
    return tflite_metadata.write_audio_classifier_metadata(model, **{**options, **kwargs})


def test_metadata_round_trip_keeps_the_model_bit_identical(plain):
    card = b'{"hello": 1}'
    tagged = write(plain, author="dsplug", custom={"recipe_hash": "abc", "chunk_seconds": 0.05},
                   files={"card.json": ("a card", card)})
    meta = tflite_metadata.read_metadata(tagged)
    assert (meta.name, meta.description, meta.version, meta.author) == ("drums", "three drums", "7", "dsplug")
    assert (meta.sample_rate, meta.channels, meta.labels) == (16000, 1, LABELS)
    assert meta.custom == {"dsplug": {"recipe_hash": "abc", "chunk_seconds": 0.05}}
    assert meta.min_parser_version == "1.5.0"  # custom metadata; audio properties alone need 1.3.0
    assert meta.packed_files == {"labels.txt": b"kick\nsnare\nhat\n", "card.json": card}
    assert (meta.input_shape, meta.output_shape, meta.input_type) == ([1, 800], [1, 3], "FLOAT32")
    # the .tflite is also a zip archive of its stored (uncompressed) files
    with zipfile.ZipFile(io.BytesIO(tagged)) as archive:
        assert {i.filename: i.compress_type for i in archive.infolist()} == {"labels.txt": 0, "card.json": 0}
    x = np.random.default_rng(1).uniform(-1, 1, (1, 800)).astype(np.float32)
    assert np.array_equal(outputs_of(plain, x), outputs_of(tagged, x))

    # writing again replaces the metadata (no orphan buffer): the same bytes
    assert write(tagged, author="dsplug", custom={"recipe_hash": "abc", "chunk_seconds": 0.05},
                 files={"card.json": ("a card", card)}) == tagged
    assert tflite_metadata.read_metadata(write(plain)).min_parser_version == "1.3.0"


def test_models_without_metadata_and_bad_inputs_are_refused(plain):
    assert not tflite_metadata.has_metadata(plain) and tflite_metadata.packed_files(plain) == {}
    with pytest.raises(MetadataMissing, match="no TFLite Model Metadata.*dsplug export"):
        tflite_metadata.read_metadata(plain)
    with pytest.raises(ExportError, match="not a TFLite model"):
        tflite_metadata.read_metadata(b"PK\x03\x04 not a model at all")
    with pytest.raises(ExportError, match=r"output shape \[1, 3\] does not hold 2 class scores"):
        write(plain, labels=["a", "b"])
    with pytest.raises(ExportError, match="single-line"):
        write(plain, labels=["a", "b\nc", "d"])
    with pytest.raises(ExportError, match="sample_rate must be a positive whole number, got 0"):
        write(plain, sample_rate=0)
    with pytest.raises(ExportError, match="input tensor is INT8.*float32"):
        write(convert(integer_io=True))


def card(**update) -> ModelMetadata:
    fields = dict(
        task="classification", classes=LABELS, sample_rate=16000, chunk_seconds=0.05, hop_seconds=0.05,
        input=TensorInfo(shape=[1, 800]), output=OutputInfo(shape=[1, 3]), recipe_hash="r1", name="drums",
    )
    return ModelMetadata(**{**fields, **update})


def test_model_metadata_is_embedded_and_read_back(plain):
    meta = card()
    tagged = meta.to_tflite(plain)
    read = ModelMetadata.from_tflite(tagged)
    # the card records the checksum of the model's graph and weights, unchanged by the metadata
    assert read == meta.model_copy(update={"weights_sha256": tflite_metadata.weights_digest(plain)})
    assert tflite_metadata.weights_digest(tagged) == tflite_metadata.weights_digest(plain) == read.weights_sha256
    standard = tflite_metadata.read_metadata(tagged)
    assert standard.custom["dsplug"]["recipe_hash"] == "r1" and standard.custom["dsplug"]["chunk_seconds"] == 0.05
    assert json.loads(standard.packed_files["dsplug.json"]) == json.loads(read.to_json())
    # a description that does not fit the model is refused when it is written
    with pytest.raises(ExportError, match="input shape is \\[1, 800\\].*declares \\[1, 1600\\]"):
        card(chunk_seconds=0.1, input=TensorInfo(shape=[1, 1600])).to_tflite(plain)
    # the standard fields and the card must agree
    relabelled = write(tagged, labels=["x", "y", "z"], files={"dsplug.json": ("card", meta.to_json().encode())})
    with pytest.raises(ExportError, match="disagree on labels"):
        ModelMetadata.from_tflite(relabelled)
    # metadata without dsplug's card (another tool's model)
    with pytest.raises(ExportError, match="no dsplug model card"):
        ModelMetadata.from_tflite(write(plain))
    # a regression model: labels are the value names, no probability range
    values = card(task="regression", classes=[], output=OutputInfo(shape=[1, 1], meaning="values"))
    assert tflite_metadata.read_metadata(values.to_tflite(convert(outputs=1))).labels == ["value"]


def test_a_sidecar_must_agree_with_the_embedded_metadata():
    meta = card()
    meta.check_same(card(description="edited by hand"), model="m.tflite", sidecar_path="m.json")  # cosmetic: fine
    with pytest.raises(ExportError, match=r"m\.json does not belong to m\.tflite.*recipe_hash: 'r1' inside, 'r2'.*delete the stale"):
        meta.check_same(card(recipe_hash="r2"), model="m.tflite", sidecar_path="m.json")
    with pytest.raises(ExportError, match="classes"):
        meta.check_same(card(classes=["a", "b", "c"]), model="m.tflite", sidecar_path="m.json")
