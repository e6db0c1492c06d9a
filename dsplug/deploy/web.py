"""The on-device web app of ``dsplug export RUN --web DIR``: a static page that classifies in the browser.

:func:`write_web_app` writes a folder that any static server can serve (``python -m http.server``):
the page (``index.html``, ``app.js``, ``capture-worklet.js``, ``style.css``; shipped inside dsplug
as package data), the run's exported models with their metadata inside (``models/``, listed in
``models.json``), and MediaPipe's audio task bundle (``mediapipe/``: ``audio_bundle.mjs`` and its
wasm files). MediaPipe's bundle is not shipped with dsplug (13 MB): it is copied from an npm
install of ``@mediapipe/tasks-audio`` (:data:`INSTALL_COMMAND`), found by :func:`find_bundle`.
Nothing is fetched from another origin when the page runs, and no audio leaves the device.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dsplug.artifacts import ModelMetadata, writing
from dsplug.errors import ExportError

logger = logging.getLogger(__name__)

__all__ = ["BUNDLE_ENV", "BUNDLE_VERSION", "INSTALL_COMMAND", "PAGE_FILES", "find_bundle", "write_web_app"]

#: The npm package and version of MediaPipe's audio tasks the page is written and tested for.
BUNDLE_PACKAGE = "@mediapipe/tasks-audio"
BUNDLE_VERSION = "1.0.1"
#: Where ``dsplug export --web`` looks by default, and how to install it there.
DEFAULT_PREFIX = Path("~/.cache/dsplug/web")
INSTALL_COMMAND = f"npm install --prefix {DEFAULT_PREFIX} {BUNDLE_PACKAGE}@{BUNDLE_VERSION}"
#: An environment variable naming the bundle's folder (or an npm prefix holding it).
BUNDLE_ENV = "DSPLUG_MEDIAPIPE_WEB"
#: The bundle's files the page loads: the ES module, and the wasm build with and without SIMD.
BUNDLE_FILES = (
    "audio_bundle.mjs",
    "wasm/audio_wasm_internal.js",
    "wasm/audio_wasm_internal.wasm",
    "wasm/audio_wasm_nosimd_internal.js",
    "wasm/audio_wasm_nosimd_internal.wasm",
)
#: The page's own files (package data in ``dsplug/deploy/webapp``).
PAGE_FILES = ("index.html", "app.js", "capture-worklet.js", "style.css")


def _candidates(given: str | os.PathLike[str] | None) -> list[Path]:
    """Folders that may hold the bundle: the option, the environment variable, ./node_modules, the default prefix."""
    roots = [Path(given)] if given else []
    roots += [Path(os.environ[BUNDLE_ENV])] if os.environ.get(BUNDLE_ENV) else []
    roots += [Path.cwd(), DEFAULT_PREFIX.expanduser()] if not given else []
    found = []
    for root in roots:
        found += [root, root / "node_modules" / BUNDLE_PACKAGE]
    return found


def find_bundle(given: str | os.PathLike[str] | None = None) -> Path:
    """The folder of an installed ``@mediapipe/tasks-audio`` package.

    Parameters
    ----------
    given : path, optional
        The package folder, or an npm prefix holding ``node_modules/@mediapipe/tasks-audio``.
        Without it: ``$DSPLUG_MEDIAPIPE_WEB``, then ``./node_modules``, then ``~/.cache/dsplug/web``.

    Raises
    ------
    ExportError
        Not found: the message names the folders looked in and :data:`INSTALL_COMMAND`.
    """
    looked = _candidates(given)
    for folder in looked:
        if all((folder / name).is_file() for name in BUNDLE_FILES):
            version = _version(folder)
            if version != BUNDLE_VERSION:
                logger.warning("%s is %s %s; the page is tested with %s", folder, BUNDLE_PACKAGE, version, BUNDLE_VERSION)
            return folder
    where = ", ".join(str(p) for p in looked[::2]) or "nowhere"
    raise ExportError(
        f"MediaPipe's audio task bundle ({BUNDLE_PACKAGE} {BUNDLE_VERSION}) was not found (looked in {where}); "
        f"install it with `{INSTALL_COMMAND}`, or point --mediapipe or ${BUNDLE_ENV} at the folder that holds "
        f"node_modules/{BUNDLE_PACKAGE}"
    )


def _version(folder: Path) -> str:
    try:
        return str(json.loads((folder / "package.json").read_text(encoding="utf-8")).get("version", "?"))
    except (OSError, ValueError):
        return "?"


def _model_entry(path: Path) -> dict[str, object]:
    """``models.json``'s entry of a model; refuses a model the page (MediaPipe) cannot run."""
    meta = ModelMetadata.from_tflite(path.read_bytes(), source=str(path))
    if not meta.task.exclusive:
        raise ExportError(
            f"{path}: the web app shows class probabilities, but this model's task is {meta.task}; export a "
            "classification run for the web"
        )
    return {"path": f"models/{path.name}", "name": path.stem, "quantize": meta.quantize,
            "pruned": meta.pruning is not None, "bytes": path.stat().st_size}


def _swap(new: Path, target: Path) -> None:
    """Put the folder ``new`` at ``target``; an earlier app there is removed once the new one is in place."""
    if not target.exists():
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def write_web_app(models: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, bundle: str | os.PathLike[str] | None = None) -> Path:
    """Write the static web app for ``models`` into the folder ``out``.

    Parameters
    ----------
    models : sequence of path
        Exported ``.tflite`` files with their metadata inside (the first is the page's default).
    out : path
        The app's folder; created, or refreshed if it holds an earlier app (its ``models/`` is
        replaced). A folder holding anything else is refused.
    bundle : path, optional
        The ``@mediapipe/tasks-audio`` install to copy from (see :func:`find_bundle`).

    Returns
    -------
    Path
        ``out``; serve it with ``python -m http.server -d OUT`` and open ``http://localhost:8000``.

    Raises
    ------
    ExportError
        No model, a model without metadata or not a classifier, the bundle missing, or ``out``
        holds other files.
    """
    if not models:
        raise ExportError("no model for the web app: export the run first (`dsplug export RUN_DIR`)")
    source = find_bundle(bundle)
    target = Path(out)
    if target.exists() and any(target.iterdir()) and not (target / "models.json").is_file():
        raise ExportError(f"{target} exists and is not a dsplug web app; choose an empty or new folder for --web")
    entries = [_model_entry(Path(m)) for m in models]
    target.parent.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part"))
    with writing(target, leftovers=[part]):  # built aside, then swapped in: never half-written
        (part / "models").mkdir()
        for model in models:
            shutil.copyfile(model, part / "models" / Path(model).name)
        for name in BUNDLE_FILES:
            (part / "mediapipe" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, part / "mediapipe" / name)
        page = importlib.resources.files("dsplug.deploy") / "webapp"
        for name in PAGE_FILES:
            (part / name).write_bytes((page / name).read_bytes())
        (part / "models.json").write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
        os.chmod(part, 0o755)
        _swap(part, target)
    logger.info("wrote the web app %s (%d model(s), MediaPipe from %s)", target, len(entries), source)
    return target
