"""Hostile files made by code: WAV headers that lie, damaged audio, ragged manifests, YAML bombs,
zip-bomb and code-running ``.pth`` files, and a small valid data set to break one thing at a time.

Nothing here needs PyTorch or a network: ``.pth`` files are written as raw pickle opcodes.
"""

from __future__ import annotations

import io
import pickle
import struct
import tempfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000

#: A tiny recipe whose runs are refused before training (or train for a second): a random-init
#: MobileNetV2 on 32x32 images, no augmentation, one epoch, no bootstrap.
RECIPE = """\
name: tiny
seed: 1
data: {manifest: m.csv, chunk_seconds: 0.5}
frontend: {image_size: [32, 32], n_mels: 32}
model:
  backbone: {name: mobilenet_v2, weights: none}
  head: {name: mlp, units: 8, dropout: 0.0}
train: {batch_size: 4, optimizer: adam, lr: 0.01, phase1: {epochs: 1}, phase2: {epochs: 0}}
augment: {policy: none}
evaluate: {bootstrap: 0}
"""


# ------------------------------------------------------------------------------------ audio
def tone(seconds: float = 0.5, *, freq: float = 440.0, rate: int = RATE, channels: int = 1) -> np.ndarray:
    """A sine tone, float32 ``(n,)`` or ``(n, channels)`` at amplitude 0.3."""
    t = np.arange(int(seconds * rate)) / rate
    signal = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return signal if channels == 1 else np.repeat(signal[:, None], channels, axis=1)


def write_tone(path: Path, **kwargs: object) -> Path:
    """A valid 16-bit WAV tone (see :func:`tone`)."""
    rate = int(kwargs.get("rate", RATE))  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(**kwargs), rate, subtype="PCM_16")  # type: ignore[arg-type]
    return path


def wav_bytes(*, rate: int = RATE, channels: int = 1, bits: int = 16, fmt: int = 1,
              data: bytes | None = None, data_size: int | None = None) -> bytes:
    """A RIFF/WAVE file whose header says whatever it is told (rate, channels, sizes)."""
    data = b"\x00\x10" * 800 if data is None else data
    block = channels * bits // 8
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, fmt, channels, rate, rate * block, block, bits)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + fmt_chunk + struct.pack("<4sI", b"data", size) + data
    return struct.pack("<4sI", b"RIFF", len(body)) + body


def float_wav(path: Path, values: np.ndarray, rate: int = RATE) -> Path:
    """A 32-bit float WAV holding exactly ``values`` (NaN and infinities included)."""
    sf.write(path, values.astype(np.float32), rate, subtype="FLOAT")
    return path


def _nan_wav(path: Path) -> None:
    values = tone()
    values[100] = np.nan
    float_wav(path, values)


def _inf_wav(path: Path) -> None:
    values = tone()
    values[-1] = np.inf
    float_wav(path, values)


#: Undecodable audio files: kind -> writer. Each must be refused naming the file.
BAD_AUDIO = {
    "empty": lambda p: p.write_bytes(b""),
    "random-bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(3000)),
    "text": lambda p: p.write_text("this is not audio\n"),
    "header-only": lambda p: p.write_bytes(wav_bytes(data=b"")),
    "truncated-header": lambda p: p.write_bytes(wav_bytes()[:30]),
    "rate-0hz": lambda p: p.write_bytes(wav_bytes(rate=0)),
    "rate-1hz": lambda p: p.write_bytes(wav_bytes(rate=1)),
    "rate-999hz": lambda p: p.write_bytes(wav_bytes(rate=999)),
    "rate-10mhz": lambda p: p.write_bytes(wav_bytes(rate=10_000_000)),
    "channels-0": lambda p: p.write_bytes(wav_bytes(channels=0)),
    "bits-0": lambda p: p.write_bytes(wav_bytes(bits=0)),
    "nan-samples": _nan_wav,
    "inf-samples": _inf_wav,
    "too-short-to-resample": lambda p: p.write_bytes(wav_bytes(rate=48000, data=b"\x00\x10")),
    "mp3-garbage": lambda p: p.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 500),
}

