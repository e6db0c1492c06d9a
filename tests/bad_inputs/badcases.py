"""The bad-input corpus: each case builds hostile input in a folder and names the command to run on it,
the exit code and what the one error line must name (a file, a recipe key, a value).

Cases are grouped by kind; :data:`CASES` holds them all. A case's ``build(folder)`` writes files
into ``folder`` (the current directory while the command runs) and returns the command's
arguments. No case trains: inputs are refused before decoding or at decoding, and the few runs
that go further are refused before the first epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

import badfiles as bf
from badfiles import RECIPE, dataset, write

Build = Callable[[Path], list[str]]


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes
    ----------
    id : str
        ``kind/name``.
    build : callable
        Writes the input into a folder, returns the command's arguments.
    code : int
        Expected exit code (2: refused; 0: accepted; 1: done with skipped inputs).
    expect : tuple of str
        Text the error line (or, with code 0, the output) must contain.
    absent : tuple of str
        Paths (relative to the folder) that must not exist afterwards: nothing was written.
    may_change : tuple of str
        Existing files the command may change (a stale lock it takes over); all others must not.
    marks : tuple
        pytest marks (``xfail`` for what needs a fix outside this suite's files).
    """

    id: str
    build: Build
    code: int
    expect: tuple[str, ...]
    absent: tuple[str, ...] = ()
    marks: tuple = ()
    may_change: tuple[str, ...] = ()

    def param(self) -> object:
        return pytest.param(self, id=self.id, marks=self.marks)


CASES: list[Case] = []


def case(kind: str, name: str, build: Build, *expect: str, code: int = 2, absent: tuple[str, ...] = (), marks: tuple = (),
         may_change: tuple[str, ...] = ()) -> None:
    CASES.append(Case(f"{kind}/{name}", build, code, tuple(expect), absent, marks, may_change))


def needs_fix(where: str) -> tuple:
    """Mark a case that fails until a file outside this work is fixed (strict: it must then pass)."""
    return (pytest.mark.xfail(strict=True, reason=f"needs runtime fix: {where}"),)


def valid(folder: Path) -> Path:
    """A valid data set and recipe in ``folder``; returns the recipe."""
    return dataset(folder)


def validate(*overrides: str, recipe_text: str | None = None) -> Build:
    """``dsplug validate r.yaml --set ...`` on the valid data set (the recipe replaced if given)."""
    def build(folder: Path) -> list[str]:
        recipe = valid(folder)
        if recipe_text is not None:
            recipe.write_text(recipe_text)
        return ["validate", str(recipe), *[part for o in overrides for part in ("--set", o)]]
    return build


# ------------------------------------------------------------------------------ recipe files
def recipe_file(content: str | bytes) -> Build:
    def build(folder: Path) -> list[str]:
        valid(folder)
        path = folder / "bad.yaml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return ["validate", str(path)]
    return build


