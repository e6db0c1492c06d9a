"""Generate reference pages (Markdown) from the code, so the docs cannot go stale.

    python -m dsplug.docs            # rewrites docs/recipe-reference.md and docs/cli-reference.md

The recipe reference comes from the pydantic schema, the CLI reference from the typer app. A
test compares the committed pages with this output, and ``mkdocs build --strict`` runs in the
test suite.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from dsplug.recipe.schema import PluginSection, Recipe


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a).replace("'", "") for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        return " \\| ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return {int: "integer", float: "number", str: "string", bool: "boolean"}.get(annotation, str(annotation))


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list):
        value = [v.model_dump() if isinstance(v, BaseModel) else v for v in value]
        return "`" + ", ".join(v["name"] if isinstance(v, dict) else str(v) for v in value) + "`"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _section(model: type[BaseModel], prefix: str, lines: list[str]) -> None:
    rows = []
    nested = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        inner = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel) and typing.get_origin(annotation) is not list:
            nested.append((inner, f"{key}."))
        meaning = field.description or (inner.__doc__ or "").strip().splitlines()[0] if isinstance(inner, type) else field.description
        rows.append(f"| `{key}` | {_type_name(annotation)} | {_default(field)} | {meaning or ''} |")
    title = prefix.rstrip(".") or "top level"
    lines += [f"## {title}", ""]
    if model.__doc__:
        lines += [model.__doc__.strip().splitlines()[0], ""]
    if issubclass(model, PluginSection):
        lines += ["Besides these keys, the section takes the options of the plugin it names "
                  "(see `dsplug plugins` and the plugin's `Options`).", ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    for inner, sub in nested:
        _section(inner, sub, lines)


def reference_markdown() -> str:
    """The recipe reference page."""
    lines = [
        "# Recipe reference",
        "",
        "Generated from `dsplug/recipe/schema.py` by `python -m dsplug.docs`; do not edit.",
        "Unknown keys and values of the wrong type are errors. Any key can be overridden with",
        "`--set KEY=VALUE`. The `sweep:` block (or `--set 'sweep.KEY=[a, b]'`) makes a sweep: one run",
        "per point of the grid over its lists. A list anywhere else is the key's value.",
        "",
    ]
    _section(Recipe, "", lines)
    return "\n".join(lines).rstrip() + "\n"


def cli_markdown() -> str:
    """The CLI reference page, from the typer app's commands and their parameters."""
    import typer.main

    from dsplug.cli import app

    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="dsplug")
    lines = [
        "# CLI reference",
        "",
        "Generated from the typer app (`dsplug/cli.py`) by `python -m dsplug.docs`; do not edit.",
        "Every command also takes `--help`, `--version` and `--debug` (show tracebacks). Errors end",
        "with one line on stderr and exit code 2 (a refused input: the line names the file, key or",
        "value); exit code 1 means done with some inputs skipped, 3 an internal error (a bug: rerun",
        "with `--debug` and report it), 130 interrupted. Output paths are checked before any work.",
        "",
    ]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        ctx = typer.Context(command, info_name=name, parent=root)
        usage = " ".join(command.collect_usage_pieces(ctx))
        lines += [f"## dsplug {name}", "", f"`dsplug {name} {usage}`", ""]
        lines += [(command.help or "").strip().replace("\n\n", "\n\n"), ""]
        rows = []
        for param in command.params:
            if param.name in ("version", "debug", "help"):
                continue
            if param.param_type_name == "argument":
                label = f"`{param.metavar or (param.name or '').upper()}`"
                kind = "argument" + ("" if param.required else ", optional")
            else:
                value = f" {param.metavar}" if param.metavar else ""  # `--out DIR`
                label = ", ".join(f"`{opt}`" for opt in param.opts[:-1]) + ", " * (len(param.opts) > 1)
                label = (label + f"`{param.opts[-1]}{value}`").replace("|", "\\|")
                kind = "flag" if getattr(param, "is_flag", False) else "option"
            default = param.default
            shown = "" if default in (None, False, [], ()) or callable(default) else f"`{default}`"
            help_text = (getattr(param, "help", None) or "").replace("|", "\\|")
            rows.append(f"| {label} | {kind} | {shown} | {help_text} |")
        if rows:
            lines += ["| name | kind | default | meaning |", "|---|---|---|---|", *rows, ""]
    return "\n".join(lines).rstrip() + "\n"


PAGES = {"recipe-reference.md": reference_markdown, "cli-reference.md": cli_markdown}


def write_pages(folder: str = "docs") -> None:
    """Rewrite the generated pages in ``folder``."""
    from pathlib import Path

    for name, make in PAGES.items():
        (Path(folder) / name).write_text(make(), encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    write_pages()