#: Odd but valid audio: kind -> writer. These must be read (mixed down, resampled).
ODD_AUDIO = {
    "3-channels": lambda p: write_tone(p, channels=3),
    "7-channels": lambda p: write_tone(p, channels=7),
    "rate-8khz": lambda p: write_tone(p, rate=8000),
    "rate-96khz": lambda p: write_tone(p, rate=96000),
    "data-size-lies": lambda p: p.write_bytes(wav_bytes(data_size=10**9)),
    "silence": lambda p: float_wav(p, np.zeros(8000, np.float32)),
}


# ---------------------------------------------------------------------------------- data set
def dataset(folder: Path, *, per_class: int = 3, classes: tuple[str, ...] = ("x", "y"),
            bad: dict[str, str] | None = None, on_bad_file: str | None = None) -> Path:
    """A valid data set (tones, a manifest with partitions and groups) and its recipe.

    Every class has ``per_class`` files in train and one each in devel and test. ``bad`` maps a
    file name (``x_train_0.wav`` ...) to a :data:`BAD_AUDIO` kind written instead of a tone.

    Returns
    -------
    Path
        ``folder / "r.yaml"`` (manifest ``folder / "m.csv"``).
    """
    rows = ["path,label,partition,group"]
    for number, label in enumerate(classes):
        for partition, count in (("train", per_class), ("devel", 1), ("test", 1)):
            for i in range(count):
                name = f"{label}_{partition}_{i}.wav"
                path = folder / "a" / name
                write_tone(path, freq=300.0 + 200 * number + 10 * i)
                if bad and name in bad:
                    BAD_AUDIO[bad[name]](path)
                group = "g1" if partition == "train" else f"g-{partition}"
                rows.append(f"a/{name},{label},{partition},{group}")
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    recipe = RECIPE if on_bad_file is None else RECIPE.replace("chunk_seconds: 0.5}", f"chunk_seconds: 0.5, on_bad_file: {on_bad_file}}}")
    return write(folder / "r.yaml", recipe)


def write(path: Path, text: str) -> Path:
    """Write dedented text (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# ------------------------------------------------------------------------------------- YAML
def alias_bomb(levels: int = 9) -> str:
    """The billion laughs: 370 bytes of YAML that expand to 10**levels strings."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\ndata: {manifest: m.csv}\n"


def deep_nesting(depth: int = 5000) -> str:
    """A value nested ``depth`` lists deep (recursion in parsers and validators)."""
    return "data: {manifest: m.csv}\nseed: " + "[" * depth + "]" * depth + "\n"


# ------------------------------------------------------------------------------ .pth files
def _str(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    if 0 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def state_dict_pickle(tensors: dict[str, tuple[str, int, tuple[int, ...]]], *, evil: bool = False) -> bytes:
    """Pickle opcodes of a ``torch.save(state_dict)`` data.pkl (protocol 2), no PyTorch needed.

    ``tensors`` maps a name to ``(storage key, elements in the storage, shape)`` of a float32
    tensor. ``evil`` makes the first value ``os.system('echo pwned')`` instead.
    """
    out = [b"\x80\x02", b"ccollections\nOrderedDict\n)R", b"("]
    for name, (key, numel, shape) in tensors.items():
        out.append(_str(name))
        if evil:
            out.append(b"cos\nsystem\n" + _tuple([_str("echo pwned")]) + b"R")
            continue
        storage = _tuple([_str("storage"), b"ctorch\nFloatStorage\n", _str(key), _str("cpu"), _int(numel)]) + b"Q"
        stride = [int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape))]
        args = _tuple([storage, _int(0), _tuple([_int(s) for s in shape]), _tuple([_int(s) for s in stride]),
                       b"\x89", b"ccollections\nOrderedDict\n)R"])
        out.append(b"ctorch._utils\n_rebuild_tensor_v2\n" + args + b"R")
    out.append(b"u.")
    return b"".join(out)


