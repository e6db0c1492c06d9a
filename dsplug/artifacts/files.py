"""Atomic writes and JSON records: what every command uses to write files a later command reads."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsplug.errors import DataError, DiskFullError, DsplugError, RunError

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------

#: What a full disk (or quota) says, in ``errno`` and in the text of TensorFlow's and HDF5's errors.
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_DISK_FULL_TEXT = re.compile(r"No space left on device|Disk quota exceeded|errno = 28\b")


def is_disk_full(err: BaseException | None) -> bool:
    """Whether ``err`` (or an exception it was raised from) says the disk or quota is full."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS or _DISK_FULL_TEXT.search(str(err)):
            return True
        err = err.__cause__ or err.__context__
    return False


def disk_full_message(path: PathLike | None) -> str:
    """The one line a full disk gets: the path being written and the fix."""
    where = f"{path}: " if path else ""
    return (f"{where}the disk is full (no space left on the device); nothing half-written was kept: free space on "
            "that disk (or write elsewhere: --out, -o, data.cache_dir), then run the command again")


def disk_full_path(err: BaseException) -> str | None:
    """The file a disk-full error names in its text (TensorFlow and HDF5 give no ``filename``), if any."""
    if isinstance(err, OSError) and err.filename:
        return str(err.filename)
    found = re.search(r"filename = '([^']+)'|(/[^\s;:'\"]+)", str(err))
    return (found.group(1) or found.group(2)) if found else None


@contextlib.contextmanager
def writing(path: PathLike, *, leftovers: Sequence[PathLike] | Callable[[], Iterable[PathLike]] = ()) -> Iterator[None]:
    """Write ``path`` inside this block: on any error remove ``leftovers``; a full disk names ``path``.

    Parameters
    ----------
    path : path
        What the block writes (named in the error).
    leftovers : sequence of path, or a callable returning them
        Files or folders that are only half-written if the block fails (temporary files,
        checkpoint shards); removed on every error, interrupts included.

    Raises
    ------
    DiskFullError
        The disk or quota filled (``ENOSPC``/``EDQUOT``, also inside TensorFlow or h5py errors).
    """
    try:
        yield
    except BaseException as err:
        for leftover in (leftovers() if callable(leftovers) else leftovers):
            target = Path(leftover)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    target.unlink(missing_ok=True)
        if not isinstance(err, (KeyboardInterrupt, DiskFullError)) and is_disk_full(err):
            raise DiskFullError(disk_full_message(path)) from err
        raise


def write_atomic(path: PathLike, content: str | bytes) -> Path:
    """Write ``content`` to ``path`` atomically (temporary file in the same folder, then rename).

    Parent folders are created. A reader sees the old file or the complete new one, never a
    partial write, also when the writing process is killed.

    Parameters
    ----------
    path : str or os.PathLike
        The target file.
    content : str or bytes
        Text (written as UTF-8, newlines unchanged) or bytes.

    Returns
    -------
    Path
        ``path``.
    """
    target = Path(path)
    temporary: list[str] = []  # read by writing() only if the block fails
    with writing(target, leftovers=temporary):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        temporary.append(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide shared results (reports, models) from others
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    return target


def write_figure(figure: Any, path: PathLike, *, dpi: int) -> Path:
    """Save a matplotlib figure to ``path`` atomically (format from the suffix, PNG without one)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=dpi)
    return write_atomic(path, buffer.getvalue())


def csv_text(rows: Iterable[Mapping[str, Any]], *, columns: Sequence[str]) -> str:
    """Rows as CSV text (a header of ``columns``; keys not in ``columns`` are left out), for
    :func:`write_atomic`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_jsonable(value: Any, *, where: str = "value") -> Any:
    """Convert NumPy values (and nested containers of them) to JSON types.

    Non-finite floats become ``None`` (JSON has no NaN).

    Raises
    ------
    DataError
        A value JSON cannot hold (the message names where it is).
    """
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item, where=f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), where=where)
    if isinstance(value, list | tuple):
        return [to_jsonable(item, where=f"{where}[{i}]") for i, item in enumerate(value)]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, Path):
        return str(value)
    raise DataError(
        f"{where} has type {type(value).__name__}, which JSON cannot hold; use numbers, strings, "
        "lists or dicts"
    )


