"""The bad-input suite: every hostile input of the corpus (``badcases*.py``) ends in its exit code
and one line ``error: ...`` naming the file, key or value; no traceback; no existing file changed.

Each case runs the real command line in-process (typer's CliRunner) in a folder of its own, the
current directory while it runs, offline (``DSPLUG_OFFLINE=1``) with Keras' and dsplug's caches
inside the folder.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

import badcases
import badcases_runs  # noqa: F401  (adds its cases to badcases.CASES)
import badfiles
from dsplug.cli import app

CASES = badcases.CASES
runner = CliRunner()


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder``, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


def test_the_corpus_is_large_and_named_uniquely():
    assert len(CASES) >= 150
    assert not [name for name, n in Counter(c.id for c in CASES).items() if n > 1]
    kinds = Counter(c.id.split("/")[0] for c in CASES)
    assert min(kinds.values()) >= 3, kinds


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch):
    folder = tmp_path / "case"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("DSPLUG_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("DSPLUG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DSPLUG_WEIGHTS_DIR", raising=False)
    args = case.build(folder)
    before = checksums(folder)

    result = runner.invoke(app, [str(a) for a in args])

    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == case.code, result.output
    after = checksums(folder)
    assert [name for name, digest in before.items() if after.get(name) != digest and name not in case.may_change] == []
    assert [name for name in case.absent if (folder / name).exists()] == []
    if case.code == 2:
        lines = result.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
        missing = [text for text in case.expect if text not in errors[0]]
        assert not missing, f"{missing} not in {errors[0]!r}"
    else:
        missing = [text for text in case.expect if text not in result.output]
        assert not missing, f"{missing} not in {result.output!r}"


#: A base install (the TF-free runtime): the training extra's modules cannot be imported.
RUNTIME_ONLY = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'tensorflow', 'tf_keras', 'librosa', 'matplotlib', 'sklearn'}:
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, Block())
from dsplug.cli import main
sys.argv = ['dsplug', *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("kind", ["mp3-garbage", "rate-0hz", "text"])
def test_runtime_only_predict_names_the_file_not_the_training_extra(kind, tmp_path):
    model = badfiles.model_files(tmp_path)
    bad = tmp_path / "bad.wav"
    badfiles.BAD_AUDIO[kind](bad)
    result = subprocess.run([sys.executable, "-c", RUNTIME_ONLY, "predict", str(model), str(bad)], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "bad.wav" in result.stderr
    assert "pip install" not in result.stderr and "Traceback" not in result.stderr


# ----------------------------------------------------- library entry points (not the CLI)
class _Unprintable:
    """A history value that fails while history.csv is being written (a crash mid-write)."""

    def __str__(self) -> str:
        raise RuntimeError("killed mid-write")


def test_history_is_written_atomically(tmp_path):
    from dsplug.train import write_history

    path = tmp_path / "history.csv"
    write_history(path, [{"epoch": 1, "loss": 0.5}])
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="killed mid-write"):
        write_history(path, [{"epoch": 1, "loss": 0.25}, {"epoch": 2, "loss": _Unprintable()}])
    assert path.read_bytes() == before


def test_run_point_refuses_what_the_preflight_refuses_before_writing(tmp_path, monkeypatch):
    from dsplug import data
    from dsplug.errors import RecipeError
    from dsplug.recipe.loader import load_recipe
    from dsplug.workflows.run import run_point

    [point] = load_recipe(badfiles.dataset(tmp_path), overrides=["frontend.image_size=[16,16]"])
    monkeypatch.setattr(data, "decode_for", lambda *args, **kwargs: pytest.fail("decoded before the pre-flight"))
    with pytest.raises(RecipeError, match="frontend.image_size"):
        run_point(point, run_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_doubtful_rows_are_recorded_in_the_data_summary(tmp_path):
    """Repeated rows, labels that differ only in case and repeated data.classes are warnings that
    data.json keeps (a run writes summarize()'s result as data.json)."""
    from dsplug.data import load_manifest, summarize

    badfiles.dataset(tmp_path)
    manifest = tmp_path / "m.csv"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([*lines, lines[1], "a/x_train_2.wav,X,train,g1"]).replace(f"{lines[3]}\n", "") + "\n")
    summary = summarize(load_manifest(manifest, classes=["x", "y", "X", "x"]))
    warnings = " | ".join(summary["warnings"])
    for text in ("listed more than once", "differ only in case", "data.classes lists 'x' more than once"):
        assert text in warnings, warnings
