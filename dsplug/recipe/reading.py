"""Reading a recipe file: YAML whose duplicate keys are refused and whose aliases cannot expand
without bound (the "billion laughs"), nested no deeper than a recipe needs.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from dsplug.errors import RecipeError


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects duplicate keys (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        explicit = [pair for pair in node.value if pair[0].tag != "tag:yaml.org,2002:merge"]
        self.flatten_mapping(node)  # merge keys ('<<: *defaults'): explicit keys win, as YAML says
        for key_node, _ in explicit:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name, got {type(key).__name__} {key!r}", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


#: Limits on what a recipe file may expand to (YAML aliases can make a 400-byte file expand to
#: gigabytes: the "billion laughs").
MAX_RECIPE_BYTES = 1_000_000
MAX_RECIPE_NODES = 100_000


def _load_yaml(text: str, *, source: Path) -> Any:
    """Parse YAML (duplicate keys refused), refusing documents whose aliases expand too far."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}

        def expanded(item: yaml.Node) -> int:
            if id(item) in sizes:
                return sizes[id(item)]
            sizes[id(item)] = MAX_RECIPE_NODES + 1  # a node reached again while being counted: a cycle
            children = item.value if isinstance(item, yaml.SequenceNode) else (
                [part for pair in item.value for part in pair] if isinstance(item, yaml.MappingNode) else []
            )
            total = 1
            for child in children:
                total += expanded(child)
                if total > MAX_RECIPE_NODES:
                    break
            sizes[id(item)] = total
            return total

        if expanded(node) > MAX_RECIPE_NODES:
            raise RecipeError(
                f"{source}: the YAML expands to more than {MAX_RECIPE_NODES} values (through aliases "
                "'*name' or recursion); write the recipe out without aliases"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """Read a recipe YAML file into a mapping.

    Raises
    ------
    RecipeError
        The file is missing, not YAML, or not a mapping at the top level.
    """
    path = Path(path)
    if path.is_dir():
        raise RecipeError(f"recipe file {str(path)!r} is a folder; give the recipe's YAML file")
    if not path.is_file():
        raise RecipeError(f"recipe file {str(path)!r} does not exist; check the path")
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path}: {path.stat().st_size} bytes is too large for a recipe (at most {MAX_RECIPE_BYTES})")
    try:
        raw = _load_yaml(path.read_text(encoding="utf-8"), source=path)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RecipeError(
            f"{path}: not valid YAML{where}: {problem}; fix the syntax (indentation, ':' after keys)"
        ) from err
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not a text file (UTF-8 YAML expected)") from err
    except RecursionError as err:
        raise RecipeError(f"{path}: the YAML is nested too deeply to be a recipe; write it out flat") from err
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise RecipeError(f"{path}: a value cannot be read ({err}); fix it") from err
    if not isinstance(raw, dict):
        what = "the file is empty" if raw is None else f"got {type(raw).__name__} {str(raw)[:40]!r}"
        raise RecipeError(f"{path}: a recipe must be a YAML mapping of sections (data:, model:, ...); {what}")
    try:
        check_finite(raw)
    except RecipeError as err:
        raise RecipeError(f"{path}: {err}") from None
    return raw


def check_finite(value: Any, *, key: str = "") -> None:
    """Refuse NaN and infinite numbers anywhere in recipe data (YAML's ``.nan``, ``.inf``), and the
    values YAML types that a recipe cannot hold (dates, ``!!binary``, ``!!set``).

    Raises
    ------
    RecipeError
        Naming the key (``train.lr: expected a finite number, got inf``).
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{key or 'value'}: expected a finite number, got {value}")
    if isinstance(value, datetime.date):
        raise RecipeError(f"{key or 'value'}: YAML reads {value} as a date; quote it to give text: '{value}'")
    if isinstance(value, (bytes, set)):
        kind, fix = ("!!binary", "write the text itself") if isinstance(value, bytes) else ("!!set", "write a list, e.g. [1, 2]")
        raise RecipeError(f"{key or 'value'}: a {kind} value cannot be a recipe value; {fix}")
    if isinstance(value, dict):
        for name, item in value.items():
            check_finite(item, key=f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_finite(item, key=f"{key}.{index}")