def pth_zip(path: Path, tensors: dict[str, tuple[str, int, tuple[int, ...]]], records: dict[str, bytes],
            *, evil: bool = False, compress: bool = False) -> Path:
    """A zip-format ``.pth``: ``archive/data.pkl`` and ``archive/data/<key>`` records."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr("archive/data.pkl", state_dict_pickle(tensors, evil=evil))
        archive.writestr("archive/byteorder", "little")
        for key, raw in records.items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


def zip_bomb(path: Path, *, megabytes: int = 64) -> Path:
    """A small ``.pth`` whose one storage record really inflates to ``megabytes`` of zeros."""
    numel = megabytes * 2**20 // 4
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("archive/data.pkl", state_dict_pickle({"w": ("0", numel, (numel,))}))
        with archive.open("archive/data/0", "w") as record:
            block = bytes(2**22)
            for _ in range(numel * 4 // len(block)):
                record.write(block)
    return path


def lying_zip(path: Path, *, claim: int = 2**31) -> Path:
    """A ``.pth`` whose zip headers claim a ``claim``-byte storage record (3.1 GB from 1.5 MB)."""
    numel = claim // 4
    pth_zip(path, {"w": ("0", numel, (numel,))}, {"0": bytes(4096)}, compress=True)
    raw = bytearray(path.read_bytes())
    name = b"archive/data/0"
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            header_name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if raw[header_name_at:header_name_at + len(name)] == name:
                raw[start + size_at:start + size_at + 4] = struct.pack("<I", claim)
            start += 4
    path.write_bytes(bytes(raw))
    return path


def bad_pth(kind: str, path: Path) -> Path:
    """One hostile ``.pth`` file of the given kind (see :data:`BAD_PTH`)."""
    ones = np.ones(6, np.float32).tobytes()
    if kind == "zip-bomb":
        return zip_bomb(path)
    if kind == "zip-bomb-header":
        return lying_zip(path)
    if kind == "os-system":
        return pth_zip(path, {"w": ("0", 6, (6,))}, {"0": ones}, evil=True)
    if kind == "huge-storage-claim":
        return pth_zip(path, {"w": ("0", 2**40, (2**40,))}, {"0": ones})
    if kind == "shape-beyond-storage":
        return pth_zip(path, {"w": ("0", 6, (1000, 1000))}, {"0": ones})
    if kind == "missing-record":
        return pth_zip(path, {"w": ("0", 6, (6,))}, {})
    if kind == "truncated":
        pth_zip(path, {"w": ("0", 6, (6,))}, {"0": ones})
        path.write_bytes(path.read_bytes()[:80])
        return path
    if kind == "plain-pickle":
        path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
        return path
    if kind == "empty":
        path.write_bytes(b"")
        return path
    if kind == "garbage":
        path.write_bytes(b"\x00garbage" * 40)
        return path
    raise ValueError(kind)


BAD_PTH = ("zip-bomb", "zip-bomb-header", "os-system", "huge-storage-claim", "shape-beyond-storage", "missing-record",
           "truncated", "plain-pickle", "empty", "garbage")


def zipped(files: dict[str, bytes]) -> bytes:
    """A zip archive in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


# --------------------------------------------------------------------------- exported model
_MODEL: dict[str, bytes | str] = {}


def plain_model() -> bytes:
    """The tiny model of :func:`model_files` as a flatbuffer without metadata."""
    if not _MODEL:
        model_files(Path(tempfile.mkdtemp()))
    return _MODEL["plain"]  # type: ignore[return-value]


def model_files(folder: Path, *, embedded: bool = True) -> Path:
    """A tiny exported model, ``folder/m/model.tflite`` with its ``model.json``: 0.5 s of 16 kHz audio
    in, probabilities of classes x and y out. ``embedded``: the metadata is inside the model too (as
    ``dsplug export`` writes it); else only in the sidecar (an export of an older dsplug).
    Converted once per process, then copied."""
    if not _MODEL:
        import tf_keras

        from dsplug.artifacts import ModelMetadata
        from dsplug.testing import tflite

        samples = RATE // 2
        tf_keras.utils.set_random_seed(0)
        audio = tf_keras.Input((samples,), name="audio")
        model = tf_keras.Model(audio, tf_keras.layers.Dense(2, activation="softmax")(audio))
        meta = ModelMetadata.for_model(
            name="tiny", task="classification", classes=["x", "y"], sample_rate=RATE, chunk_seconds=0.5,
            hop_seconds=None, pad_mode="zero", backbone="dense", recipe_hash="0123456789abcdef",
        )
        plain = tflite(model, samples=samples)
        _MODEL.update(plain=plain, embedded=meta.to_tflite(plain), json=meta.to_json())
    out = folder / "m"
    out.mkdir(exist_ok=True)
    (out / "model.tflite").write_bytes(_MODEL["embedded" if embedded else "plain"])  # type: ignore[arg-type]
    (out / "model.json").write_text(_MODEL["json"])  # type: ignore[arg-type]
    return out / "model.tflite"
