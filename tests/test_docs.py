"""Generated documentation matches the code it is generated from."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT
from dsplug.docs import PAGES, reference_markdown
from dsplug.recipe.schema import Recipe


def test_generated_pages_are_current():
    for name, make in PAGES.items():
        committed = (ROOT / "docs" / name).read_text()
        assert committed == make(), f"docs/{name} is stale; regenerate it: python -m dsplug.docs"


def test_cli_reference_lists_every_command():
    text = PAGES["cli-reference.md"]()
    for command in ("plugins", "validate", "run", "plot", "sweep", "predict", "stream", "bench"):
        assert f"## dsplug {command}" in text


def test_recipe_reference_lists_every_key_with_a_meaning():
    text = reference_markdown()

    def keys(model, prefix=""):
        for name, field in model.model_fields.items():
            yield f"{prefix}{name}", field
            inner = field.annotation
            if isinstance(inner, type) and hasattr(inner, "model_fields"):
                yield from keys(inner, f"{prefix}{name}.")

    for key, field in keys(Recipe):
        assert f"| `{key}` |" in text, key
        row = next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))
        assert row.rstrip("| ").split("|")[-1].strip(), f"{key} has no meaning documented"


def test_mkdocs_build_strict(tmp_path):
    """The documentation site builds without warnings (broken links, missing snippets)."""
    import subprocess
    import sys
    from pathlib import Path

    mkdocs = Path(sys.executable).parent / "mkdocs"
    result = subprocess.run([str(mkdocs), "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    import html
    import re

    page = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "site" / "plugins" / "index.html").read_text()))
    assert "class TinyConv(Backbone)" in page  # the real plugin file was included


def test_no_page_installs_dsplug_from_an_index():
    """dsplug is not on a public package index: pages install it from the source tree or a wheel."""
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    from_index = re.compile(r"pip install\s+[\"']?dsplug(\[[a-z,]+\])?[\"']?(\s|$|`)")
    found = [f"{p.name}: {line.strip()}" for p in pages for line in p.read_text().splitlines() if from_index.search(line)]
    assert not found, found


# ------------------------------------------------------------------ docs/getting-started.md, run as written
GETTING_STARTED = ROOT / "docs" / "getting-started.md"
#: The speakers of data/voices whose recordings stand for the page's my-recordings/ (6 of 17: 77
#: files, every class), and the clips of its new-clips/.
SPEAKERS = ("arachna", "ayumi", "beret", "kyonshi", "neko", "sarge")
NEW_CLIPS = ("sarge_death1.ogg", "sarge_fall1.ogg")
#: Added to the page's `dsplug run`: its recipe (EfficientNet-Lite0 features at 224 px) takes about
#: four minutes here with the int8 export; a tiny backbone runs the same commands in about one.
FAST_RUN = [
    "--set", "model.backbone.name=tinyconv", "--set", "model.backbone.weights=none", "--set", "frontend.image_size=[32,32]",
    "--set", "evaluate.bootstrap=100", "--set", "export.representative_size=16",
]
#: Lines of the page the test does not run, and what it does instead.
NOT_RUN = {
    "npm install ": "a stand-in MediaPipe bundle in $DSPLUG_MEDIAPIPE_WEB",
    "python -m http.server ": "the folder it serves is checked",
}


def bash_commands(markdown: str) -> list[tuple[str, list[str]]]:
    """Every command line of the ```bash blocks: (the line, its arguments without the comment)."""
    import shlex

    blocks = re.findall(r"```bash\n(.*?)```", markdown, flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [(line, shlex.split(line, comments=True)) for line in lines if shlex.split(line, comments=True)]


def _my_recordings(folder):
    """my-recordings/<class>/<file> and new-clips/ from data/voices (see SPEAKERS)."""
    import csv
    import shutil

    voices = ROOT / "data" / "voices"
    with open(voices / "manifest.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["group"] in SPEAKERS:
                (folder / "my-recordings" / row["label"]).mkdir(parents=True, exist_ok=True)
                shutil.copy(voices / row["path"], folder / "my-recordings" / row["label"])
    (folder / "new-clips").mkdir()
    for name in NEW_CLIPS:
        shutil.copy(voices / "audio" / name, folder / "new-clips")


def _stand_in_bundle(folder):
    """The files of an npm install of MediaPipe's web bundle (empty: the page is not opened here)."""
    import json

    from dsplug.deploy.web import BUNDLE_FILES, BUNDLE_PACKAGE, BUNDLE_VERSION

    for name in BUNDLE_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("")
    (folder / "package.json").write_text(json.dumps({"name": BUNDLE_PACKAGE, "version": BUNDLE_VERSION}))
    return folder


@pytest.mark.heavy
def test_getting_started_runs_as_written(tmp_path, monkeypatch):
    """Every command of docs/getting-started.md, in order, from a folder with the user's recordings."""
    from typer.testing import CliRunner

    from dsplug.cli import app

    _my_recordings(tmp_path)
    monkeypatch.setenv("DSPLUG_MEDIAPIPE_WEB", str(_stand_in_bundle(tmp_path / "mediapipe")))
    monkeypatch.chdir(tmp_path)
    commands = bash_commands(GETTING_STARTED.read_text())
    assert [args[1] for _, args in commands if args[0] == "dsplug"] == [
        "manifest", "init", "validate", "run", "explain", "explain", "export", "predict",
    ]
    output = {}
    for line, args in commands:
        if args[0] != "dsplug":
            assert any(line.startswith(start) for start in NOT_RUN), f"the test does not know how to run {line!r}"
            continue
        result = CliRunner().invoke(app, args[1:] + (FAST_RUN if args[1] == "run" else []))
        assert result.exit_code == 0, f"{line}\n{result.output}"
        output[args[1]] = result.output

    run = tmp_path / "runs" / "my-recordings"
    page = GETTING_STARTED.read_text()
    table = page[page.index("| file | what |"):].split("\n\n")[0]
    for name in re.findall(r"`([\w.-]+\.\w+)`", table):
        assert (run / name).is_file(), name
    assert "groups from the file names" in output["manifest"] and "test: UAR" in output["run"]
    report = (run / "report.md").read_text()
    assert "## Explanations (devel)" in report and "`train.final_fit: true`" in report
    assert "## Export (dsplug export)" in report and "model-int8.tflite" in report
    assert "<h2>Explanations (devel)</h2>" in (run / "report.html").read_text()
    assert "Devel was part of the final fit" in (run / "export.md").read_text()
    assert (run / "sarge_fall1-gradients.png").is_file()
    assert (tmp_path / "web" / "index.html").is_file() and (tmp_path / "web" / "models" / "model-int8.tflite").is_file()
    assert [line.split()[0] for line in output["predict"].splitlines() if line.startswith("new-clips/")] == [
        f"new-clips/{name}" for name in NEW_CLIPS
    ]
