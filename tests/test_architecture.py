"""The import rule (docs/architecture.md), checked on the source: no module imports one above it.

Layers, lowest first; a module may import modules of its own layer or below, never above:

    records and contracts   errors, version < plugin (api: its old path), task < registry, audio, artifacts, weights < recipe
    plugins and runtime     frontend, backbones, heads, augment, distribute, runtime
    stages                  data < pipeline < evaluate < train (finetune, probe) < report < deploy < explain
    orchestration           workflows, testing
    interface               cli, docs, and the package root (dsplug.load)

Every import counts, also one inside a function. No module imports a private name (``_x``) of
another module, and plugins import only ``dsplug.plugin`` (their tests also ``dsplug.testing``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dsplug"

#: (rank, names): a module's rank is that of its first dotted component under dsplug.
RANKS: dict[str, float] = {
    "errors": 0, "version": 0,
    "api": 1, "plugin": 1, "task": 1,
    "registry": 2, "audio": 2, "artifacts": 2, "weights": 2,
    "recipe": 3,
    "frontend": 4, "backbones": 4, "heads": 4, "augment": 4, "distribute": 4, "runtime": 4,
    "data": 5.0, "pipeline": 5.1, "evaluate": 5.2, "train": 5.3, "report": 5.4, "deploy": 5.5, "explain": 5.6,
    "workflows": 6, "testing": 6,
    "cli": 7, "command": 7, "console": 7, "docs": 7, "": 7,  # "": the package root, dsplug/__init__.py (the Python API)
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _component(module: str) -> str:
    """``dsplug.deploy.convert`` -> ``deploy``; ``dsplug`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.append((node.lineno, base, [alias.name for alias in node.names]))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unknown = sorted({_component(_module_name(p)) for p in SOURCES} - set(RANKS))
    assert not unknown, f"add these packages to RANKS and to docs/architecture.md: {unknown}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    module = _module_name(path)
    rank = RANKS[_component(module)]
    upward, private = [], []
    for line, target, names in _imports(path):
        if target != "dsplug" and not target.startswith("dsplug."):
            continue
        targets = [target] if target != "dsplug" else [f"dsplug.{n}" if (PACKAGE / n).exists() or (PACKAGE / f"{n}.py").exists() else "dsplug" for n in names]
        for imported in targets:
            if RANKS[_component(imported)] > rank:
                upward.append(f"line {line}: {imported} (layer {RANKS[_component(imported)]} > {rank})")
        if target != module and any(n.startswith("_") and not n.startswith("__") for n in names):
            private.append(f"line {line}: from {target} import {', '.join(names)}")
    assert not upward, f"{module} imports upward: " + "; ".join(upward)
    assert not private, f"{module} imports private names of another module: " + "; ".join(private)


PLUGIN_SOURCES = sorted((ROOT / "plugins").glob("*/src/**/*.py")) + sorted((ROOT / "plugins").glob("*/tests/*.py"))


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_use_only_the_public_api(path):
    allowed = {"dsplug.plugin"} | ({"dsplug.testing"} if "tests" in path.parts else set())  # dsplug.api: the old path
    used = {target for _, target, _ in _imports(path) if target == "dsplug" or target.startswith("dsplug.")}
    assert used <= allowed, f"{path.relative_to(ROOT)} imports {sorted(used - allowed)}; plugins import only {sorted(allowed)}"


def test_no_module_is_longer_than_600_lines():
    """Our own modules; vendored generated code (a ``vendor`` folder) is kept as it was generated."""
    own = [p for p in SOURCES if "vendor" not in p.relative_to(PACKAGE).parts]
    long = {str(p.relative_to(ROOT)): n for p in own if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, f"split these modules (at most 600 lines): {long}"


def test_the_runtime_exports_what_an_application_uses():
    """``dsplug.runtime`` is the small surface apps import; the CLI's formatters live in their
    modules, and the names it exported before still resolve, with a warning saying where."""
    import warnings

    from dsplug import runtime
    from dsplug.runtime import output

    assert len(runtime.__all__) <= 16 and all(hasattr(runtime, name) for name in runtime.__all__)
    assert not [name for name in runtime.__all__ if name.startswith(("format_", "check_"))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert runtime.format_predictions is output.format_predictions
    assert [str(w.message) for w in caught] == ["dsplug.runtime.format_predictions is dsplug.runtime.output.format_predictions now"]
    with pytest.raises(AttributeError, match="no attribute 'format_everything'"):
        runtime.format_everything  # noqa: B018
