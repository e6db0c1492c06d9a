"""The on-disk chunk cache: where it is, what its keys are, and its record files.

Layout (``ROOT`` is ``data.cache_dir``, else ``$DSPLUG_CACHE/chunks``, else ``~/.cache/dsplug/chunks``)::

    ROOT/<settings key>/settings.json         what the key stands for (sample rate, chunking, decoder)
    ROOT/<settings key>/shards/<name>.bin     records: raw little-endian samples, no header
    ROOT/<settings key>/shards/<name>.json    its description (written after the .bin: the commit)
    ROOT/<settings key>/sets/<set key>.json   the shards of one list of files, in order

A shard is used only when its description exists and its ``.bin`` has exactly the size the
description states, so a shard whose writing was interrupted (a leftover ``.part`` file, a
``.bin`` without description, a truncated file) is never read: it is written again.

The settings key covers everything the decoded samples depend on: sample rate, chunk and hop
length in samples, padding, the storage type, :data:`DECODER_VERSION` (raised whenever
:mod:`dsplug.audio` changes what it returns) and the versions of libsndfile and soxr. Files are
keyed by a hash of their bytes (:func:`content_hash`), not their path or time stamp.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsplug.artifacts import write_json, writing
from dsplug.audio import HOST_PAD_MODE, RESAMPLE_QUALITY
from dsplug.recipe.schema import DataConfig

logger = logging.getLogger(__name__)

#: Raise when :mod:`dsplug.audio` decodes, resamples or chunks differently: every cached shard
#: then belongs to an old key and is decoded again.
DECODER_VERSION = 1
#: Version of the cache's file layout.
CACHE_FORMAT = 1
ENV_CACHE = "DSPLUG_CACHE"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The chunk cache folder: ``cache_dir``, else ``$DSPLUG_CACHE/chunks``, else ``~/.cache/dsplug/chunks``."""
    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser().resolve() / "chunks"
    return Path.home() / ".cache" / "dsplug" / "chunks"


def chunk_settings(config: DataConfig) -> dict[str, Any]:
    """Everything the decoded chunks depend on (the recipe's ``data`` section and the decoders)."""
    import soundfile
    import soxr

    rate = config.sample_rate
    return {
        "format": CACHE_FORMAT,
        "decoder": DECODER_VERSION,
        "sample_rate": rate,
        "chunk_samples": round(config.chunk_seconds * rate),
        "hop_samples": round((config.hop_seconds or config.chunk_seconds) * rate),
        "pad_mode": HOST_PAD_MODE,  # data.pad_mode: repeat is the model's first layer
        "dtype": config.shard_dtype,
        "libsndfile": soundfile.__libsndfile_version__,
        "resampler": f"soxr {soxr.__version__} {RESAMPLE_QUALITY}",
    }


def digest(parts: Sequence[str], *, size: int = 16) -> str:
    """A hex key of a list of strings (BLAKE2b, ``2 x size`` hex digits)."""
    return hashlib.blake2b("\n".join(parts).encode("utf-8"), digest_size=size).hexdigest()


def settings_folder(root: Path, settings: dict[str, Any]) -> Path:
    """``root/<settings key>``, with ``settings.json`` describing the key."""
    folder = root / digest([json.dumps(settings, sort_keys=True)], size=8)
    if not (folder / "settings.json").is_file():
        write_json(folder / "settings.json", settings)
    return folder


