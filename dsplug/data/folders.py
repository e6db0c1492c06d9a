"""Folders as data: a folder with one subfolder of audio files per class, read as a manifest.

Two layouts are recognised (the names of the folders are the labels)::

    DIR/dog/a.wav            DIR/train/dog/a.wav
    DIR/dog/park/b.flac      DIR/devel/cat/c.wav
    DIR/cat/c.wav            DIR/test/dog/d.ogg

With top-level folders named ``train``, ``devel`` and ``test`` (all of them partition names) the
partitions come from the folders; otherwise every top-level folder is a class and the recipe's
stratified group split makes the partitions. Files below a class folder, at any depth, belong to
that class. Nothing is dropped silently: audio files outside a class folder and files whose
extension is not an audio format are listed in :attr:`FolderManifest.warnings` (recorded in the
run's ``data.json``). Hidden files and folders (name starting with ``.``) are ignored.

With ``group_pattern`` the speaker or session of each file is found in its file name
(:func:`group_of`); a file name the pattern does not match is an error, never a group of its own,
because a guessed group would silently break speaker independence.

Examples
--------
>>> folder = scan_folder("data/sounds", group_pattern=r"^(spk\\d+)_")  # doctest: +SKIP
>>> write_folder_manifest("data/sounds", out="data/sounds.csv")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
from collections import Counter
from pathlib import Path

from dsplug.artifacts import check_writable_file, write_atomic
from dsplug.errors import DataError
from dsplug.recipe.schema import check_group_pattern


#: File extensions read as audio (lower case): libsndfile's formats and the common compressed
#: ones the librosa/audioread fallback decodes.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff",
     ".aifc", ".au", ".snd", ".caf", ".w64", ".wma", ".webm", ".mp4"}
)
#: Names of top-level folders that hold partitions instead of classes.
PARTITION_FOLDERS = ("train", "devel", "test")

_SHOWN = 3  # examples named per warning


@dataclasses.dataclass(frozen=True)
class FolderRow:
    """One audio file found in a class folder.

    Attributes
    ----------
    path : Path
        Absolute path of the file.
    label : str
        The class (the name of its class folder).
    partition : str
        ``train``/``devel``/``test`` in the partitioned layout, else ``""``.
    group : str
        From ``group_pattern``, else ``""``.
    """

    path: Path
    label: str
    partition: str
    group: str


@dataclasses.dataclass(frozen=True)
class FolderManifest:
    """The rows a folder of class folders stands for.

    Attributes
    ----------
    root : Path
        The folder (absolute).
    rows : list[FolderRow]
        Audio files, ordered by partition, class and path.
    partitioned : bool
        The partitions come from ``train``/``devel``/``test`` folders.
    warnings : list[str]
        Files not used (outside class folders, unknown extensions) and empty class folders (not
        logged here: :func:`~dsplug.data.load_manifest` and the CLI report them).
    """

    root: Path
    rows: list[FolderRow]
    partitioned: bool
    warnings: list[str]

    @property
    def columns(self) -> list[str]:
        """The CSV columns these rows fill (``path, label[, partition][, group]``)."""
        return ["path", "label"] + (["partition"] if self.partitioned else []) + (
            ["group"] if any(row.group for row in self.rows) else []
        )


def compile_group_pattern(pattern: str) -> re.Pattern[str]:
    """``data.group_pattern`` compiled, or a :class:`DataError` saying what is wrong with it."""
    try:
        return check_group_pattern(pattern)
    except ValueError as err:
        raise DataError(str(err)) from err


def group_of(name: str, *, pattern: re.Pattern[str], where: str) -> str:
    """The group a file name holds: the pattern's group named ``group``, else its only group.

    Parameters
    ----------
    name : str
        A file name (without folders), e.g. ``spk3_0002_T1.ogg``.
    pattern : re.Pattern
        From :func:`compile_group_pattern`; searched (not anchored) in ``name``.
    where : str
        Where the name comes from (named in the error).

    Raises
    ------
    DataError
        The pattern does not match the name, or its group matches nothing.
    """
    found = pattern.search(name)
    group = (found.group("group") if "group" in pattern.groupindex else found.group(1)) if found else None
    if not group:
        raise DataError(
            f"{where}: data.group_pattern '{pattern.pattern}' does not "
            f"{'match' if not found else 'capture a group in'} the file name {name!r}; fix the pattern "
            "(it is searched in the file name, not the path) or rename the file"
        )
    return group


def _audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def _listing(entries: list[Path], root: Path) -> str:
    shown = ", ".join(str(p.relative_to(root)) for p in entries[:_SHOWN])
    return shown + (f" and {len(entries) - _SHOWN} more" if len(entries) > _SHOWN else "")


def scan_folder(root: str | os.PathLike[str], *, group_pattern: str | None = None) -> FolderManifest:
    """Find the audio files of a folder of class folders (or of train/devel/test folders of them).

    Parameters
    ----------
    root : path
        The folder.
    group_pattern : str, optional
        ``data.group_pattern``: finds each file's group in its file name.

    Raises
    ------
    DataError
        The folder does not exist or has no class folder with audio; top-level folders mix
        partition names and class names; a file name does not match ``group_pattern``.
    """
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise DataError(f"manifest folder {str(root)!r} does not exist; give a CSV file or a folder of class folders")
    pattern = compile_group_pattern(group_pattern) if group_pattern is not None else None
    top = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    dirs = [p for p in top if p.is_dir()]
    named = [p.name for p in dirs if p.name in PARTITION_FOLDERS]
    if named and len(named) < len(dirs):
        others = [p.name for p in dirs if p.name not in PARTITION_FOLDERS]
        raise DataError(
            f"manifest folder {folder}: top-level folders {', '.join(named)} are partition names but "
            f"{', '.join(others[:_SHOWN])} are not; either every top-level folder is a class, or they are "
            f"{'/'.join(PARTITION_FOLDERS)} folders that hold the class folders (rename or move them)"
        )
    partitioned = bool(named)
    rows: list[FolderRow] = []
    outside: list[Path] = [p for p in top if p.is_file()]
    unknown: list[Path] = []
    empty: list[str] = []
    parts: list[tuple[str, list[Path]]] = [("", dirs)]
    if partitioned:
        parts = []
        for base in dirs:
            inside = sorted(p for p in base.iterdir() if not p.name.startswith("."))
            outside += [p for p in inside if p.is_file()]
            parts.append((base.name, [p for p in inside if p.is_dir()]))
    for partition, class_dirs in parts:
        for class_dir in class_dirs:
            files = _files_below(class_dir)
            unknown += [p for p in files if not _audio(p)]
            audio = [p for p in files if _audio(p)]
            if not audio:
                empty.append(str(class_dir.relative_to(folder)))
            for path in audio:
                where = f"manifest folder {folder}, file {path.relative_to(folder)}"
                group = group_of(path.name, pattern=pattern, where=where) if pattern is not None else ""
                rows.append(FolderRow(path, class_dir.name, partition, group))
    warnings = _warnings(folder, outside=outside, unknown=unknown, empty=empty)
    if not rows:
        raise DataError(
            f"manifest folder {folder} holds no audio file in a class folder; put the files of each "
            f"class in a subfolder named after the class (DIR/CLASS/file.wav)"
            + (f" ({'; '.join(warnings)})" if warnings else "")
        )
    return FolderManifest(folder, rows, partitioned, warnings)


def _files_below(folder: Path) -> list[Path]:
    """Every non-hidden file below ``folder`` (hidden folders skipped), sorted by path."""
    found = []
    for current, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [Path(current) / n for n in names if not n.startswith(".")]
    return sorted(found)


def _warnings(root: Path, *, outside: list[Path], unknown: list[Path], empty: list[str]) -> list[str]:
    """Messages about what a folder holds that is not used."""
    warnings = []
    if outside:
        warnings.append(
            f"{len(outside)} file(s) outside a class folder are not used: {_listing(outside, root)}; "
            "move them into the folder of their class"
        )
    if unknown:
        by_ext = Counter(p.suffix.lower() or "(no extension)" for p in unknown)
        kinds = ", ".join(f"{ext} ({n})" for ext, n in by_ext.most_common())
        warnings.append(
            f"{len(unknown)} file(s) with an extension that is not an audio format are not used: {kinds}, "
            f"e.g. {_listing(unknown, root)}; rename them if they are audio "
            f"({', '.join(sorted(AUDIO_EXTENSIONS))})"
        )
    if empty:
        warnings.append(f"class folder(s) without audio files, not classes: {', '.join(empty[:_SHOWN])}")
    return warnings


def folder_csv(folder: FolderManifest, *, base: Path) -> str:
    """The manifest CSV text of a scanned folder, paths relative to ``base`` (the CSV's folder).

    A path that cannot be relative (another drive) is written absolute.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = folder.columns
    writer.writerow(columns)
    for row in folder.rows:
        try:
            path = Path(os.path.relpath(row.path, base)).as_posix()
        except ValueError:  # another drive (Windows)
            path = str(row.path)
        cells = {"path": path, "label": row.label, "partition": row.partition, "group": row.group}
        writer.writerow([cells[c] for c in columns])
    return buffer.getvalue()


def write_folder_manifest(
    root: str | os.PathLike[str], *, out: str | os.PathLike[str], group_pattern: str | None = None
) -> FolderManifest:
    """Write the manifest CSV a folder of class folders stands for (atomically), for editing.

    ``dsplug manifest DIR -o CSV``. Paths are relative to the CSV's folder; a recipe naming this
    CSV reads the same files, labels, partitions and groups as one naming ``DIR``.

    Parameters
    ----------
    root : path
        The folder of class folders.
    out : path
        The CSV to write.
    group_pattern : str, optional
        Adds a ``group`` column from the file names (see :func:`group_of`).

    Raises
    ------
    DataError
        See :func:`scan_folder`.
    RunError
        ``out`` cannot be written.
    """
    target = Path(out).expanduser()
    check_writable_file(target, what="manifest CSV")
    folder = scan_folder(root, group_pattern=group_pattern)
    write_atomic(target, folder_csv(folder, base=target.resolve().parent))
    return folder
