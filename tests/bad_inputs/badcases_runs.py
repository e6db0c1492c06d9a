"""The bad-input corpus, part 2: audio, ``.pth`` weights, output paths, run directories, exported
models and the commands that read them. Cases are added to :data:`badcases.CASES`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import badfiles as bf
from badcases import Build, case, valid, validate
from badfiles import BAD_AUDIO, BAD_PTH, ODD_AUDIO, dataset


# ------------------------------------------------------------------------------------ audio
def bad_file(kind: str, name: str = "bad.wav") -> Callable:
    def make(folder: Path) -> Path:
        path = folder / name
        BAD_AUDIO[kind](path)
        return path
    return make


for kind in BAD_AUDIO:
    case("audio-plot", kind, lambda f, k=kind: ["plot", str(bad_file(k)(f)), "-o", "out.png"], "bad.wav", absent=("out.png",))
    case("audio-run", kind, lambda f, k=kind: ["run", str(dataset(f, bad={"x_train_0.wav": k})), "--out", "out"],
         "x_train_0.wav", "manifest line 2", "data.on_bad_file: skip")
    case("audio-predict", kind, lambda f, k=kind: ["predict", str(bf.model_files(f)), str(bad_file(k)(f))], "bad.wav")
for kind in ("empty", "rate-0hz", "rate-1hz", "nan-samples", "bits-0", "mp3-garbage"):
    bad = {f"y_train_{i}.wav": kind for i in range(3)}
    case("audio-skip", kind, lambda f, b=bad: ["run", str(dataset(f, bad=b, on_bad_file="skip")), "--out", "out"],
         "after skipping undecodable files", "'y' (3 skipped) have no training audio")
case("audio-skip", "every-file", lambda f: ["run", str(dataset(f, bad={f"{c}_{p}_{i}.wav": "empty" for c in "xy" for p in ("train", "devel", "test") for i in range(3)}, on_bad_file="skip")), "--out", "out"],
     "audio could be decoded", "skipped")
for kind in ODD_AUDIO:
    def odd(folder: Path, kind: str = kind) -> list[str]:
        ODD_AUDIO[kind](folder / "odd.wav")
        return ["plot", str(folder / "odd.wav"), "-o", "out.png"]
    case("audio-odd", kind, odd, "wrote out.png", code=0)
case("audio-plot", "missing", lambda f: ["plot", "gone.wav", "-o", "out.png"], "'gone.wav' does not exist", absent=("out.png",))
case("audio-plot", "folder", lambda f: (f / "d.wav").mkdir() or ["plot", "d.wav", "-o", "out.png"], "'d.wav' is a folder", absent=("out.png",))
case("audio-plot", "chunk-out-of-range", lambda f: [str(bf.write_tone(f / "t.wav")) and "plot", "t.wav", "-o", "out.png", "--chunk", "9"],
     "--chunk 9 is out of range", absent=("out.png",))
case("audio-plot", "override-without-recipe", lambda f: ["plot", str(bf.write_tone(f / "t.wav")), "-o", "o.png", "--set", "seed=1"],
     "--set needs --recipe", absent=("o.png",))


# ------------------------------------------------------------------------------------- .pth
for kind in BAD_PTH:
    def pth(folder: Path, kind: str = kind) -> list[str]:
        bf.bad_pth(kind, folder / "bad.pth")
        return validate("model.backbone.name=mobilenet_v2_torchvision", "model.backbone.weights=bad.pth")(folder)
    case("pth", kind, pth, "bad.pth")
case("pth", "zip-bomb-names-the-bomb", lambda f: bf.bad_pth("zip-bomb", f / "bad.pth") and
     validate("model.backbone.name=mobilenet_v2_torchvision", "model.backbone.weights=bad.pth")(f), "more than 4 times the file's", "zip bomb")
case("pth", "code-execution-refused", lambda f: bf.bad_pth("os-system", f / "bad.pth") and
     validate("model.backbone.name=mobilenet_v2_torchvision", "model.backbone.weights=bad.pth")(f), "refused global os.system")
case("pth", "run-refused-before-decoding", lambda f: bf.bad_pth("zip-bomb-header", f / "bad.pth") and
     ["run", str(valid(f)), "--set", "model.backbone.name=mobilenet_v2_torchvision", "--set", "model.backbone.weights=bad.pth", "--out", "out"],
     "bad.pth", "zip bomb", absent=("out",))


# ------------------------------------------------------------------------------ output paths
def touch(folder: Path, name: str = "f.txt") -> Path:
    (folder / name).write_text("keep me\n")
    return folder / name


def run_out(out: str) -> Callable:
    return lambda f: (touch(f), ["run", str(valid(f)), "--out", out])[1]


case("out-path", "run-out-is-a-file", run_out("f.txt"), "'f.txt' is a file, not a folder")
case("out-path", "run-out-in-proc", run_out("/proc/dsplug-run"), "/proc is not writable")
case("out-path", "run-out-under-a-file", run_out("f.txt/sub"), "f.txt is a file, not a folder")
case("out-path", "run-default-runs-is-a-file", lambda f: (touch(f, "runs"), ["run", str(valid(f))])[1], "runs is a file, not a folder")
case("out-path", "sweep-point-out-is-a-file", lambda f: (touch(f, "sw"), ["run", str(valid(f)), "--set", "sweep.seed=[1,2]", "--out", "sw"])[1],
     "'sw", "is a file, not a folder")
for name, out, expect in [("folder", "d", "'d' is a folder; give a file name"), ("proc", "/proc/x.png", "/proc is not writable"),
                          ("under-a-file", "f.txt/x.png", "'f.txt' is a file, not a folder")]:
    def plot(folder: Path, out: str = out) -> list[str]:
        (folder / "d").mkdir()
        touch(folder)
        return ["plot", str(bf.write_tone(folder / "t.wav")), "-o", out]
    case("out-path", f"plot-{name}", plot, expect)

    def predict(folder: Path, out: str = out.replace(".png", ".csv")) -> list[str]:
        (folder / "d").mkdir()
        touch(folder)
        return ["predict", str(bf.model_files(folder)), str(bf.write_tone(folder / "t.wav")), "--csv", out]
    case("out-path", f"predict-csv-{name}", predict, expect.replace(".png", ".csv"))

    def manifest_out(folder: Path, out: str = out.replace(".png", ".csv")) -> list[str]:
        (folder / "d").mkdir()
        touch(folder)
        bf.write_tone(folder / "data" / "x" / "1.wav")
        return ["manifest", str(folder / "data"), "-o", out]
    case("out-path", f"manifest-{name}", manifest_out, expect.replace(".png", ".csv"))

    def init_out(folder: Path, out: str = out.replace(".png", ".yaml")) -> list[str]:
        (folder / "d").mkdir()
        touch(folder)
        valid(folder)
        return ["init", "m.csv", "-o", out, "--force"]
    case("out-path", f"init-{name}", init_out, expect.replace(".png", ".yaml"))
case("out-path", "init-existing-recipe", lambda f: ["init", str(valid(f).parent / "m.csv"), "-o", "r.yaml"], "r.yaml' exists; pass --force", "--force")
case("out-path", "export-run-dir-in-proc", lambda f: ["export", "/proc"], "/proc is not writable")
case("out-path", "export-run-dir-is-a-file", lambda f: ["export", str(touch(f))], "f.txt")
case("out-path", "explain-out-in-proc", lambda f: ["explain", "run", str(bf.write_tone(f / "t.wav")), "-o", "/proc/x.png"], "/proc is not writable")
case("out-path", "sweep-out-is-a-file", lambda f: (touch(f), ["sweep", str(valid(f)), "--set", "sweep.seed=[1,2]", "--out", "f.txt"])[1],
     "'f.txt' is a file, not a folder")
case("out-path", "compare-out-is-a-file", lambda f: (touch(f), ["compare", str(valid(f)), "--backbones", "mobilenet_v2", "--out", "f.txt"])[1],
     "'f.txt' is a file, not a folder")


# ---------------------------------------------------------------------------- run directories
def point_hash(recipe: Path) -> str:
    from dsplug.recipe.loader import load_recipe

    return load_recipe(recipe)[0].hash


def record(out: Path, *, recipe_hash: str, finished: bool, name: str = "tiny", extra: dict[str, object] | None = None) -> None:
    """A run directory's records as ``dsplug run`` leaves them."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps({"recipe_hash": recipe_hash, "name": name, "dsplug_version": "0", "finished": finished}))
    (out / "recipe.yaml").write_text("name: " + name + "\n")
    for file, content in (extra or {}).items():
        (out / file).write_text(json.dumps(content))


