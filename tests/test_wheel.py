"""The honest install: build the wheel, install it into a fresh venv without TensorFlow, predict.

The fresh venv installs from .tools/wheelhouse (dsplug's runtime dependencies as wheels, made by
`python3 dev.py test`), so the test needs no network. Without it the test fails and names the
command; it never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, TONES, write_recipe

pytestmark = pytest.mark.heavy

WHEELHOUSE = ROOT / ".tools" / "wheelhouse"
CLIP = TONES / "audio" / "spk5_0001_T3.ogg"


#: The fresh venv must see only itself: no PYTHONPATH pointing at this source tree.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def run(*args: str | Path, cwd: Path | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=600, env=CLEAN_ENV)
    if ok:
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with only the wheel built from this source tree (and its runtime dependencies)."""
    if not (WHEELHOUSE / ".dsplug-stamp").is_file():
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}: run `python3 dev.py test` (or `python3 dev.py tools`)")
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"  # the files a source checkout has, without build leftovers
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "dsplug", source / "dsplug", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv.create(folder / "venv", with_pip=True)
    python = folder / "venv" / "bin" / "python"
    offline = ["--no-index", "--find-links", str(WHEELHOUSE), "--quiet"]
    run(python, "-m", "pip", "install", *offline, "build", "setuptools>=77", "wheel")
    run(python, "-m", "build", "--wheel", "--no-isolation", "--outdir", folder / "dist", source)  # the documented command
    [wheel] = (folder / "dist").glob("dsplug-*.whl")
    run(python, "-m", "pip", "install", *offline, wheel)
    return folder / "venv" / "bin", wheel


def test_the_wheel_holds_the_web_app_and_the_schema_licence(installed):
    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("app.js", "index.html", "capture-worklet.js", "style.css"):
        assert f"dsplug/deploy/webapp/{name}" in names
    assert {"dsplug/artifacts/vendor/NOTICE.md", "dsplug/artifacts/vendor/metadata_schema_py_generated.py",
            "dsplug/py.typed"} <= names


def test_predict_runs_from_the_wheel_without_tensorflow(installed, exported_run, tmp_path):
    bin_dir, _ = installed
    missing = run(bin_dir / "python", "-c", "import tensorflow", ok=False)
    assert missing.returncode != 0 and "No module named 'tensorflow'" in missing.stderr
    model = tmp_path / "model-int8.tflite"  # no sidecar: the model describes itself
    shutil.copy(exported_run / "model-int8.tflite", model)
    predicted = run(bin_dir / "dsplug", "predict", model, CLIP, cwd=tmp_path)
    assert predicted.stdout.startswith(f"{CLIP}: T"), predicted.stdout
    api = run(bin_dir / "python", "-c", f"import dsplug; print(dsplug.load({str(model)!r}).predict({str(CLIP)!r}).label)")
    assert api.stdout.strip() == predicted.stdout.split()[1]


def test_the_light_install_names_the_extras(installed, exported_run, tmp_path):
    bin_dir, _ = installed
    plugins = run(bin_dir / "dsplug", "plugins")
    assert "BROKEN" not in plugins.stdout + plugins.stderr
    assert "squeezenet_v1" in plugins.stdout and "(needs dsplug[train])" in plugins.stdout
    assert "25 plugin(s) need dsplug[train]: install dsplug[train]: from the source tree" in plugins.stderr
    recipe = write_recipe(tmp_path / "r.yaml", f"data: {{manifest: {TONES / 'manifest.csv'}}}\n")
    training = run(bin_dir / "dsplug", "run", recipe, ok=False)
    assert training.returncode == 2 and "dsplug[train]" in training.stderr and "Traceback" not in training.stderr
    microphone = run(bin_dir / "dsplug", "stream", exported_run / "model.tflite", "--mic", ok=False)
    assert microphone.returncode == 2 and "install dsplug[mic]" in microphone.stderr, microphone.stderr
    for text in (plugins.stdout, plugins.stderr, training.stderr, microphone.stderr):
        assert "pip install dsplug" not in text and "pip install 'dsplug[" not in text and "pip install sounddevice" not in text
