"""Sweeps: expand a recipe's list values into points and run them locally or on SLURM.

Every point gets its own flat directory ``DIR/<slug>`` holding its resolved recipe
(``point.yaml``, self-contained: the manifest path is absolute), so any executor runs a point
with the same command: ``dsplug run DIR/<slug>/point.yaml --out DIR/<slug>``, which writes the
run's own records there (``run.json``, ``recipe.yaml``, ...). A point whose directory holds a
finished run of the same recipe is skipped; a directory holding a run of another recipe is
refused before anything is written, and a run's records are never rewritten.

* ``local``: up to ``jobs`` points at once, each in its own ``dsplug run`` process.
* ``slurm``: one job-array script (``#SBATCH --array=0-K``); task ``i`` runs point ``i`` of
  ``points.txt``. ``submit=True`` hands it to ``sbatch``.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dsplug.artifacts import RunDir, csv_text, read_json, write_atomic
from dsplug.errors import SweepError
from dsplug.recipe.loader import RecipePoint

logger = logging.getLogger(__name__)


#: The point's resolved recipe in its directory (the run writes its own ``recipe.yaml``).
POINT_RECIPE = "point.yaml"


def prepare(points: Sequence[RecipePoint], *, out: str | Path) -> list[tuple[RecipePoint, Path, bool]]:
    """Write each point's resolved recipe into ``out/<slug>`` (``point.yaml``, ``point.json``).

    Every point directory is checked before anything is written: one holding a run of another
    recipe is refused, one holding a run of this recipe is left as it is.

    Returns
    -------
    list of (point, directory, finished)
        ``finished`` is True when the directory holds a finished run of this exact recipe.

    Raises
    ------
    RunError
        A point directory holds a run of a different recipe, or damaged run records.
    """
    out = Path(out)
    folders = [out / (point.slug or "point") for point in points]
    infos = [RunDir(folder).check_recipe(point.hash) for point, folder in zip(points, folders)]
    prepared = []
    for point, folder, info in zip(points, folders, infos):
        if info is None:  # a new point: its recipe; a started run keeps the files it was started with
            write_atomic(folder / POINT_RECIPE, point.to_yaml())
            write_atomic(folder / "point.json", json.dumps({"values": point.values, "hash": point.hash}, indent=1))
        prepared.append((point, folder, bool(info and info.get("finished"))))
    write_atomic(out / "points.txt", "".join(f"{folder.name}\n" for _, folder, _ in prepared))
    return prepared


def is_finished(folder: Path, recipe_hash: str) -> bool:
    """A point is finished when its directory holds a finished run of this recipe."""
    info = RunDir(folder).info()
    return bool(info and info["recipe_hash"] == recipe_hash and info.get("finished"))


def run_command(folder: Path) -> list[str]:
    """The command that runs one prepared point."""
    return ["dsplug", "run", str(folder / POINT_RECIPE), "--out", str(folder)]


def run_local(
    prepared: Sequence[tuple[RecipePoint, Path, bool]],
    *,
    jobs: int,
    on_done: Callable[[Path, int], None] | None = None,
) -> dict[str, int]:
    """Run unfinished points in up to ``jobs`` parallel processes (logs in ``<point>/run.log``).

    Returns
    -------
    dict
        Exit code of each point's process by directory name (skipped points are absent).
    """
    if jobs < 1:
        raise SweepError(f"--jobs must be at least 1, got {jobs}")
    executable = [sys.executable, "-m", "dsplug.cli"]
    todo = [folder for _, folder, finished in prepared if not finished]

    def one(folder: Path) -> tuple[Path, int]:
        with (folder / "run.log").open("w", encoding="utf-8") as log:
            command = executable + run_command(folder)[1:]
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
        if on_done:
            on_done(folder, code)
        return folder, code

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return {folder.name: code for folder, code in pool.map(one, todo)}


def slurm_script(out: str | Path, *, count: int, options: Sequence[str] = ()) -> str:
    """A SLURM job-array script running point ``$SLURM_ARRAY_TASK_ID`` of ``points.txt``."""
    out = Path(out).resolve()
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=dsplug-{out.name}",
        f"#SBATCH --array=0-{count - 1}",
        f"#SBATCH --output={out}/slurm-%A_%a.log",
        *(f"#SBATCH {opt}" for opt in options),
        "set -euo pipefail",
        f"SWEEP={shlex.quote(str(out))}",
        'POINT=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$SWEEP/points.txt")',
        f'dsplug run "$SWEEP/$POINT/{POINT_RECIPE}" --out "$SWEEP/$POINT"',
        "",
    ]
    return "\n".join(lines)


def write_slurm(prepared: Sequence[tuple[RecipePoint, Path, bool]], *, out: str | Path, options: Sequence[str] = (), submit: bool = False) -> tuple[Path, str]:
    """Write ``out/sweep.sbatch`` (and submit it with ``sbatch`` if asked).

    Returns
    -------
    (path, message)
        The script and what happened (sbatch's answer when submitted).
    """
    path = write_atomic(Path(out) / "sweep.sbatch", slurm_script(out, count=len(prepared), options=options))
    path.chmod(0o755)
    if not submit:
        return path, f"wrote {path}; submit it with: sbatch {path}"
    if shutil.which("sbatch") is None:
        raise SweepError(f"--submit needs SLURM's sbatch on PATH; the script is ready: {path}")
    result = subprocess.run(["sbatch", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SweepError(f"sbatch {path} failed: {result.stderr.strip() or result.stdout.strip()}")
    return path, result.stdout.strip()


def summarize(out: str | Path) -> list[dict[str, Any]]:
    """One row per finished point: point, devel UAR (with CI), test UAR (with CI).

    The best point by devel UAR is marked ``best``. Writes ``summary.csv`` and ``summary.md``.

    Raises
    ------
    SweepError
        ``out`` holds no finished point.
    """
    out = Path(out)
    if not out.is_dir():
        raise SweepError(f"sweep directory {str(out)!r} does not exist; pass the --out folder of `dsplug sweep RECIPE`")
    rows: list[dict[str, Any]] = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        metrics_path = folder / "metrics.json"
        if not metrics_path.is_file():
            continue
        fix = f"delete {folder} and run the sweep again"
        metrics = read_json(metrics_path, error=SweepError, fix=fix)
        point = read_json(folder / "point.json", error=SweepError, fix=fix) if (folder / "point.json").is_file() else {"values": {}}
        row: dict[str, Any] = {"point": folder.name, **{k: v for k, v in point["values"].items()}}
        for part in ("devel", "test"):
            m = metrics.get(part, {})
            row[f"{part}_uar"] = m.get("uar")
            ci = m.get("uar_ci95") or [None, None]
            row[f"{part}_uar_ci_low"], row[f"{part}_uar_ci_high"] = ci
        rows.append(row)
    if not rows:
        raise SweepError(f"{out}: no finished sweep point (no */metrics.json); run the sweep first")
    scored = [r for r in rows if r["devel_uar"] is not None]
    best = max(scored, key=lambda r: r["devel_uar"])["point"] if scored else None
    for row in rows:
        row["best"] = row["point"] == best
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    write_atomic(out / "summary.csv", csv_text(rows, columns=keys))
    write_atomic(out / "summary.md", format_summary(rows) + "\n")
    return rows


def _uar(row: dict[str, Any], part: str) -> str:
    value = row.get(f"{part}_uar")
    if value is None:
        return "-"
    low, high = row.get(f"{part}_uar_ci_low"), row.get(f"{part}_uar_ci_high")
    return f"{value:.3f} ({low:.3f}-{high:.3f})" if low is not None else f"{value:.3f}"


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :func:`summarize`'s rows (best point in bold)."""
    lines = ["| point | devel UAR (95 % CI) | test UAR (95 % CI) |", "|---|---|---|"]
    for row in rows:
        name = f"**{row['point']}** (best)" if row["best"] else row["point"]
        lines.append(f"| {name} | {_uar(row, 'devel')} | {_uar(row, 'test')} |")
    return "\n".join(lines)