FINISHED = {"data.json": {"files": 10, "partitions": {}}, "metrics.json": {"test": {"uar": 0.5}}}


def other_run(*, finished: bool, default_out: bool = False) -> Callable:
    def build(folder: Path) -> list[str]:
        recipe = valid(folder)
        record(folder / ("runs/tiny" if default_out else "out"), recipe_hash="0123456789abcdef", name="other", finished=finished, extra=FINISHED)
        return ["run", str(recipe)] + ([] if default_out else ["--out", "out"])
    return build


case("run-dir", "finished-run-of-another-recipe", other_run(finished=True), "holds a run of a different recipe ('other'")
case("run-dir", "unfinished-run-of-another-recipe", other_run(finished=False), "holds a run of a different recipe")
case("run-dir", "same-name-other-recipe", other_run(finished=True, default_out=True), "runs/tiny holds a run of a different recipe")


def same_recipe_finished(folder: Path) -> list[str]:
    recipe = valid(folder)
    record(folder / "out", recipe_hash=point_hash(recipe), finished=True, extra=FINISHED)
    return ["run", str(recipe), "--out", "out"]


case("run-dir", "finished-run-is-reported", same_recipe_finished, "already holds this recipe's finished run", code=0)


def damaged(content: str, *, name: str = "run.json") -> Callable:
    def build(folder: Path) -> list[str]:
        recipe = valid(folder)
        (folder / "out").mkdir()
        (folder / "out" / name).write_text(content)
        return ["run", str(recipe), "--out", "out"]
    return build


