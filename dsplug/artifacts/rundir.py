"""The run directory: its file names, records, lock and the rule that a finished run is never rewritten."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dsplug.version import __version__
from dsplug.artifacts.files import PathLike, check_writable_dir, read_json, write_atomic, write_json
from dsplug.artifacts.metadata import ModelMetadata
from dsplug.errors import RunError

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# the run directory
# --------------------------------------------------------------------------------------------


class RunDir:
    """A run directory: its files, its records and its lock.

    ``dsplug run`` writes, in order: ``run.json`` (the recipe hash; the directory's identity),
    ``recipe.yaml`` (the resolved recipe), ``data.json``, ``checkpoints/``, ``history.csv``,
    ``training.png``, ``metrics.json``, ``predictions*.csv``, ``confusion.png``, ``model.keras``,
    ``model*.tflite`` (+ ``model*.json``), ``export.json`` / ``export.md`` and ``report.md`` /
    ``report.html``; ``run.json`` is marked finished last.

    Parameters
    ----------
    path : str or os.PathLike
        The directory (it need not exist yet).
    """

    RUN = "run.json"
    RECIPE = "recipe.yaml"
    DATA = "data.json"
    SKIPPED = "skipped_files.csv"
    HISTORY = "history.csv"
    PROBE = "probe.json"
    TRAINING_PLOT = "training.png"
    METRICS = "metrics.json"
    PREDICTIONS = "predictions.csv"
    CONFUSION_PLOT = "confusion.png"
    ROC_PLOT = "roc.png"
    PR_PLOT = "pr.png"
    EXAMPLES_PLOT = "examples.png"
    KERAS_MODEL = "model.keras"
    TFLITE_MODEL = "model.tflite"
    EXPORT = "export.json"
    EXPORT_REPORT = "export.md"
    REPORT = "report.md"
    REPORT_HTML = "report.html"
    CHECKPOINTS = "checkpoints"
    LOCK = ".dsplug.lock"

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ names
    @staticmethod
    def model_file(quantize: str = "none", *, pruned: bool = False) -> str:
        """``model.tflite``, ``model-int8.tflite``, ``model-pruned.tflite``, ``model-pruned-int8.tflite``..."""
        parts = ["model"] + (["pruned"] if pruned else []) + ([quantize] if quantize != "none" else [])
        return "-".join(parts) + ".tflite"

    def predictions_file(self, partition: str, *, last: bool) -> Path:
        """``predictions.csv`` for the last evaluated partition, ``predictions_<partition>.csv`` else."""
        return self.path / (self.PREDICTIONS if last else f"predictions_{partition}.csv")

    def tflite_models(self) -> list[Path]:
        """The exported ``model*.tflite`` files, sorted by name."""
        return sorted(self.path.glob("model*.tflite"))

    def reusable_export(self) -> dict[str, Any] | None:
        """``export.json`` when it is readable and every model it lists is in the run, else None
        (``dsplug export --web`` alone then reuses the models instead of exporting again)."""
        try:
            result = json.loads((self.path / self.EXPORT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        models = result.get("models") if isinstance(result, dict) else None
        if not isinstance(models, dict) or not models or not all((self.path / str(name)).is_file() for name in models):
            return None
        return result

    # ------------------------------------------------------------------ state
    def info(self) -> dict[str, Any] | None:
        """``run.json`` (``{"recipe_hash", "name", "dsplug_version", "finished"}``), None if absent.

        Raises
        ------
        RunError
            ``run.json`` is damaged.
        """
        if not (self.path / self.RUN).is_file():
            return None
        info = read_json(self.path / self.RUN, fix=f"delete {self.path} or choose another --out")
        if not isinstance(info, dict) or not isinstance(info.get("recipe_hash"), str):
            raise RunError(f"{self.path / self.RUN} is not a dsplug run record; delete {self.path} or choose another --out")
        return info

    @property
    def finished(self) -> bool:
        """True once a run finished here (its records are then never rewritten)."""
        info = self.info()
        return bool(info and info.get("finished"))

    def missing(self, names: Sequence[str]) -> list[str]:
        """Which of ``names`` do not exist in the directory."""
        return [name for name in names if not (self.path / name).exists()]

    def require(self, names: Sequence[str], *, command: str) -> None:
        """Raise unless the directory exists and holds ``names``.

        Raises
        ------
        RunError
            Naming the directory, the missing files and how to make them.
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{str(self.path)!r} is a file, not a run directory; pass a folder written by `dsplug run RECIPE --out DIR`")
        if not self.path.is_dir():
            raise RunError(
                f"run directory {str(self.path)!r} does not exist; pass a folder written by "
                f"`dsplug run RECIPE --out DIR` to `dsplug {command}`"
            )
        missing = self.missing(names)
        if missing:
            raise RunError(
                f"{self.path} is not a finished dsplug run directory (missing {', '.join(missing)}); "
                f"run `dsplug run RECIPE --out DIR` to the end, then `dsplug {command} DIR`"
            )

    def check_finished(self, *, command: str) -> None:
        """Refuse a run that was interrupted (or is running): its files may be half written.

        A directory without ``run.json`` (not a run, or one of an older dsplug) is left to the
        command's own checks.

        Raises
        ------
        RunError
            ``run.json`` says the run has not finished; the message says how to finish it.
        """
        info = self.info()
        if info is not None and not info.get("finished"):
            raise RunError(
                f"the run in {self.path} has not finished (interrupted, or still running); finish it with "
                f"`dsplug run RECIPE --out {self.path}` (it resumes), then run `dsplug {command}`"
            )

    def check_writable(self) -> None:
        """Refuse a path that cannot become a run directory (a file, an unwritable place).

        Raises
        ------
        RunError
            The path is a file, or the directory cannot be created or written.
        """
        check_writable_dir(self.path, what="run directory")

    def check_recipe(self, recipe_hash: str) -> dict[str, Any] | None:
        """Refuse a directory a run of ``recipe_hash`` may not use; nothing is written.

        Returns
        -------
        dict or None
            The run record (``run.json``) of this recipe's run there, None for a new directory.

        Raises
        ------
        RunError
            The path cannot be written, or holds a run of a different recipe, or files that are
            not a dsplug run (a ``recipe.yaml`` without ``run.json``, damaged records).
        """
        self.check_writable()
        info = self.info()
        if info is None and self.path.is_dir() and (self.path / self.RECIPE).is_file():
            raise RunError(
                f"{self.path} holds a run without a run record ({self.RUN}), written by an older "
                "dsplug or damaged; choose another --out or delete the folder"
            )
        if info is not None and info["recipe_hash"] != recipe_hash:
            raise RunError(
                f"{self.path} holds a run of a different recipe ({info.get('name', '?')!r}, hash "
                f"{info['recipe_hash']}; this recipe's hash is {recipe_hash}); a run directory is a "
                "record: choose another --out (or another recipe name), or delete the folder"
            )
        return info

    def begin(self, *, recipe_hash: str, name: str, recipe_yaml: str) -> bool:
        """Claim the directory for a run of ``recipe_hash`` and write its recipe (first time only).

        Nothing is written before the checks: a directory holding a run of another recipe, or
        damaged records, is refused and left as it is.

        Returns
        -------
        bool
            True if this recipe's run already finished here (nothing was written).

        Raises
        ------
        RunError
            The directory holds a run of a different recipe, or files that are not a dsplug run.
        """
        info = self.check_recipe(recipe_hash)
        if info is not None:
            return bool(info.get("finished"))
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / self.RUN, {"recipe_hash": recipe_hash, "name": name, "dsplug_version": __version__, "finished": False})
        write_atomic(self.path / self.RECIPE, recipe_yaml)
        return False

    def finish(self) -> None:
        """Mark the run finished: from now on its records are never rewritten."""
        info = self.info() or {}
        write_json(self.path / self.RUN, {**info, "finished": True})

    @contextlib.contextmanager
    def lock(self, *, command: str = "dsplug run") -> Iterator[None]:
        """Hold the directory's lock file for the block: one command writes a directory at a time.

        The lock file names its holder (host and process id). A lock left by a process that no
        longer runs on this host is taken over.

        Raises
        ------
        RunError
            Another live process holds the lock (its host and pid are named).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / self.LOCK
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "command": command}
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = _read_lock(lock)
                if other is None and _age_seconds(lock) < 10:  # being written by its holder right now
                    raise RunError(
                        f"{self.path} is in use by another dsplug command (it is writing {lock} now); wait "
                        f"for it to finish or choose another --out (remove {lock} if no dsplug command runs)"
                    ) from None
                if other is not None and not _stale(other):
                    raise RunError(
                        f"{self.path} is in use by {other.get('command', 'another dsplug command')} "
                        f"(pid {other.get('pid')} on {other.get('host')}); wait for it to finish or "
                        f"choose another --out (remove {lock} if that process is gone)"
                    ) from None
                lock.unlink(missing_ok=True)  # left by a process that died
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(holder, handle)
            break
        else:  # pragma: no cover - another process took over the stale lock in between
            raise RunError(f"{self.path} is in use by another dsplug command; try again")
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    # ------------------------------------------------------------------ records
    def recipe_text(self) -> str:
        """The resolved recipe (``recipe.yaml``) as text."""
        self.require([self.RECIPE], command="export")
        return (self.path / self.RECIPE).read_text(encoding="utf-8")

    def write_data_summary(self, summary: Mapping[str, Any]) -> None:
        """Write ``data.json``."""
        write_json(self.path / self.DATA, summary)

    def data_summary(self) -> dict[str, Any]:
        """``data.json``."""
        return read_json(self.path / self.DATA, fix="re-run `dsplug run` into a new directory")

    def write_probe(self, record: Mapping[str, Any]) -> None:
        """Write ``probe.json``: how a linear probe's regularisation was chosen."""
        write_json(self.path / self.PROBE, record)

    def write_metrics(self, metrics: Mapping[str, Mapping[str, Any]]) -> None:
        """Write ``metrics.json`` (per evaluated partition)."""
        write_json(self.path / self.METRICS, dict(metrics))

    def metrics(self) -> dict[str, Any]:
        """``metrics.json``: per-partition metrics."""
        return read_json(self.path / self.METRICS, fix="re-run `dsplug run` into a new directory")

    def write_export_summary(self, summary: Mapping[str, Any]) -> None:
        """Write ``export.json``."""
        write_json(self.path / self.EXPORT, summary)

    def export_summary(self) -> dict[str, Any]:
        """``export.json``; ``{}`` if no export summary was written."""
        if not (self.path / self.EXPORT).is_file():
            return {}
        return read_json(self.path / self.EXPORT, fix="re-export with `dsplug export RUN_DIR`")

    def model_metadata(self, model: str = TFLITE_MODEL) -> ModelMetadata:
        """The metadata of an exported model of the run (its ``.json`` sidecar)."""
        return ModelMetadata.from_json_file((self.path / model).with_suffix(".json"))


def _read_lock(lock: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # being written, or damaged
    return holder if isinstance(holder, dict) else None


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return math.inf


def _stale(holder: Mapping[str, Any]) -> bool:
    """True if the lock's process is gone (only decidable on the same host)."""
    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
