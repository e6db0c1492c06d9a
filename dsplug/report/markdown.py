"""Run reports people can read: ``report.md`` and a self-contained ``report.html``.

The Markdown report holds the recipe summary, the data summary, training curves, metrics with
confidence intervals, the confusion matrix (counts and row percentages, as in the paper's
Figure 3), per-class recall, example spectrograms per class, and export sizes and parity. The
HTML rendering embeds every image as a data URI, so one file can be shared. Later commands add
sections to ``report.md`` (:func:`add_to_report`, e.g. ``dsplug explain --examples``). The
figures themselves are drawn by :mod:`dsplug.report.figures`.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsplug.artifacts import RunDir, write_atomic

logger = logging.getLogger(__name__)

CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th, td { vertical-align: middle; }
img { max-width: 100%; }
audio { height: 2rem; vertical-align: middle; max-width: 14rem; }
td:has(> audio) { white-space: nowrap; }
code, pre { background: #f4f4f4; }
pre { padding: 0.6rem; overflow-x: auto; }
"""


def _ci(m: dict[str, Any], key: str) -> str:
    ci = m.get(f"{key}_ci95")
    return f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else ""


def confusion_table(confusion: Sequence[Sequence[int]], labels: Sequence[str]) -> list[str]:
    """Markdown rows of a confusion matrix: counts and row percentages (rows: true class)."""
    matrix = np.asarray(confusion, dtype=np.int64)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, np.maximum(totals, 1)) * 100
    lines = ["| true \\ predicted | " + " | ".join(labels) + " | n |", "|---|" + "---|" * (len(labels) + 1)]
    for i, name in enumerate(labels):
        cells = " | ".join(f"{matrix[i, j]} ({share[i, j]:.0f} %)" for j in range(len(labels)))
        lines.append(f"| {name} | {cells} | {int(totals[i, 0])} |")
    return lines


def per_class_table(confusion: Sequence[Sequence[int]], labels: Sequence[str]) -> list[str]:
    """Markdown rows of precision, recall, F1 and support per class, from a confusion matrix."""
    matrix = np.asarray(confusion, dtype=np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for i, name in enumerate(labels):
        hit = matrix[i, i]
        precision = hit / predicted[i] if predicted[i] else None
        recall = hit / support[i] if support[i] else None
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else (0.0 if support[i] else None)
        cells = [f"{v:.2f}" if v is not None else "–" for v in (precision, recall, f1)]
        lines.append(f"| {name} | {' | '.join(cells)} | {int(support[i])} |")
    return lines


def clip_link(path: str | os.PathLike[str], run_dir: str | os.PathLike[str]) -> str:
    """A Markdown link to an audio file, relative to the run directory (where the report lies).

    ``report.html`` turns it into a player (:func:`to_html`); it plays while the run directory
    and the data keep their places.
    """
    link = Path(os.path.relpath(Path(path).resolve(), Path(run_dir).resolve())).as_posix()
    return f"[{Path(path).name}]({link})"


def misclassified_section(run_dir: Path, *, partition: str, limit: int = 50) -> list[str]:
    """Markdown of the misclassified files of ``predictions.csv``, most confident mistakes first.

    Each clip is linked relative to the report (the HTML report plays it in place).
    """
    import csv

    path = Path(run_dir) / RunDir.PREDICTIONS
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("label") and row["label"] != row["predicted"]]
    if not rows:
        return [f"No {partition} file is misclassified.", ""]
    rows.sort(key=lambda row: -float(row.get(f"prob_{row['predicted']}", 0) or 0))
    lines = [
        f"## Misclassified {partition} files ({len(rows)}" + (f", the {limit} most confident shown" if len(rows) > limit else "") + ")",
        "",
        "| clip | true class | predicted | p(predicted) | p(true) |",
        "|---|---|---|---|---|",
    ]
    for row in rows[:limit]:
        p_pred, p_true = (float(row.get(f"prob_{row[key]}", "nan") or "nan") for key in ("predicted", "label"))
        lines.append(f"| {clip_link(row['file'], run_dir)} | {row['label']} | {row['predicted']} | {p_pred:.2f} | {p_true:.2f} |")
    return [*lines, ""]