case("run-dir", "run-json-truncated", damaged('{"recipe_hash": "01'), "run.json is damaged or unreadable")
case("run-dir", "run-json-a-list", damaged("[1, 2]"), "run.json is not a dsplug run record")
case("run-dir", "run-json-binary", damaged("\x00\x01"), "run.json is damaged or unreadable")
case("run-dir", "recipe-without-run-record", damaged("name: old\n", name="recipe.yaml"), "holds a run without a run record")


def locked(holder: dict[str, object] | None, *, out: str = "out") -> Callable:
    def build(folder: Path) -> list[str]:
        recipe = valid(folder)
        (folder / out).mkdir(exist_ok=True)
        (folder / out / ".dsplug.lock").write_text("" if holder is None else json.dumps(holder))
        return ["run", str(recipe), "--out", out]
    return build


case("run-dir", "locked-by-a-live-process", locked({"host": socket.gethostname(), "pid": os.getpid(), "command": "dsplug run"}),
     "out is in use by dsplug run", f"pid {os.getpid()}")
case("run-dir", "locked-on-another-host", locked({"host": "elsewhere", "pid": 1, "command": "dsplug export"}), "in use by dsplug export", "elsewhere")
case("run-dir", "lock-being-written", locked(None), "in use by another dsplug command (it is writing")


def stale_lock(folder: Path) -> list[str]:
    """A lock left by a process that died: taken over (the run then stops at a bad file)."""
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()
    args = locked({"host": socket.gethostname(), "pid": gone.pid, "command": "dsplug run"})(folder)
    dataset(folder, bad={"x_train_0.wav": "empty"})
    return args


case("run-dir", "stale-lock-taken-over", stale_lock, "x_train_0.wav", "manifest line 2", absent=("out/.dsplug.lock",),
     may_change=("out/.dsplug.lock",))