def write_json(path: PathLike, document: Any) -> Path:
    """Write ``document`` as indented JSON, atomically (NumPy values converted, NaN -> null)."""
    text = json.dumps(to_jsonable(document, where=Path(path).name), indent=2, allow_nan=False)
    return write_atomic(path, text + "\n")


def read_json(path: PathLike, *, error: type[DsplugError] = RunError, fix: str) -> Any:
    """Read a JSON file dsplug wrote; a missing, unreadable or damaged file raises ``error``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    error : type of DsplugError
        The error class to raise.
    fix : str
        What the user should do, appended to the message.
    """
    file = Path(path)
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise error(f"{file} does not exist; {fix}") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{file} is damaged or unreadable ({type(err).__name__}: {err}); {fix}") from err


def check_writable_dir(path: PathLike, *, what: str) -> None:
    """Refuse a folder path that is a file or cannot be created or written (before any work).

    Raises
    ------
    RunError
        Naming the path and the problem.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{what} {str(folder)!r} is a file, not a folder; choose another path")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunError(f"cannot write the {what} {str(folder)!r}: {existing} is a file, not a folder; choose another path")
    if not _can_create_in(existing):
        raise RunError(f"cannot write the {what} {str(folder)!r}: {existing} is not writable; choose another path")


def _can_create_in(folder: Path) -> bool:
    """True if a file can be created in ``folder`` (tried, not guessed: permissions do not stop
    root, and /proc or a read-only mount refuse everyone). The trial file has no name (or is
    removed at once), so nothing is left behind."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_output_file(
    path: PathLike, *, what: str, option: str, inputs: Sequence[PathLike] = (), force: bool = False,
) -> None:
    """Refuse an output file that would destroy something (before any work).

    An output is never an input of the same command nor a file inside a finished run directory
    (one whose ``run.json`` says ``finished``), and an existing file is replaced only with
    ``force``; then the path must be writable (:func:`check_writable_file`).

    Parameters
    ----------
    path : path
        The output file.
    what : str
        What it is, for messages (``"predictions CSV"``).
    option : str
        The command-line option that names it (``"--csv"``), for messages.
    inputs : sequence of path
        The command's input files.
    force : bool
        The user asked to replace an existing file (``--force``).

    Raises
    ------
    RunError
        Naming the path, what it would destroy and the fix.
    """
    file = Path(path)
    target = file.resolve()
    for source in inputs:
        if Path(source).resolve() == target:
            raise RunError(f"{option} {str(file)!r} is also an input of this command; write the {what} to another path")
    for folder in target.parents:
        info = folder / "run.json"
        if info.is_file():
            try:
                finished = bool(json.loads(info.read_text(encoding="utf-8")).get("finished"))
            except (OSError, ValueError, AttributeError):
                finished = True  # unreadable: treat the run as a record to keep
            if finished:
                raise RunError(
                    f"{option} {str(file)!r} is inside the finished run {str(folder)!r}, whose files are its record; "
                    f"write the {what} elsewhere"
                )
            break
    if (file.exists() or file.is_symlink()) and not file.is_dir() and not force:
        raise RunError(f"{option} {str(file)!r} exists; pass --force to replace it, or choose another path")
    check_writable_file(file, what=f"{what} ({option})")


def check_writable_file(path: PathLike, *, what: str) -> None:
    """Refuse an output file path that is a folder or whose folder cannot be written (before any work).

    Raises
    ------
    RunError
        Naming the path and the problem.
    """
    file = Path(path)
    if file.is_dir():
        raise RunError(f"{what} {str(file)!r} is a folder; give a file name")
    if file.exists() and not os.access(file, os.W_OK):
        raise RunError(f"cannot write the {what} {str(file)!r}: the file is not writable; choose another path")
    check_writable_dir(file.parent if str(file.parent) else Path("."), what=f"folder of the {what}")
