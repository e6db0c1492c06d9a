"""Data-parallel training on CPU: MirroredStrategy over two logical devices, two workers on localhost."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT, write_recipe
from dsplug.distribute import chief_from_environment
from test_run import RECIPE, small_manifest

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def recipe_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dist")
    text = RECIPE.format(manifest=small_manifest(folder, per_class=4))
    text = text.replace("phase1: {epochs: 2}, phase2: {epochs: 1, finetune_layers: 10}", "phase1: {epochs: 2}, phase2: {epochs: 0}")
    return write_recipe(folder / "dist.yaml", text + "augment: {policy: none}\n")


MIRRORED = textwrap.dedent(
    """
    import json, os, sys, tempfile
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from dsplug import data as data_stage
    from dsplug.distribute import make_strategy
    from dsplug.pipeline import build_pipeline
    from dsplug.recipe.spec import PipelineSpec
    from dsplug.recipe.loader import load_recipe
    from dsplug.workflows.run import _splits
    from dsplug.workflows.run import trainer_for

    results = {}
    for name, batch in (("none", 16), ("mirrored", 8)):  # the same global batch of 16
        [point] = load_recipe(sys.argv[1], overrides=[f"train.distribute={name}", f"train.batch_size={batch}",
                                                      "train.scale_lr=false", "train.cache_features=false"])
        recipe = point.recipe
        manifest = data_stage.load_manifest(recipe.data.manifest)
        chunks = {"train": data_stage.decode_chunks(manifest.partition("train"), sample_rate=16000, chunk_seconds=0.5, hop_seconds=0.25, pad_mode="zero")}
        split = _splits(manifest, chunks)["train"]
        strategy = make_strategy(name)
        with strategy.scope():
            pipeline = build_pipeline(PipelineSpec.of(recipe), num_outputs=5)
        trainer = trainer_for(recipe, pipeline=pipeline, run_dir=tempfile.mkdtemp(), strategy=strategy)
        fit = trainer.fit(split, None, recipe_hash=point.hash)
        results[name] = {"replicas": strategy.num_replicas_in_sync, "losses": [h["loss"] for h in fit.history],
                         "weights": [w.tolist() for w in pipeline.head.get_weights()]}
    print("RESULT" + json.dumps(results))
    """
)


def test_mirrored_on_two_logical_cpus_equals_no_strategy(recipe_path, tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    result = subprocess.run([sys.executable, str(script), str(recipe_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.split("RESULT", 1)[1])
    assert data["none"]["replicas"] == 1 and data["mirrored"]["replicas"] == 2
    np.testing.assert_allclose(data["mirrored"]["losses"], data["none"]["losses"], rtol=1e-4)
    for a, b in zip(data["mirrored"]["weights"], data["none"]["weights"]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-3, atol=1e-5)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _two_workers(recipe_path, out, *overrides):
    """``dsplug run`` as two workers on localhost (TF_CONFIG); their outputs once both finished."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        command = [sys.executable, "-m", "dsplug.cli", "run", str(recipe_path), "--out", str(out),
                   "--set", "train.distribute=multiworker", "--set", "train.batch_size=4", "--set", "evaluate.bootstrap=0",
                   "--set", "train.scale_lr=false", *[arg for o in overrides for arg in ("--set", o)]]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT))
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    return outputs


def test_two_workers_on_localhost_train_and_only_the_chief_writes(recipe_path, tmp_path):
    out = tmp_path / "run"
    outputs = _two_workers(recipe_path, out)
    assert "data parallel: 2 replicas" in outputs[0] and "global batch 8" in outputs[0]
    assert "worker done: the chief writes the run directory" in outputs[1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"devel", "test"} and "uar" in metrics["test"]
    assert (out / "model.tflite").is_file()
    # the same global batch in one process gives a close loss curve
    single = tmp_path / "single"
    done = subprocess.run([sys.executable, "-m", "dsplug.cli", "run", str(recipe_path), "--out", str(single),
                           "--set", "train.batch_size=8", "--set", "evaluate.bootstrap=0", "--set", "train.distribute=none"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    import csv

    multi = [float(r["loss"]) for r in csv.DictReader(open(out / "history.csv"))]
    one = [float(r["loss"]) for r in csv.DictReader(open(single / "history.csv"))]
    np.testing.assert_allclose(multi, one, rtol=0.05)


def test_two_workers_read_only_their_own_shard_files(recipe_path, tmp_path):
    """Chunks on disk under multiworker: every epoch each worker reads its own shard files (FILE
    auto-sharding), together all of them, and both take the same number of steps."""
    import re

    out = tmp_path / "run"
    outputs = _two_workers(recipe_path, out, "data.storage=disk", f"data.cache_dir={tmp_path / 'cache'}")
    pattern = re.compile(r"worker (\d) of 2, epoch (\d+): reads (\d+) of (\d+) shard files \((\d+) chunks\): ([^;]*); (\d+) steps")
    epochs = {}
    for output in outputs:
        for worker, epoch, count, total, chunks, names, steps in pattern.findall(output):
            epochs.setdefault(int(epoch), {})[int(worker)] = (set(names.split(", ")), int(total), int(steps))
    assert sorted(epochs) == [1, 2], outputs[0][-3000:]
    for shares in epochs.values():
        (first, total, steps), (second, _, other_steps) = shares[0], shares[1]
        assert first and second and not first & second and len(first | second) == total
        assert steps == other_steps
    assert epochs[1][0][0] != epochs[2][0][0]  # a new share of the files every epoch
    assert "worker done: the chief writes the run directory" in outputs[1]
    assert json.loads((out / "data.json").read_text())["storage"]["storage"] == "disk"
    assert "uar" in json.loads((out / "metrics.json").read_text())["test"]


@pytest.mark.parametrize(
    ("config", "chief"),
    [
        ({}, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
    ],
)
def test_chief_from_tf_config(monkeypatch, config, chief):
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert chief_from_environment() is chief


def test_mixed_precision_and_xla_train_and_export_float32(recipe_path, tmp_path):
    """The GPU switches also run on CPU: training in mixed_float16 under XLA, export stays float32."""
    result = subprocess.run([sys.executable, "-m", "dsplug.cli", "run", str(recipe_path), "--out", str(tmp_path / "mp"),
                             "--set", "train.mixed_precision=true", "--set", "train.xla=true", "--set", "augment.policy=sapaugment",
                             "--set", "train.cache_features=false", "--set", "evaluate.bootstrap=0", "--set", "train.distribute=none"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    export = json.loads((tmp_path / "mp" / "export.json").read_text())
    assert export["parity_fp32"]["max_abs_diff"] < 1e-4