def resume_with(state: str | None, *, checkpoint: bytes | None = None) -> Callable:
    """An unfinished run of this recipe whose training state is damaged (refused at resume)."""
    def build(folder: Path) -> list[str]:
        recipe = valid(folder)
        out = folder / "out"
        record(out, recipe_hash=point_hash(recipe), finished=False)
        (out / "recipe.yaml").unlink()
        ckpt = out / "checkpoints"
        ckpt.mkdir()
        text = state if state is not None else json.dumps({
            "recipe_hash": point_hash(recipe), "phase": 1, "epoch_in_phase": 1, "history": [{"epoch": 1, "phase": 1, "loss": 1.0}],
            "best_score": 0.5, "best_epoch": 1, "done": False, "stale": 0, "checkpoint": "last-0001-1"})
        (ckpt / "state.json").write_text(text)
        if checkpoint is not None:
            (ckpt / "last-0001-1.index").write_bytes(checkpoint)
            (ckpt / "last-0001-1.data-00000-of-00001").write_bytes(checkpoint)
        return ["run", str(recipe), "--out", "out"]
    return build


case("resume", "state-truncated", resume_with('{"recipe_hash": "ab'), "state.json is damaged or unreadable", "delete", "checkpoints")
case("resume", "state-not-a-state", resume_with('{"a": 1}'), "state.json is not a dsplug training state")
case("resume", "checkpoint-missing", resume_with(None), "names the checkpoint 'last-0001-1', which is missing")
case("resume", "checkpoint-damaged", resume_with(None, checkpoint=b"\x00garbage" * 10), "checkpoint", "is damaged or does not fit", "delete")


def real_checkpoint(damage: str) -> Callable:
    """A real TensorFlow checkpoint (a small model's weights and Adam state), then damaged: bits
    flipped in its index (once an IndexError inside the restore), or its data file truncated."""
    def build(folder: Path) -> list[str]:
        import tensorflow as tf
        import tf_keras

        args = resume_with(None)(folder)
        model = tf_keras.Sequential([tf_keras.layers.Dense(4, input_shape=(3,)), tf_keras.layers.Dense(2)])
        prefix = folder / "out" / "checkpoints" / "last-0001-1"
        tf.train.Checkpoint(model=model, optimizer=tf_keras.optimizers.Adam()).write(str(prefix))
        index, data = Path(f"{prefix}.index"), Path(f"{prefix}.data-00000-of-00001")
        if damage == "index-bits":
            raw = bytearray(index.read_bytes())
            for at in range(8, len(raw) - 48, 7):
                raw[at] ^= 0x5A
            index.write_bytes(bytes(raw))
        else:
            data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 3])
        return args
    return build


case("resume", "checkpoint-index-bits-flipped", real_checkpoint("index-bits"), "checkpoint", "is damaged or does not fit", "delete")
case("resume", "checkpoint-data-truncated", real_checkpoint("truncated"), "checkpoint", "is damaged or does not fit", "delete")


# --------------------------------------------------------------------------- sweep folders
def sweep_over_other_run(folder: Path) -> list[str]:
    recipe = valid(folder)
    record(folder / "sw" / "seed-1", recipe_hash="0123456789abcdef", name="other", finished=True, extra=FINISHED)
    return ["sweep", str(recipe), "--set", "sweep.seed=[1,2]", "--out", "sw"]


case("run-dir", "sweep-point-holds-another-run", sweep_over_other_run, "seed-1 holds a run of a different recipe")


# ---------------------------------------------------------------------------- exported models
def model_with(meta: dict[str, object] | None = None, *, tflite: bytes | None = None, sidecar: str | None = None,
               embedded: bool = True) -> Callable:
    """``dsplug predict`` on a model whose files are damaged or do not belong together (``embedded``:
    the metadata is inside the model as well as in its sidecar, else only in the sidecar)."""
    def build(folder: Path) -> list[str]:
        path = bf.model_files(folder, embedded=embedded)
        if meta is not None:
            document = json.loads(path.with_suffix(".json").read_text())
            document.update(meta)
            path.with_suffix(".json").write_text(json.dumps(document))
        if sidecar is not None:
            path.with_suffix(".json").write_text(sidecar)
        if tflite is not None:
            path.write_bytes(tflite if tflite else path.read_bytes()[:200])
        return ["predict", str(path), str(bf.write_tone(folder / "t.wav"))]
    return build


