"""Reading the bundled recordings for the tests: mono float32 at 16 kHz (soundfile + soxr)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr

RATE = 16000


def load_audio(path: Path, *, sample_rate: int = RATE) -> np.ndarray:
    """The file's samples, channels averaged, resampled to ``sample_rate``, in [-1, 1]."""
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    signal = data.mean(axis=1)
    if rate != sample_rate:
        signal = soxr.resample(signal, rate, sample_rate, quality="HQ")
    return np.clip(signal, -1.0, 1.0).astype(np.float32)
