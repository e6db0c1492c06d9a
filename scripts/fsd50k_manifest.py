"""FSD50K's ground truth as a multi-label dsplug manifest (for recipes/fsd50k-lean.yaml).

    python scripts/fsd50k_manifest.py /data/FSD50K -o /data/FSD50K/fsd50k.csv

FSD50K (Fonseca et al. 2020; Zenodo record 4060432; 51,197 clips, 108 h, 200 AudioSet classes)
unzips into one folder holding::

    FSD50K.dev_audio/<fname>.wav        FSD50K.ground_truth/dev.csv         fname,labels,mids,split
    FSD50K.eval_audio/<fname>.wav       FSD50K.ground_truth/eval.csv        fname,labels,mids
                                        FSD50K.ground_truth/vocabulary.csv  index,label,mid (no header)

The manifest has the columns ``path`` (relative to the manifest's folder), ``label`` (the clip's
class names, ``;``-separated, in the ground truth's order) and ``partition``: dev ``train`` ->
``train``, dev ``val`` -> ``devel``, eval -> ``test`` (FSD50K's own split, which keeps each
uploader's clips on one side). Every label is checked against the vocabulary, and against its
AudioSet id (``mids``); every audio file must exist. Problems end in one message naming the
file, the line and the fix (exit code 2).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
from collections import Counter
from pathlib import Path

from dsplug.artifacts import check_writable_file, write_atomic
from dsplug.errors import DataError

logger = logging.getLogger("fsd50k_manifest")

GROUND_TRUTH = "FSD50K.ground_truth"
AUDIO = {"dev": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}
PARTITION = {("dev", "train"): "train", ("dev", "val"): "devel", ("eval", ""): "test"}


def _fix(root: Path) -> str:
    return (
        f"pass the folder that holds {GROUND_TRUTH}, {AUDIO['dev']} and {AUDIO['eval']} (FSD50K unzipped "
        f"from Zenodo record 4060432), not {root}"
    )


def read_vocabulary(path: Path, *, root: Path) -> dict[str, str]:
    """``vocabulary.csv`` (index, label, mid; no header) as {label: mid}.

    Raises
    ------
    DataError
        Missing file, a row that is not three fields, a repeated label.
    """
    if not path.is_file():
        raise DataError(f"{path} does not exist; {_fix(root)}")
    vocabulary: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if len(row) != 3 or not row[0].strip().isdigit():
                raise DataError(f"{path}, line {line}: expected 'index,label,mid', got {','.join(row)!r}; is this FSD50K's vocabulary.csv?")
            label, mid = row[1].strip(), row[2].strip()
            if label in vocabulary:
                raise DataError(f"{path}, line {line}: label {label!r} appears twice")
            vocabulary[label] = mid
    if not vocabulary:
        raise DataError(f"{path} is empty; {_fix(root)}")
    return vocabulary


def read_ground_truth(path: Path, *, subset: str, vocabulary: dict[str, str], root: Path) -> list[tuple[str, list[str], str]]:
    """``dev.csv`` / ``eval.csv`` as (fname, labels, partition) rows, labels checked.

    Raises
    ------
    DataError
        Missing file or columns, an unknown label, labels and mids that disagree, an unknown split.
    """
    if not path.is_file():
        raise DataError(f"{path} does not exist; {_fix(root)}")
    needed = ["fname", "labels", "mids"] + (["split"] if subset == "dev" else [])
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(reader.fieldnames or [])}); is this FSD50K's {subset}.csv?")
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            labels = [lab.strip() for lab in row["labels"].split(",") if lab.strip()]
            mids = [mid.strip() for mid in row["mids"].split(",") if mid.strip()]
            unknown = [lab for lab in labels if lab not in vocabulary]
            if unknown or not labels:
                raise DataError(f"{where}: label(s) {', '.join(map(repr, unknown)) or '(none)'} of clip {row['fname']} are not in vocabulary.csv")
            if [vocabulary[lab] for lab in labels] != mids:
                raise DataError(f"{where}: the labels of clip {row['fname']} ({row['labels']}) do not match its AudioSet ids ({row['mids']})")
            split = row.get("split", "").strip() if subset == "dev" else ""
            if (subset, split) not in PARTITION:
                raise DataError(f"{where}: split {split!r} of clip {row['fname']} is not train or val")
            rows.append((row["fname"].strip(), labels, PARTITION[(subset, split)]))
    return rows


def fsd50k_manifest(root: str | os.PathLike[str], *, out: str | os.PathLike[str]) -> dict[str, int]:
    """Write the dsplug manifest of an FSD50K folder to ``out`` (atomically).

    Returns
    -------
    dict
        Files per partition, and ``classes``.

    Raises
    ------
    DataError
        A wrong folder, damaged ground truth, missing audio files.
    """
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise DataError(f"{root} is not a folder; {_fix(folder)}")
    target = Path(out).expanduser()
    check_writable_file(target, what="manifest CSV")
    truth = folder / GROUND_TRUTH
    vocabulary = read_vocabulary(truth / "vocabulary.csv", root=folder)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "partition"])
    counts: Counter[str] = Counter()
    absent = []
    used: set[str] = set()
    base = target.resolve().parent
    for subset in ("dev", "eval"):
        for fname, labels, partition in read_ground_truth(truth / f"{subset}.csv", subset=subset, vocabulary=vocabulary, root=folder):
            audio = folder / AUDIO[subset] / f"{fname}.wav"
            if not audio.is_file():
                absent.append(f"{AUDIO[subset]}/{fname}.wav")
                continue
            try:
                path = Path(os.path.relpath(audio, base)).as_posix()
            except ValueError:  # another drive
                path = str(audio)
            writer.writerow([path, ";".join(labels), partition])
            counts[partition] += 1
            used.update(labels)
    if absent:
        raise DataError(
            f"{folder}: {len(absent)} audio file(s) of the ground truth do not exist, e.g. {', '.join(absent[:3])}; "
            f"unzip all parts of {AUDIO['dev']} and {AUDIO['eval']} into {folder}"
        )
    write_atomic(target, buffer.getvalue())
    return {**counts, "classes": len(used)}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``fsd50k_manifest.py ROOT -o CSV``; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the FSD50K folder (FSD50K.ground_truth, FSD50K.dev_audio, FSD50K.eval_audio)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="the manifest CSV to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        counts = fsd50k_manifest(args.root, out=args.out)
    except DataError as err:
        logger.error("error: %s", err)
        return 2
    logger.info(
        "wrote %s: %d train, %d devel, %d test clips, %d classes",
        args.out, counts.get("train", 0), counts.get("devel", 0), counts.get("test", 0), counts["classes"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