case("model", "missing", lambda f: ["predict", "gone.tflite", str(bf.write_tone(f / "t.wav"))], "'gone.tflite' does not exist")
case("model", "not-tflite", model_with(tflite=b"PK\x03\x04 not a model" * 20), "is not a TFLite model")
case("model", "truncated-tflite", model_with(tflite=b""), "model.tflite is damaged")
case("model", "sidecar-missing-the-model-describes-itself",
     lambda f: (bf.model_files(f).with_suffix(".json").unlink(), ["predict", str(f / "m" / "model.tflite"), str(bf.write_tone(f / "t.wav"))])[1],
     "t.wav: ", code=0)
case("model", "legacy-without-metadata",
     lambda f: (bf.model_files(f, embedded=False).with_suffix(".json").unlink(), ["predict", str(f / "m" / "model.tflite"), str(bf.write_tone(f / "t.wav"))])[1],
     "has no TFLite Model Metadata inside and no metadata file")
case("model", "sidecar-truncated", model_with(sidecar='{"format": "dsplug-tfl'), "model.json is damaged or unreadable")
case("model", "sidecar-not-dsplug", model_with(sidecar='{"format": "other"}'), "not dsplug model metadata")
case("model", "sidecar-other-chunk-length", model_with({"chunk_seconds": 1.0, "input": {"shape": [1, 16000]}}), "model.tflite", "16000")
case("model", "sidecar-other-classes", model_with({"classes": ["a", "b", "c"], "output": {"shape": [1, 3], "meaning": "probabilities"}}),
     "model.json does not belong to", "classes: ['x', 'y'] inside, ['a', 'b', 'c'] in the sidecar")
case("model", "sidecar-of-another-model", model_with({"recipe_hash": "fedcba9876543210"}), "model.json does not belong to",
     "recipe_hash: '0123456789abcdef' inside, 'fedcba9876543210' in the sidecar")
case("model", "legacy-sidecar-other-chunk-length", model_with({"chunk_seconds": 1.0, "input": {"shape": [1, 16000]}}, embedded=False),
     "the metadata does not belong to", "[1, 16000]")
case("model", "legacy-sidecar-other-classes", model_with({"classes": ["a", "b", "c"], "output": {"shape": [1, 3], "meaning": "probabilities"}}, embedded=False),
     "the model has 2 outputs but the metadata lists 3 classes")
case("model", "run-dir-without-model", lambda f: (f / "run").mkdir() or ["predict", "run", "x.wav"], "run is a folder without model.tflite")
case("model", "aggregate-unknown", lambda f: ["predict", str(bf.model_files(f)), str(bf.write_tone(f / "t.wav")), "--aggregate", "median"],
     "aggregate must be 'mean' or 'vote'")
case("model", "bench-garbage", lambda f: (f / "g.tflite").write_bytes(b"\x00" * 64) and ["bench", "g.tflite"], "is not a TFLite model")
case("model", "stream-bad-file", lambda f: ["stream", str(bf.model_files(f)), "--file", str(bad_file("rate-0hz")(f)), "--fast"], "bad.wav")
case("model", "stream-no-source", lambda f: ["stream", str(bf.model_files(f))], "give exactly one source")


def predict_folder(*extra: tuple[str, str]) -> Callable:
    """A folder of two good recordings plus ``extra`` (name, BAD_AUDIO kind or ``text``)."""
    def build(folder: Path) -> list[str]:
        model = bf.model_files(folder)
        for name in ("a.wav", "b.wav"):
            bf.write_tone(folder / "in" / name)
        for name, kind in extra:
            (folder / "in" / name).write_text("notes\n") if kind == "text" else BAD_AUDIO[kind](folder / "in" / name)
        return ["predict", str(model), "in", "--csv", "p.csv"]
    return build


case("predict-folder", "only-text-files", lambda f: (f / "in").mkdir() or (f / "in" / "a.txt").write_text("x") and ["predict", str(bf.model_files(f)), "in"],
     "holds no audio files")