for name, content, expect in [
    ("empty-file", "", "the file is empty"),
    ("top-level-list", "- data\n- model\n", "got list"),
    ("top-level-scalar", "hello\n", "got str"),
    ("unclosed-bracket", "data: {manifest: m.csv\n", "not valid YAML"),
    ("tab-indentation", "data:\n\tmanifest: m.csv\n", "not valid YAML at line 2"),
    ("duplicate-key", "data: {manifest: m.csv}\ndata: {manifest: n.csv}\n", "duplicate key 'data'"),
    ("duplicate-nested-key", "data: {manifest: m.csv, manifest: n.csv}\n", "duplicate key 'manifest'"),
    ("unhashable-key", "? [a, b]\n: 1\ndata: {manifest: m.csv}\n", "a key must be a name"),
    ("binary", b"\xff\xfe\x00\x01binary\x00", "not a text file"),
    ("latin1", "data: {manifest: m\xe9.csv}\n".encode("latin-1"), "not a text file"),
    ("python-tag", "data: !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    ("alias-bomb", bf.alias_bomb(), "expands to more than"),
    ("alias-cycle", "data: &a {manifest: m.csv, x: *a}\n", "expands to more than"),
    ("deep-nesting", bf.deep_nesting(), "nested too deeply"),
    ("huge-integer", "data: {manifest: m.csv}\nseed: " + "9" * 5000 + "\n", "cannot be read"),
    ("oversized", "# " + "x" * 1_100_000 + "\ndata: {manifest: m.csv}\n", "too large for a recipe"),
    ("null-section", "data:\n", "data: expected a mapping, got None"),
    ("missing-data", "name: x\n", "data: required"),
    ("missing-manifest", "data: {task: classification}\n", "data.manifest: required"),
    ("unknown-top-key", "data: {manifest: m.csv}\nmodle: {}\n", "modle: unknown key; did you mean model?"),
    ("unknown-nested-key", "data: {manifest: m.csv, chunk_second: 1}\n", "did you mean data.chunk_seconds?"),
    ("string-for-number", "data: {manifest: m.csv}\ntrain: {batch_size: '8'}\n", "train.batch_size: expected an integer, got '8'"),
    ("bool-for-number", "data: {manifest: m.csv}\ntrain: {batch_size: true}\n", "train.batch_size: expected an integer, got True"),
    ("version-2", "version: 2\ndata: {manifest: m.csv}\n", "version: expected one of 1"),
]:
    case("recipe-file", name, recipe_file(content), expect)
case("recipe-file", "missing", lambda f: ["validate", str(f / "nope.yaml")], "recipe file", "nope.yaml", "does not exist")
case("recipe-file", "folder", lambda f: (f / "d.yaml").mkdir() or ["validate", str(f / "d.yaml")], "d.yaml' is a folder")


# ----------------------------------------------------------------------- values and bounds
for name, override, *expect in [
    ("lr-inf", "train.lr=.inf", "train.lr: expected a finite number, got inf"),
    ("lr-nan", "train.lr=.nan", "train.lr: expected a finite number, got nan"),
    ("lr-zero", "train.lr=0", "train.lr: expected a value > 0, got 0"),
    ("lr-negative", "train.lr=-1", "train.lr: expected a value > 0"),
    ("phase1-lr-inf", "train.phase1.lr=.inf", "train.phase1.lr: expected a finite number"),
    ("phase2-lr-factor-inf", "train.phase2.lr_factor=.inf", "train.phase2.lr_factor: expected a finite number"),
    ("head-dropout-nan", "model.head.dropout=.nan", "model.head.dropout: expected a finite number, got nan"),
    ("head-dropout-1", "model.head.dropout=1", "model.head.dropout: expected a value in [0, 1)"),
    ("head-units-0", "model.head.units=0", "model.head.units: expected an integer in [1, 65536], got 0"),
    ("head-units-huge", "model.head.units=100000000000", "model.head.units: expected an integer in [1, 65536]"),
    ("head-unknown-option", "model.head.unit=8", "model.head.unit: unknown key; did you mean model.head.units?"),
    ("image-size-2000", "frontend.image_size=[2000,2000]", "frontend.image_size: expected [height, width] with sides from 8 to 1024"),
    ("image-size-4", "frontend.image_size=[4,4]", "frontend.image_size", "got [4, 4]"),
    ("image-size-one-side", "frontend.image_size=[32]", "frontend.image_size", "got [32]"),
    ("image-size-text", "frontend.image_size=[a,32]", "frontend.image_size.0: expected an integer, got 'a'"),
    ("image-size-below-backbone", "frontend.image_size=[16,16]", "needs images of at least 32x32", "frontend.image_size"),
    ("n-mels-0", "frontend.n_mels=0", "frontend.n_mels: expected an integer in (0, 512], got 0"),
    ("n-mels-1000", "frontend.n_mels=1000", "frontend.n_mels: expected an integer in (0, 512], got 1000"),
    ("window-longer-than-chunk", "frontend.window_ms=600", "data.chunk_seconds (0.5 s) is shorter than one STFT window"),
    ("window-too-short", "frontend.window_ms=0.5", "frontend.window_ms (0.5 ms) is too short"),
    ("hop-ms-tiny", "frontend.hop_ms=0.0001", "frontend.hop_ms (0.0001 ms) must be at least one sample"),
    ("top-db-inf", "frontend.top_db=.inf", "frontend.top_db: expected a finite number"),
    ("fmax-above-nyquist", "frontend.fmax=9000", "frontend.fmin/fmax", "fmax=9000"),
    ("fmin-above-fmax", "frontend.fmin=5000&frontend.fmax=4000", "frontend.fmin/fmax"),
    ("sample-rate-1", "data.sample_rate=1", "data.sample_rate: expected an integer in [1000, 768000], got 1"),
    ("sample-rate-1e9", "data.sample_rate=1000000000", "data.sample_rate: expected an integer in [1000, 768000]"),
    ("chunk-0", "data.chunk_seconds=0", "data.chunk_seconds: expected a value in (0, 600], got 0"),
    ("chunk-negative", "data.chunk_seconds=-1", "data.chunk_seconds: expected a value in (0, 600]"),
    ("chunk-huge", "data.chunk_seconds=1000000", "data.chunk_seconds: expected a value in (0, 600]"),
    ("chunk-too-many-samples", "data.chunk_seconds=60&data.sample_rate=768000", "more than 16777216"),
    ("hop-seconds-tiny", "data.hop_seconds=0.000001", "data.hop_seconds (1e-06 s) must be at least one sample"),
    ("split-sums-to-1", "data.split.devel=0.5&data.split.test=0.5", "data.split.devel + data.split.test must be below 1"),
    ("p-min-above-p-max", "augment.p_min=0.9&augment.p_max=0.1", "augment.p_min (0.9) must not exceed augment.p_max (0.1)"),
    ("augment-s-inf", "augment.s=.inf", "augment.s: expected a finite number"),
    ("cutmix-size-huge", "augment.methods.0.max_size=100000", "augment.methods.0.max_size: expected an integer in [0, 1024]"),
    ("seed-negative", "seed=-1", "seed: expected an integer in [0, 4294967295], got -1"),
    ("seed-huge", "seed=100000000000000000000", "seed: expected an integer in [0, 4294967295]"),
    ("name-escapes-runs", "name=../../x", "name: expected 1 to 100 letters", "'../../x'"),
    ("name-with-slash", "name=a/b", "name: expected", "'a/b'"),
    ("name-empty", "name=", "name: expected", "got ''"),
    ("name-too-long", "name=" + "a" * 200, "name: expected 1 to 100"),
    ("batch-size-0", "train.batch_size=0", "train.batch_size: expected an integer in (0, 65536], got 0"),
    ("batch-size-huge", "train.batch_size=1000000000000", "train.batch_size: expected an integer in (0, 65536]"),
    ("bootstrap-huge", "evaluate.bootstrap=1000000000000", "evaluate.bootstrap: expected an integer in [0, 100000]"),
    ("confidence-1", "evaluate.confidence=1", "evaluate.confidence: expected a value in (0, 1), got 1"),
    ("prune-1", "export.prune=1", "export.prune: expected a value in (0, 1), got 1"),
    ("prune-nan", "export.prune=.nan", "export.prune: expected a finite number"),
    ("quantize-unknown", "export.quantize=[int4]", "export.quantize.0: expected one of", "got 'int4'"),
    ("int8-threshold-0", "export.int8_float_threshold=0", "export.int8_float_threshold: expected a value > 0"),
    ("finetune-layers-1.5", "train.phase2.finetune_layers=1.5", "train.phase2.finetune_layers: expected a count"),
    ("finetune-layers-negative", "train.phase2.finetune_layers=-1", "train.phase2.finetune_layers: expected a count"),
    ("finetune-layers-inf", "train.phase2.finetune_layers=.inf", "train.phase2.finetune_layers: expected a finite number, got inf"),
    ("probe-needs-linear-head", "train.method=probe", "train.method: probe", "model.head.name: linear"),
    ("regression-head-for-classes", "model.head.name=regression", "model.head.name: head 'regression' supports regression", "data.task is 'classification'"),
    ("backbone-unknown", "model.backbone.name=mobilenet_v9", "model.backbone.name: no backbone plugin named 'mobilenet_v9'"),
    ("head-unknown", "model.head.name=mpl", "model.head.name: no head plugin named 'mpl'"),
    ("colormap-unknown", "frontend.colormap=viridiss", "frontend.colormap: unknown colour map 'viridiss'", "did you mean 'viridis'"),
    ("augmentation-unknown", "augment.methods=[{name: cutmx}]", "augment.methods.0.name: no augmentation plugin named 'cutmx'"),
    ("taps-unknown-layer", "model.taps=[no_such_layer]", "model.taps: no layer 'no_such_layer' in backbone 'mobilenet_v2'"),
    ("weights-missing-file", "model.backbone.weights=weights/nope.h5", "'weights/nope.h5'", "does not exist", "model.backbone.weights"),
    ("weights-unknown-source", "model.backbone.weights=audioset", "has no 'audioset' weights", "model.backbone.weights"),
    ("weights-dir-missing", "model.backbone.weights=imagenet&model.backbone.weights_dir=nodir", "nodir", "model.backbone.weights_dir", "does not exist"),
    ("weights-offline-missing", "model.backbone.weights=imagenet", "imagenet weights for backbone 'mobilenet_v2' are not on this machine", "DSPLUG_OFFLINE"),
    ("weights-folder", "model.backbone.weights=a", "weights 'a' for backbone 'mobilenet_v2' is a folder"),
    ("weights-pth-without-mapping", "model.backbone.weights=w.pth", "cannot read PyTorch state dicts", "w.pth"),
    ("audio-backbone-taps", "model.backbone.name=yamnet&model.taps=auto&augment.policy=none", "model.taps: 'auto' needs an image backbone"),
    ("audio-backbone-augment", "model.backbone.name=yamnet&augment.policy=sapaugment", "augment.methods: image augmentations (cutmix, specaugment) do not apply to 'yamnet'"),
    ("audio-backbone-int8", "model.backbone.name=yamnet&augment.policy=none&export.quantize=[int8]", "export.quantize: int8", "'yamnet'"),
    ("weights-h5-not-hdf5", "model.backbone.weights=w.h5", "weights file 'w.h5'", "is not an HDF5 file", "model.backbone.weights"),
    ("audio-backbone-rate", "model.backbone.name=yamnet&augment.policy=none&data.sample_rate=22050", "data.sample_rate: backbone 'yamnet' expects 16000 Hz"),
    ("override-without-equals", "train.lr", "override 'train.lr': expected KEY=VALUE"),
    ("override-unknown-key", "train.lrr=1", "train.lrr: unknown key; did you mean train.lr?"),
    ("override-bad-index", "augment.methods.7.max_size=1", "augment.methods.7: expected a list index 0..1"),
    ("override-into-scalar", "train.lr.x=1", "train.lr is not a section"),
    ("override-bad-yaml", "train.lr=[1", "override 'train.lr=[1': the value is not valid YAML"),
    ("sweep-with-a-bad-point", "sweep.train.lr=[0.1, -1]", "train.lr: expected a value > 0, got -1"),
    ("list-where-one-value-is-expected", "train.lr=[0.1, 0.01]", "train.lr: expected a number, got a list; to try several values, sweep them"),
    ("sweep-key-without-a-list", "sweep.seed=3", "sweep.seed: expected the list of values to try, got 3"),
]:
    def build(folder: Path, override: str = override) -> list[str]:
        args = validate(*override.split("&"))(folder)
        (folder / "w.pth").write_bytes(b"")
        (folder / "w.h5").write_text("not weights\n")
        return args
    case("value", name, build, *expect)


# ------------------------------------------------------------------------------- manifests
def manifest(text: str | bytes, *, recipe: str = RECIPE) -> Build:
    """``dsplug validate`` with m.csv replaced (audio files a/x_train_0.wav ... exist)."""
    def build(folder: Path) -> list[str]:
        valid(folder)
        path = folder / "m.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["validate", str(write(folder / "r.yaml", recipe))]
    return build


GOOD = ["a/x_train_0.wav,x,train", "a/x_train_1.wav,x,train", "a/y_train_0.wav,y,train", "a/y_train_1.wav,y,train",
        "a/x_devel_0.wav,x,devel", "a/y_devel_0.wav,y,devel", "a/x_test_0.wav,x,test", "a/y_test_0.wav,y,test"]


def rows(*extra: str, header: str = "path,label,partition", keep: int = 8) -> str:
    return "\n".join([header, *GOOD[:keep], *extra]) + "\n"


for name, text, *expect in [
    ("empty", "", "missing column(s) path, label"),
    ("header-only", "path,label,partition\n", "no rows"),
    ("no-path-column", "file,label\na.wav,x\n", "missing column(s) path"),
    ("ragged-row", rows("a/x_train_2.wav,x,train,extra"), "line 10: 4 fields but the header has 3"),
    ("unquoted-comma", rows("a/x,train_2.wav,x,train"), "line 10", "fields but the header has 3"),
    ("latin1", rows("a/x_train_2.wav,caf\xe9,train").encode("latin-1"), "not a readable CSV file", "UTF-8"),
    ("utf16", rows().encode("utf-16"), "not a readable CSV file", "UTF-8"),
    ("unterminated-quote", rows('"a/x_train_2.wav,x,train'), "line 10: empty label"),
    ("field-over-limit", rows("a/" + "x" * 200_000 + ".wav,x,train"), "field larger than field limit"),
    ("empty-path", rows(",x,train"), "line 10: empty path"),
    ("empty-label", rows("a/x_train_2.wav,,train"), "line 10: empty label"),
    ("unknown-partition", rows("a/x_train_2.wav,x,dev"), "line 10: partition 'dev' is not one of train, devel, test"),
    ("missing-audio", rows("a/gone.wav,x,train"), "1 audio file(s) do not exist", "line 10: a/gone.wav"),
    ("many-missing-audio", rows(*[f"a/gone{i}.wav,x,train" for i in range(5)]), "5 audio file(s) do not exist", "and 2 more"),
    ("leakage", rows("a/x_train_0.wav,x,test"), "lines 2 and 10", "x_train_0.wav is in both train and test"),
    ("leakage-other-spelling", rows("./a/../a/x_train_0.wav,x,devel"), "x_train_0.wav is in both train and devel"),
    ("one-class", rows(keep=0) + "a/x_train_0.wav,x,train\na/x_devel_0.wav,x,devel\n", "classification needs at least two classes", "'x'"),
    ("class-without-train", rows("a/x_test_0.wav,z,test", keep=6), "class(es) 'z' have no training file"),
    ("nothing-to-evaluate", rows(keep=4), "no devel and no test files"),
    ("no-train", rows(keep=0) + "a/x_devel_0.wav,x,devel\na/y_test_0.wav,y,test\n", "the train partition is empty"),
    ("nul-in-path", rows("a/x_train_2.wav\x00,x,train"), "line 10"),
]:
    case("manifest", name, manifest(text), *expect)
case("manifest", "directory-as-audio", manifest(rows("a,x,train")), "line 10", "'a' is a folder")

case("manifest", "label-not-in-classes", manifest(rows(), recipe=RECIPE.replace("chunk_seconds: 0.5}", "chunk_seconds: 0.5, classes: [x]}")),
     "line 4: label 'y' is not in data.classes (x)")
case("manifest", "regression-label-text", manifest(rows(), recipe=RECIPE.replace("chunk_seconds: 0.5}", "chunk_seconds: 0.5, task: regression}").replace("name: mlp", "name: regression")),
     "line 2: label 'x' is not a number")
case("manifest", "regression-label-inf",
     manifest("path,label,partition\na/x_train_0.wav,inf,train\na/x_devel_0.wav,1,devel\n", recipe=RECIPE.replace("chunk_seconds: 0.5}", "chunk_seconds: 0.5, task: regression}").replace("name: mlp", "name: regression")),
     "line 2: label 'inf' is not finite")
case("manifest", "missing-manifest", lambda f: ["validate", str(write(f / "r.yaml", RECIPE.replace("m.csv", "gone.csv")))],
     "gone.csv' does not exist", "data.manifest")
case("manifest", "group-column-and-pattern",
     manifest("path,label,partition,group\n" + "\n".join(g + ",s" for g in GOOD) + "\n", recipe=RECIPE.replace("chunk_seconds: 0.5}", "chunk_seconds: 0.5, group_pattern: '^(.)'}")),
     "has a group column and the recipe sets data.group_pattern")
case("manifest", "group-pattern-unmatched",
     manifest(rows(), recipe=RECIPE.replace("chunk_seconds: 0.5}", "chunk_seconds: 0.5, group_pattern: '^(spk\\d+)_'}")),
     "x_train_0.wav", "data.group_pattern")
case("manifest", "group-pattern-invalid", manifest(rows(), recipe=RECIPE.replace("chunk_seconds: 0.5}", "chunk_seconds: 0.5, group_pattern: '(('}")),
     "data.group_pattern '((' is not a valid regular expression")
case("manifest", "too-small-to-split", manifest("path,label\na/x_train_0.wav,x\na/y_train_0.wav,y\n"), "2 files cannot be split into train, devel and test")
case("manifest", "final-fit-without-test",
     manifest(rows(keep=6), recipe=RECIPE.replace("train: {", "train: {final_fit: true, ")), "train.final_fit", "test partition is empty")
case("manifest", "folder-without-classes", lambda f: (f / "empty").mkdir() or ["validate", str(write(f / "r.yaml", RECIPE.replace("m.csv", "empty")))],
     "holds no audio file in a class folder")
# doubtful rows are warnings: validate passes and says so
case("manifest", "duplicate-rows-warn", manifest(rows("a/x_train_0.wav,x,train")), "listed more than once", code=0)
case("manifest", "case-labels-warn", manifest(rows("a/x_train_2.wav,X,train")), "differ only in case", "X / x", code=0)
case("manifest", "duplicate-classes-warn", manifest(rows(), recipe=RECIPE.replace("chunk_seconds: 0.5}", "chunk_seconds: 0.5, classes: [x, y, x]}")),
     "data.classes lists 'x' more than once", code=0)