def content_hash(path: str | os.PathLike[str]) -> str:
    """BLAKE2b (128 bits) of a file's bytes, read in blocks (memory stays flat)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


@dataclasses.dataclass(frozen=True)
class Shard:
    """One record file: ``records`` records of ``record_shape`` in ``dtype``, chunk ``offset`` onwards.

    Attributes
    ----------
    path : Path
        The ``.bin`` file.
    files : list[tuple[str, int]]
        (content hash, number of records) of each audio file in it, in order.
    records : int
        Records in the file.
    offset : int
        Index of its first record in the chunk source that uses it.
    """

    path: Path
    files: list[tuple[str, int]]
    records: int
    offset: int = 0

    @property
    def name(self) -> str:
        """The file name without ``.bin``."""
        return self.path.stem


def record_bytes(record_shape: Sequence[int], dtype: str) -> int:
    """Bytes of one record."""
    return int(np.prod(record_shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def read_shard(path: Path, *, dtype: str, record_shape: Sequence[int]) -> Shard | None:
    """The shard at ``path`` (``.bin``) if it is complete and of this type, else None."""
    info = path.with_suffix(".json")
    try:
        meta = json.loads(info.read_text(encoding="utf-8"))
        size = path.stat().st_size
    except (OSError, ValueError):
        return None
    if (
        not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or meta.get("dtype") != dtype
        or list(meta.get("record_shape", [])) != list(record_shape)
        or size != meta.get("records", -1) * record_bytes(record_shape, dtype)
    ):
        logger.debug("ignoring incomplete or foreign shard %s", path)
        return None
    return Shard(path, [(str(h), int(n)) for h, n in meta.get("files", [])], int(meta["records"]))


class RecordWriter:
    """Writes one shard: records appended to a temporary file, renamed and described at the end.

    Parameters
    ----------
    folder : Path
        The shards folder.
    dtype : str
        Storage type (``float16`` or ``float32``); appended records are converted to it.
    record_shape : tuple of int
        Shape of one record.
    """

    def __init__(self, folder: Path, *, dtype: str, record_shape: Sequence[int]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.dtype, self.record_shape = folder, dtype, tuple(record_shape)
        handle, name = _temporary(folder)
        self.handle, self.temporary = handle, Path(name)
        self.files: list[tuple[str, int]] = []
        self.records = 0

    @property
    def bytes(self) -> int:
        """Bytes written so far."""
        return self.records * record_bytes(self.record_shape, self.dtype)

    def append(self, records: np.ndarray | bytes) -> int:
        """Append records (an array of shape ``(n, *record_shape)``, or bytes already in the
        storage type); returns how many."""
        data = records if isinstance(records, bytes) else np.ascontiguousarray(records, dtype=np.dtype(self.dtype).newbyteorder("<")).tobytes()
        count = len(data) // record_bytes(self.record_shape, self.dtype)
        with writing(self.folder, leftovers=[self.temporary]):
            self.handle.write(data)
        self.records += count
        return count

    def add(self, key: str, records: np.ndarray | bytes) -> None:
        """Append the records of one audio file with content hash ``key``."""
        self.files.append((key, self.append(records)))

    def finish(self, name: str) -> Shard:
        """Commit the shard as ``name``: fsync, rename, then its description (atomically)."""
        with writing(self.folder, leftovers=[self.temporary]):
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
        target = self.folder / f"{name}.bin"
        existing = read_shard(target, dtype=self.dtype, record_shape=self.record_shape)
        if existing is not None and existing.files == self.files:  # written meanwhile by another run
            self.temporary.unlink(missing_ok=True)
            return existing
        os.replace(self.temporary, target)
        with writing(target, leftovers=[target]):  # a shard without its description is never read: remove it
            write_json(target.with_suffix(".json"), {
                "format": CACHE_FORMAT, "dtype": self.dtype, "record_shape": list(self.record_shape),
                "records": self.records, "files": [list(f) for f in self.files],
            })
        return Shard(target, list(self.files), self.records)

    def abandon(self) -> None:
        """Remove the temporary file (after an error)."""
        with contextlib.suppress(OSError):
            self.handle.close()
        self.temporary.unlink(missing_ok=True)


def _temporary(folder: Path) -> tuple[Any, str]:
    import tempfile

    fd, name = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    return os.fdopen(fd, "wb"), name


def shard_index(folder: Path, *, dtype: str, record_shape: Sequence[int]) -> dict[str, tuple[Shard, int, int]]:
    """Every complete shard's audio files: content hash -> (shard, first record, records)."""
    index: dict[str, tuple[Shard, int, int]] = {}
    for path in sorted(folder.glob("*.bin")):
        shard = read_shard(path, dtype=dtype, record_shape=record_shape)
        first = 0
        for key, count in shard.files if shard else []:
            index.setdefault(key, (shard, first, count))
            first += count
    return index


def read_records(path: Path, *, first: int, count: int, size: int) -> bytes:
    """``count`` records of ``size`` bytes from record ``first`` of a shard file (one ``pread``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, count * size, first * size)
    finally:
        os.close(fd)


def write_set(path: Path, *, shards: Sequence[Shard], failed: dict[str, str]) -> None:
    """Record which shards hold a list of files (and which files could not be decoded)."""
    write_json(path, {"format": CACHE_FORMAT, "shards": [s.name for s in shards], "failed": failed})


def read_set(path: Path, *, dtype: str, record_shape: Sequence[int]) -> tuple[list[Shard], dict[str, str]] | None:
    """The complete shards (with offsets) and failed files of a recorded set, or None."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        return None
    shards, offset = [], 0
    for name in meta.get("shards", []):
        shard = read_shard(path.parent.parent / "shards" / f"{name}.bin", dtype=dtype, record_shape=record_shape)
        if shard is None:
            logger.info("chunk cache: shard %s of %s is missing or incomplete; writing the set again", name, path.name)
            return None
        shards.append(dataclasses.replace(shard, offset=offset))
        offset += shard.records
    return shards, {str(k): str(v) for k, v in meta.get("failed", {}).items()}


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created): one process writes a set, others wait, then reuse it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent writers write identical files atomically
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