case("predict-folder", "one-undecodable-file", predict_folder(("c.wav", "rate-0hz")), "skipped 1", "c.wav", code=1)
case("predict-folder", "one-empty-file", predict_folder(("c.wav", "empty")), "skipped 1", "c.wav", code=1)
case("predict-folder", "other-extensions-listed", predict_folder(("notes.txt", "text")), "notes.txt", "skipped", code=1)


# ------------------------------------------------------------------------------------ export
def run_folder(files: dict[str, str]) -> Callable:
    def build(folder: Path) -> list[str]:
        (folder / "run").mkdir()
        for name, content in files.items():
            (folder / "run" / name).write_text(content)
        return ["export", "run"]
    return build


case("export", "missing-run-dir", lambda f: ["export", "gone"], "'gone' does not exist")


def interrupted(command: str) -> Build:
    """A run directory whose run was killed while saving model.keras."""
    def build(folder: Path) -> list[str]:
        record(folder / "run", recipe_hash="0123456789abcdef", finished=False, extra={"data.json": {"classes": ["x", "y"]}})
        (folder / "run" / "model.keras").write_bytes(b"PK\x03\x04 half a model")
        return [command, "run"] + ([str(bf.write_tone(folder / "t.wav"))] if command == "explain" else [])
    return build


case("export", "interrupted-run", interrupted("export"), "the run in run has not finished", "dsplug run RECIPE --out run")
case("export", "explain-interrupted-run", interrupted("explain"), "has not finished", "then run `dsplug explain`")
case("export", "run-in-use", lambda f: (record(f / "run", recipe_hash="0" * 16, finished=True),
                                        locked({"host": socket.gethostname(), "pid": os.getpid(), "command": "dsplug run"}, out="run")(f),
                                        ["export", "run"])[2], "run is in use by dsplug run")
case("export", "empty-run-dir", run_folder({}), "run is not a finished dsplug run directory", "missing")
case("export", "damaged-recipe", run_folder({"recipe.yaml": "data: [unclosed\n", "model.keras": "x"}), "recipe.yaml", "not valid YAML")
case("export", "quantize-unknown", lambda f: run_folder({})(f) + ["--quantize", "int4"], "unknown quantize mode(s) ['int4']")
case("export", "prune-out-of-range", lambda f: run_folder({})(f) + ["--prune", "1.5"], "1.5")
case("export", "explain-missing-run", lambda f: ["explain", "gone", str(bf.write_tone(f / "t.wav"))], "gone")
case("misc", "sweep-summarize-missing", lambda f: ["sweep", "summarize", "gone"], "sweep directory 'gone' does not exist")
case("misc", "explain-needs-audio-or-examples", lambda f: ["explain", "run"], "give either AUDIO or --examples N")
case("misc", "plugins-unknown-group", lambda f: ["plugins", "head"], "did you mean 'heads'?")



# ------------------------------------------------------------ outputs that would destroy inputs
def _predict_into(target: Callable[[Path, Path, Path], str], *extra: str) -> Build:
    """``dsplug predict MODEL t.wav --csv TARGET``; ``target(folder, model, wav)`` names the CSV."""
    def build(folder: Path) -> list[str]:
        model, wav = bf.model_files(folder), bf.write_tone(folder / "t.wav")
        return ["predict", str(model), str(wav), "--csv", target(folder, model, wav), *extra]
    return build


def _finished_run(folder: Path) -> str:
    (folder / "run").mkdir()
    (folder / "run" / "run.json").write_text(json.dumps({"finished": True, "recipe_hash": "x"}))
    return str(folder / "run" / "p.csv")


case("data-loss", "predict-csv-is-the-input-clip", _predict_into(lambda f, m, w: str(w)), "t.wav' is also an input of this command")
case("data-loss", "predict-csv-is-the-input-clip-forced", _predict_into(lambda f, m, w: str(w), "--force"), "is also an input of this command")
case("data-loss", "predict-csv-is-the-model-forced", _predict_into(lambda f, m, w: str(m), "--force"), "model.tflite' is also an input")
case("data-loss", "predict-csv-is-a-clip-in-an-input-folder", lambda f: ["predict", str(bf.model_files(f)), str(f / "in"), "--csv", str(bf.write_tone(f / "in" / "a.wav")), "--force"],
     "a.wav' is also an input")