def metrics_section(metrics: dict[str, Any]) -> list[str]:
    """Markdown of the metrics of every evaluated partition."""
    lines: list[str] = []
    for name, m in metrics.items():
        if "uar" in m:
            lines += [
                f"### {name} ({m.get('level', 'file')} level, n = {m['n']})",
                "",
                "| metric | value (95 % CI) |",
                "|---|---|",
                f"| UAR | {m['uar']:.3f}{_ci(m, 'uar')} |",
                f"| accuracy | {m['accuracy']:.3f}{_ci(m, 'accuracy')} |",
                f"| macro-F1 | {m['f1_macro']:.3f} |",
            ]
            if "chunk_level" in m:
                lines.append(f"| UAR, chunk level | {m['chunk_level']['uar']:.3f} |")
            lines += ["", "Per class:", "", *per_class_table(m["confusion"], m["labels"]), ""]
            lines += ["Confusion matrix (counts and row percentages):", "", *confusion_table(m["confusion"], m["labels"]), ""]
        elif "map" in m:
            lines += [f"### {name} (n = {m['n']})", "", f"mAP {m['map']:.3f}", "",
                      "| class | AP |", "|---|---|",
                      *(f"| {k} | {v:.3f} |" if v is not None else f"| {k} | – |" for k, v in m["ap_per_class"].items()), ""]
        else:
            lines += [f"### {name} (n = {m['n']})", "", "| metric | value |", "|---|---|",
                      *(f"| {k} | {v:.4g} |" for k, v in m.items() if isinstance(v, float)), ""]
    return lines


#: The heading of the section ``dsplug export`` adds to an existing report.
EXPORT_SECTION = "## Export (dsplug export)"


def export_lines(export_markdown: str) -> list[str]:
    """``export.md`` without its title, its ``##`` headings one level down (for a report section)."""
    more = export_markdown.splitlines()[1:]
    return [f"#{line}" if line.startswith("## ") else line for line in more]


def write_report(
    run_dir: str | Path,
    *,
    recipe: Any,
    recipe_hash: str,
    data_summary: str,
    metrics: dict[str, Any],
    exported: dict[str, Any],
    training: str,
) -> Path:
    """Write ``report.md`` and ``report.html`` into ``run_dir``; figures already there are linked.

    Returns
    -------
    Path
        The Markdown report.
    """
    run_dir = Path(run_dir)
    model = recipe.model
    lines = [
        f"# dsplug run: {recipe.name}",
        "",
        "## Recipe",
        "",
        "| setting | value |",
        "|---|---|",
        f"| backbone | `{model.backbone.name}` (weights: {model.backbone.weights}) |",
        f"| head | `{model.head.name}` |",
        f"| audio | {recipe.data.chunk_seconds:g} s chunks, hop {recipe.data.hop_seconds or recipe.data.chunk_seconds:g} s, {recipe.data.sample_rate} Hz |",
        f"| front-end | {recipe.frontend.n_mels} Mel bands, {recipe.frontend.window_ms:g} ms window, colour map `{recipe.frontend.colormap}` |",
        f"| training | {training} |",
        f"| augmentation | {recipe.augment.policy}" + (f" ({', '.join(m.name for m in recipe.augment.methods)})" if recipe.augment.policy != "none" else "") + " |",
        f"| recipe hash | `{recipe_hash}` (full recipe: `recipe.yaml`) |",
        "",
        "## Data",
        "",
        "```",
        data_summary,
        "```",
        "",
    ]
    if (run_dir / "examples.png").is_file():
        lines += ["Example images per class (as the model sees them):", "", "![examples](examples.png)", ""]
    if (run_dir / "training.png").is_file():
        lines += ["## Training", "", "![training curves](training.png)", ""]
    lines += ["## Results", "", *metrics_section(metrics)]
    for name, caption in ((RunDir.CONFUSION_PLOT, "confusion matrix"), (RunDir.ROC_PLOT, "ROC curve"), (RunDir.PR_PLOT, "precision-recall curves")):
        if (run_dir / name).is_file():
            lines += [f"![{caption}]({name})", ""]
    if metrics and "uar" in metrics[list(metrics)[-1]]:
        lines += misclassified_section(run_dir, partition=list(metrics)[-1])
    parity = exported.get("parity_fp32", {})
    lines += [
        "## Export",
        "",
        "| model | size | TFLite vs Keras |",
        "|---|---|---|",
        f"| `model.tflite` (fp32, builtin ops only) | {exported['bytes'] / 1e6:.2f} MB | max abs diff "
        f"{parity.get('max_abs_diff', float('nan')):.1e}, top-1 agreement {parity.get('top1_agreement', float('nan')):.3f} on {parity.get('chunks', 0)} chunks |",
        "",
    ]
    if "parity" in exported and (run_dir / "export.md").is_file():  # quantised / pruned models too
        lines += export_lines((run_dir / "export.md").read_text(encoding="utf-8"))
    text = "\n".join(lines)
    markdown_path = write_atomic(run_dir / RunDir.REPORT, text)
    write_atomic(run_dir / RunDir.REPORT_HTML, to_html(text, base=run_dir, title=f"dsplug run: {recipe.name}"))
    return markdown_path


