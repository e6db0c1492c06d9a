"""Generated documentation matches the code it is generated from."""

from __future__ import annotations

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