case("data-loss", "predict-csv-replaces-a-manifest", _predict_into(lambda f, m, w: str(touch(f, "manifest.csv"))), "manifest.csv' exists; pass --force")
case("data-loss", "predict-csv-inside-a-finished-run", _predict_into(lambda f, m, w: _finished_run(f), "--force"), "is inside the finished run", "write the predictions CSV elsewhere")
case("data-loss", "manifest-out-exists", lambda f: (bf.write_tone(f / "data" / "x" / "1.wav"), ["manifest", str(f / "data"), "-o", str(touch(f, "existing.yaml"))])[1],
     "existing.yaml' exists; pass --force")
case("data-loss", "init-out-is-its-manifest", lambda f: (valid(f), ["init", str(f / "m.csv"), "-o", str(f / "m.csv"), "--force"])[1], "m.csv' is also an input of this command")
case("model", "predict-threads-100000", lambda f: ["predict", str(bf.model_files(f)), str(bf.write_tone(f / "t.wav")), "--threads", "100000"],
     "threads must be a whole number from 1 to")


# ------------------------------------------------------------ round 3: values and paths the corpus missed
from badcases import recipe_file  # noqa: E402

for name, content, expect in [
    ("date-name", "version: 1\nname: 2001-12-14\ndata: {manifest: m.csv}\n", "name: YAML reads 2001-12-14 as a date; quote it"),
    ("binary-name", "version: 1\nname: !!binary aGVsbG8=\ndata: {manifest: m.csv}\n", "name: a !!binary value cannot be a recipe value"),
    ("set-seed", "version: 1\nname: x\nseed: !!set {1, 2}\ndata: {manifest: m.csv}\n", "seed: a !!set value cannot be a recipe value"),
    ("merge-key-is-yaml", "version: 1\nname: x\nx-common: &c {manifest: m.csv}\ndata:\n  <<: *c\n", "x-common: unknown key"),
]:
    case("recipe-values", name, recipe_file(content), expect)


def _manifest_at(target: Callable[[Path], str]) -> Build:
    def build(folder: Path) -> list[str]:
        valid(folder)
        return ["validate", str(folder / "r.yaml"), "--set", f"data.manifest={target(folder)}"]
    return build


def _loop(folder: Path) -> str:
    (folder / "loop1").symlink_to(folder / "loop2")
    (folder / "loop2").symlink_to(folder / "loop1")
    return str(folder / "loop1")


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "pipe.csv")
    return str(folder / "pipe.csv")


case("manifest-path", "symlink-loop", _manifest_at(_loop), "loop1' cannot be followed", "point data.manifest at the real CSV")
case("manifest-path", "dev-zero", _manifest_at(lambda f: "/dev/zero"), "'/dev/zero' is not a regular file or a folder")
case("manifest-path", "fifo", _manifest_at(_fifo), "pipe.csv' is not a regular file or a folder")
case("out-path", "plot-not-an-image-format", lambda f: ["plot", str(bf.write_tone(f / "t.wav")), "-o", "out.txt"], "out.txt': .txt is not an image format",
     absent=("out.txt",))


def embedded_with(changes: dict[str, object], *, extra: bytes = b"") -> Build:
    """``dsplug predict`` on a model whose embedded metadata has ``changes`` (no sidecar), with
    ``extra`` bytes appended (a zip archive packed after the model)."""
    def build(folder: Path) -> list[str]:
        from dsplug.artifacts import tflite_metadata
        from dsplug.artifacts.metadata import CARD_FILE

        path = bf.model_files(folder)
        card = {**json.loads(path.with_suffix(".json").read_text()), **changes}
        tagged = tflite_metadata.write_audio_classifier_metadata(  # as ModelMetadata.to_tflite, unchecked
            bf.plain_model(), labels=card["classes"], sample_rate=card["sample_rate"], name="tiny", description="", version="x",
            files={CARD_FILE: ("card", json.dumps(card).encode())},
        )
        path.write_bytes(tagged + extra)
        path.with_suffix(".json").unlink()
        return ["predict", str(path), str(bf.write_tone(folder / "t.wav"))]
    return build


