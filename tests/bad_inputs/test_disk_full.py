"""A full disk: every command ends in one line naming the path it was writing, leaves nothing
half-written, changes no existing file, and a rerun once space is free ends as the run left alone.

The disk is a real tmpfs of a chosen size, mounted in a private mount namespace (``unshare -rm``,
no privileges needed where user namespaces are enabled; root elsewhere), so the writes fail as
they fail on a full disk: ``ENOSPC`` inside Python, TensorFlow's checkpoint writer, h5py and the
shard writer. The run's recipe trains both phases with shards on that disk, so it fills at every
stage: the chunk cache, checkpoints, best weights, model.keras, TFLite, report.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import badfiles
from webtools import BUNDLE

pytestmark = pytest.mark.heavy

RECIPE = """\
name: full
seed: 2
data: {manifest: ../m.csv, chunk_seconds: 0.5, storage: disk, cache_dir: cache}
frontend: {image_size: [32, 32], n_mels: 32}
model:
  backbone: {name: mobilenet_v2, weights: none}
  head: {name: mlp, units: 8, dropout: 0.25}
train: {batch_size: 4, optimizer: adam, lr: 0.01, phase1: {epochs: 1}, phase2: {epochs: 1, finetune_layers: 20}}
augment: {policy: none}
evaluate: {bootstrap: 0}
"""
#: Half-written things that must never be left: temporary files, TF's checkpoint _temp folders,
#: the best-weights part file, a web app being built.
LEFTOVERS = ("*.part", "*_temp", "*_temp/*", "best-part.weights.h5", ".*.part*", ".part-*")


def dsplug(*args: str) -> str:
    return " ".join(shlex.quote(a) for a in [sys.executable, "-m", "dsplug.cli", *args])


def on_small_disk(folder: Path, *, size: int, commands: list[str], after: list[str] = ()) -> list[dict]:
    """Run ``commands`` with a ``size``-byte tmpfs at ``folder/disk`` (cwd), then ``after`` with it grown to 1 GiB.

    Returns, per command, ``{"rc", "err", "files"}``: exit code, stderr, and the files on the disk
    afterwards (relative paths). The disk's content is copied to ``folder/kept`` at the end.
    """
    disk, logs = folder / "disk", folder / "logs"
    disk.mkdir(exist_ok=True)
    logs.mkdir(exist_ok=True)
    lines = [f"mount -t tmpfs -o size={size} tmpfs {disk}", f"cd {disk}"]
    for number, command in enumerate([*commands, *after]):
        if number == len(commands):
            lines.append(f"mount -o remount,size=1g {disk}")
        lines += [f"{command} > {logs}/{number}.out 2> {logs}/{number}.err; echo $? > {logs}/{number}.rc",
                  f"find . -mindepth 1 | sort > {logs}/{number}.files"]
    lines.append(f"rm -rf {folder}/kept && cp -a {disk} {folder}/kept")
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "DSPLUG_OFFLINE": "1", "PYTHONHASHSEED": "0", "TF_DETERMINISTIC_OPS": "1"}
    prefix = " ".join(f"{k}={v}" for k, v in env.items())
    script = "set -u\n" + "\n".join(lines[:2]) + "\nexport " + prefix + "\n" + "\n".join(lines[2:]) + "\n"
    done = subprocess.run(["unshare", "-rm", "bash", "-c", script], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    return [{"rc": int((logs / f"{n}.rc").read_text()), "err": (logs / f"{n}.err").read_text(),
             "files": (logs / f"{n}.files").read_text().split()} for n in range(len(commands) + len(after))]


def half_written(files: list[str]) -> list[str]:
    return [f for f in files if any(Path(f).match(pattern) for pattern in LEFTOVERS)]


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run left alone on a large disk: its metrics, and the bytes it wrote."""
    folder = tmp_path_factory.mktemp("full")
    badfiles.dataset(folder, per_class=4)
    badfiles.write(folder / "disk-recipe.yaml", RECIPE)
    [result] = on_small_disk(folder, size=2**30, commands=[f"cp {folder}/disk-recipe.yaml r.yaml && " + dsplug("run", "r.yaml", "--out", "run")])
    assert result["rc"] == 0, result["err"][-3000:]
    used = int(subprocess.run(["du", "-sb", str(folder / "kept")], capture_output=True, text=True, check=True).stdout.split()[0])
    return folder, json.loads((folder / "kept" / "run" / "metrics.json").read_text()), used


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.9])
def test_a_run_on_a_full_disk_says_where_and_its_rerun_ends_as_the_run_left_alone(reference, fraction):
    folder, metrics, used = reference
    run = [f"cp {folder}/disk-recipe.yaml r.yaml && " + dsplug("run", "r.yaml", "--out", "run")]
    failed, rerun = on_small_disk(folder, size=max(4096, int(used * fraction)), commands=run, after=run)
    assert failed["rc"] == 2
    line = one_line(failed["err"])
    assert re.match(r"error: (run|cache)/\S+: the disk is full", line), line  # names the path being written (as given: --out run)
    assert half_written(failed["files"]) == []
    assert rerun["rc"] == 0, rerun["err"][-3000:]
    assert json.loads((folder / "kept" / "run" / "metrics.json").read_text()) == metrics


def test_commands_writing_one_file_on_a_full_disk_name_it_and_keep_the_old_one(reference):
    folder, _, _ = reference
    for label in "xy":  # a folder of class folders for `dsplug manifest`
        (folder / "classes" / label).mkdir(parents=True, exist_ok=True)
        for wav in (folder / "a").glob(f"{label}_*.wav"):
            (folder / "classes" / label / wav.name).write_bytes(wav.read_bytes())
    commands = [
        dsplug("manifest", str(folder / "classes"), "-o", "kept.csv", "--force"),
        dsplug("init", str(folder / "m.csv"), "-o", "recipe.yaml"),
        dsplug("predict", str(folder / "kept" / "run"), str(folder / "a" / "x_test_0.wav"), "--csv", "out.csv"),
        dsplug("export", str(folder / "kept" / "run"), "--web", "web", "--mediapipe", str(BUNDLE)),
    ]
    fill = "echo old > kept.csv && (head -c 100000 /dev/zero > filler || true)"  # not a byte left
    results = on_small_disk(folder, size=65536, commands=[fill, *commands])
    assert results[0]["rc"] == 0
    for command, result in zip(commands, results[1:]):
        assert result["rc"] == 2, (command, result["err"][-2000:])
        line = one_line(result["err"])
        assert "the disk is full" in line, (command, line)
        assert half_written(result["files"]) == [], (command, result["files"])
        assert set(result["files"]) == {"./filler", "./kept.csv"}, (command, result["files"])
    assert "kept.csv" in one_line(results[1]["err"]) and (folder / "kept" / "kept.csv").read_text() == "old\n"
    assert "recipe.yaml" in one_line(results[2]["err"])
    assert "out.csv" in one_line(results[3]["err"])
    assert "web" in one_line(results[4]["err"])