def to_html(markdown_text: str, *, base: Path, title: str) -> str:
    """Render Markdown to one self-contained HTML page (images embedded as data URIs).

    Raw HTML in the Markdown is shown as text, never interpreted: class labels, file names and
    recipe values come from data (a label ``<img src=x onerror=...>`` stays text).
    """
    import html

    import markdown

    renderer = markdown.Markdown(extensions=["tables", "fenced_code"])
    renderer.preprocessors.deregister("html_block")  # raw HTML blocks and inline tags are text
    renderer.inlinePatterns.deregister("html")
    body = renderer.convert(markdown_text)
    title = html.escape(title)

    def embed(match: re.Match[str]) -> str:
        path = base / match.group(1)
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^":]+\.png)"', embed, body)
    # audio links become players (relative links: the page plays the clips where they lie)
    body = re.sub(
        r'<a href="([^"]+\.(?:wav|ogg|oga|flac|mp3|opus|aiff?))">([^<]*)</a>',
        r'<audio controls preload="none" src="\1"></audio> <a href="\1">\2</a>',
        body,
        flags=re.IGNORECASE,
    )
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
        f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def add_to_report(run_dir: str | os.PathLike[str], *, markdown: str) -> Path:
    """Put a section into ``run_dir/report.md``, replacing an earlier one with the same heading.

    The section's heading is the first line of ``markdown`` (a ``## `` heading, e.g. the
    ``## Explanations (devel)`` snippet of :func:`dsplug.explain.explain_examples`). An earlier
    section with that heading (from it to the next ``## `` heading or the end) is replaced, so
    adding it again does not repeat it; otherwise the section is appended. ``report.html`` is
    rendered again from the new ``report.md``.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run directory (``report.md`` is created if absent).
    markdown : str
        The section, starting with its ``## `` heading line.

    Returns
    -------
    Path
        The report file.

    Raises
    ------
    ValueError
        ``markdown`` does not start with a ``## `` heading.
    """
    heading = markdown.split("\n", 1)[0]
    if not heading.startswith("## "):
        raise ValueError(f"a report section starts with a '## ' heading line, got {heading!r}")
    report = Path(run_dir) / RunDir.REPORT
    text = report.read_text(encoding="utf-8") if report.is_file() else ""
    lines = text.splitlines()
    if heading in lines:
        first = lines.index(heading)
        rest = [i for i in range(first + 1, len(lines)) if lines[i].startswith("## ")]
        lines = lines[:first] + (lines[rest[0]:] if rest else [])
    body = "\n".join(lines).rstrip("\n")
    text = (body + "\n\n" if body else "") + markdown.rstrip("\n") + "\n"
    write_atomic(report, text)
    title = lines[0][2:] if lines and lines[0].startswith("# ") else "dsplug run"
    write_atomic(report.with_name(RunDir.REPORT_HTML), to_html(text, base=report.parent, title=title))
    return report