def _zip_bomb() -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("labels.txt", b"\0" * 200_000_000)  # 200 MB of zeros: about 200 kB packed
    return out.getvalue()


case("model-metadata", "hop-of-one-sample", embedded_with({"hop_seconds": 1 / 16000}), "model.tflite", "hop_seconds=6.25e-05 is too short")
case("model-metadata", "duplicate-class-names", embedded_with({"classes": ["x", "x"]}), "model.tflite", "class names repeated: 'x'")
case("model-metadata", "packed-zip-bomb", embedded_with({}, extra=_zip_bomb()), "packs 1 files of 200,000,000 bytes", "not a dsplug model or it was altered")


case("manifest", "label-with-a-line-break", lambda f: (valid(f), (f / "m.csv").write_text((f / "m.csv").read_text().replace(",x,", ',"x\ny",', 1)), ["validate", str(f / "r.yaml")])[2],
     "holds a line break, tab or NUL")
case("manifest", "multilabel-row-of-only-semicolons", lambda f: (valid(f), (f / "m.csv").write_text((f / "m.csv").read_text().replace(",x,", ",;,", 1)), ["validate", str(f / "r.yaml"), "--set", "data.task=multilabel"])[2],
     "names no class")
case("recipe-values", "cache-dir-is-dev-null", validate("data.cache_dir=/dev/null"), "data.cache_dir: '/dev/null' is not a folder")
case("pth", "weights-path-etc-passwd", validate("model.backbone.weights=/etc/passwd"), "'/etc/passwd'", "is not a weights file (no extension)")


def _other_keras(folder: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(folder / "other.keras", "w") as archive:  # what model.save("x.keras") writes
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    return validate(f"model.backbone.weights={folder / 'other.keras'}")(folder)


case("pth", "weights-path-a-saved-model-not-weights", _other_keras, "other.keras'", "is a whole saved model (.keras), not its weights")


def _export_web_to(target: str) -> Build:
    """``dsplug export RUN --web TARGET`` on a finished run (its record only: nothing is exported)."""
    def build(folder: Path) -> list[str]:
        (folder / "run").mkdir()
        (folder / "run" / "run.json").write_text(json.dumps({"finished": True, "recipe_hash": "0123456789abcdef", "name": "x"}))
        bundle = Path(__file__).resolve().parents[1] / "web" / "node_modules" / "@mediapipe" / "tasks-audio"
        return ["export", "run", "--web", target, "--mediapipe", str(bundle)]
    return build


case("out-path", "export-web-in-proc", _export_web_to("/proc/web"), "/proc is not writable")
case("recipe-values", "name-like-an-option", validate("name=-rf"), "name: '-rf' starts with '-'", "start the name with a letter or digit")


def _flipped(fraction: float) -> Build:
    """``dsplug predict`` on the tiny model with one bit flipped at ``fraction`` of its length (its weights)."""
    def build(folder: Path) -> list[str]:
        path = bf.model_files(folder)
        path.with_suffix(".json").unlink()  # the model alone, as on a device
        content = bytearray(path.read_bytes())
        content[int(len(content) * fraction)] ^= 0x10
        path.write_bytes(bytes(content))
        return ["predict", str(path), str(bf.write_tone(folder / "t.wav"))]
    return build


for fraction in (0.3, 0.5, 0.7):
    case("model-integrity", f"bit-flipped-at-{fraction}", _flipped(fraction), "model.tflite was altered after export", "copy the model again")
case("audio-skip", "every-devel-file", lambda f: ["run", str(dataset(f, bad={f"{c}_devel_0.wav": "empty" for c in "xy"}, on_bad_file="skip")), "--out", "out"],
     "no devel audio could be decoded: all 2 devel file(s) were skipped", "devel needs at least one readable file")
