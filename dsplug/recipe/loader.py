"""Load a recipe: YAML -> overrides -> sweep points -> validated :class:`Recipe` objects.

Examples
--------
>>> points = load_recipe("recipes/demo.yaml", overrides=["train.batch_size=16"])  # doctest: +SKIP
>>> points[0].recipe.train.batch_size  # doctest: +SKIP
16
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import os
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from dsplug import registry
from dsplug.plugin import Options, Plugin
from dsplug.errors import DsplugError, RecipeError
from dsplug.recipe.reading import check_finite, read_recipe_file
from dsplug.recipe.schema import Recipe

#: Where plugin sections live: (path pattern, plugin group). ``*`` matches a list index.
PLUGIN_SECTIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("model", "backbone"), "backbones"),
    (("model", "head"), "heads"),
    (("augment", "methods", "*"), "augmentations"),
)


@dataclasses.dataclass(frozen=True)
class RecipePoint:
    """One validated recipe (one point of a sweep, or the only one).

    Attributes
    ----------
    recipe : Recipe
        The validated recipe, with plugin defaults filled in and paths made absolute.
    values : dict[str, Any]
        The swept keys and their values at this point (empty without a sweep).
    slug : str
        A directory-safe name for the point (``""`` without a sweep).
    """

    recipe: Recipe
    values: dict[str, Any]
    slug: str

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data (what ``recipe.yaml`` in a run holds)."""
        return self.recipe.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved recipe as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @property
    def hash(self) -> str:
        """sha256 of the resolved recipe (first 16 hex digits)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------- overrides
def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides; values are parsed as YAML (``[1, 2]`` is a list).

    Unknown keys are caught by validation, which names the key; a malformed override is
    reported here.
    """
    result = json.loads(json.dumps(raw))  # deep copy of plain data
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r}: expected KEY=VALUE, e.g. train.batch_size=16")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as err:
            raise RecipeError(f"override {item!r}: the value is not valid YAML") from err
        parts = key.strip().split(".")
        node: Any = result
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, parts[: depth + 1], item)
        _set(node, parts[-1], value, parts, item)
    return result


def _child(node: Any, part: str, path: list[str], item: str) -> Any:
    if isinstance(node, list):
        index = _index(node, part, path, item)
        return node[index]
    if not isinstance(node, dict):
        raise RecipeError(f"override {item!r}: {'.'.join(path[:-1])} is not a section")
    if part not in node or node[part] is None:
        node[part] = _schema_default(path)
    return node[part]


def _schema_default(path: list[str]) -> Any:
    """The schema's default value at a path as plain data ({} where there is none)."""
    parent = _model_at(path[:-1])
    field = parent.model_fields.get(path[-1]) if parent else None
    if field is None:
        return {}
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        return default.model_dump(mode="json")
    if isinstance(default, list):
        return [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in default]
    return {} if default is None else default


def _set(node: Any, part: str, value: Any, path: list[str], item: str) -> None:
    if isinstance(node, list):
        node[_index(node, part, path, item)] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise RecipeError(f"override {item!r}: {'.'.join(path[:-1])} is not a section")


def _index(node: list[Any], part: str, path: list[str], item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise RecipeError(
            f"override {item!r}: {'.'.join(path)}: expected a list index 0..{len(node) - 1}"
        )
    return int(part)


# ------------------------------------------------------------------------------ validation
def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _model_at(path: Sequence[str | int]) -> type[BaseModel] | None:
    """The schema model class that a (dict) path points into, if any."""
    model: Any = Recipe
    for part in path:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = _strip_optional(field.annotation)
        if typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
        model = annotation
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _plugin_sections(raw: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str, dict]]:
    """Find the plugin sections present in raw recipe data."""
    found: list[tuple[tuple[str | int, ...], str, dict]] = []
    for pattern, group in PLUGIN_SECTIONS:
        nodes: list[tuple[tuple[str | int, ...], Any]] = [((), raw)]
        for part in pattern:
            nxt: list[tuple[tuple[str | int, ...], Any]] = []
            for path, node in nodes:
                if part == "*" and isinstance(node, list):
                    nxt += [((*path, i), child) for i, child in enumerate(node)]
                elif isinstance(node, dict) and part in node:
                    nxt.append(((*path, part), node[part]))
            nodes = nxt
        found += [(path, group, node) for path, node in nodes if isinstance(node, dict)]
    return found


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _bounds(field: FieldInfo) -> str:
    """A field's range in words: ``a value in [0, 1)``, ``an integer >= 1``..."""
    limits = {
        name: f"{value}" if isinstance(value, int) else f"{value:g}"
        for m in field.metadata for name in ("ge", "gt", "le", "lt") if hasattr(m, name) for value in [getattr(m, name)]
    }
    noun = "an integer" if _strip_optional(field.annotation) is int else "a value"
    low = [(f"[{limits['ge']}", f">= {limits['ge']}")] if "ge" in limits else []
    low += [(f"({limits['gt']}", f"> {limits['gt']}")] if "gt" in limits else []
    high = [(f"{limits['le']}]", f"<= {limits['le']}")] if "le" in limits else []
    high += [(f"{limits['lt']})", f"< {limits['lt']}")] if "lt" in limits else []
    if low and high:
        return f"{noun} in {low[0][0]}, {high[0][0]}"
    return " and ".join(f"{noun} {words}" for _, words in low + high)


def _format_error(
    error: dict[str, Any], prefix: tuple[str | int, ...] = (), fields: dict[str, FieldInfo] | None = None
) -> str:
    loc = (*prefix, *error["loc"])
    key = ".".join(str(p) for p in loc)
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        candidates = list(model.model_fields) if model else []
        candidates += error.get("ctx", {}).get("candidates", [])
        best = difflib.get_close_matches(str(loc[-1]), candidates, n=1, cutoff=0.5)
        hint = f"; did you mean {'.'.join(str(p) for p in loc[:-1]) + '.' if len(loc) > 1 else ''}{best[0]}?" if best else ""
        allowed = f" (allowed: {', '.join(candidates)})" if candidates and not best else ""
        return f"{key}: unknown key{hint}{allowed}"
    if kind == "value_error":  # a model validator's message names its keys itself
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        return f"{key}: {message}" if key and not message.startswith(key) else message
    if kind == "missing":
        return f"{key}: required; set it in the recipe or with --set {key}=VALUE"
    if kind in _EXPECTED:
        sweep = f"; to try several values, sweep them: a sweep: block or --set 'sweep.{key}=[...]'" if isinstance(value, list) else ""
        return f"{key}: expected {_EXPECTED[kind]}, got {_describe(value)}{sweep}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        options = re.findall(r"'([^']*)'", expected)
        best = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
        hint = f"; did you mean {best[0]!r}?" if best else ""
        return f"{key}: expected one of {expected}, got {_describe(value)}{hint}"
    if fields is None and loc:
        parent = _model_at(loc[:-1])
        fields = dict(parent.model_fields) if parent else None
    field = (fields or {}).get(str(error["loc"][-1])) if error["loc"] else None
    if kind in _BOUNDS and field is not None:
        return f"{key}: expected {_bounds(field)}, got {_describe(value)}"
    if kind == "string_pattern_mismatch" and key == "name" and str(value).startswith("-"):
        return f"name: {_describe(value)} starts with '-', which a shell command reads as an option; start the name with a letter or digit"
    if kind == "string_pattern_mismatch" and key == "name":
        return f"name: expected 1 to 100 letters, digits, '.', '_' or '-' (the run folder runs/NAME; no '/'), got {_describe(value)}"
    message = error["msg"].replace("Input should be ", "expected ").rstrip(".")
    return f"{key}: {message}, got {_describe(value)}"


def _raise_validation(
    err: ValidationError,
    prefix: tuple[str | int, ...] = (),
    source: str = "",
    errors: list[Any] | None = None,
    fields: dict[str, FieldInfo] | None = None,
) -> NoReturn:
    lines = [_format_error(e, prefix, fields) for e in (errors or err.errors())]
    where = f"{source}: " if source else ""
    raise RecipeError(where + "\n".join(lines)) from err


def validate_options(plugin: type[Plugin], values: dict[str, Any], *, key: str, source: str = "") -> Options:
    """Validate a plugin's recipe section against its ``Options`` (one message per problem).

    Parameters
    ----------
    plugin : type
        The plugin class (its ``Options`` is a :class:`dsplug.plugin.Options` subclass).
    values : dict
        The section's option keys (without ``name`` and the other core keys).
    key : str
        The section's recipe path, e.g. ``model.head`` or ``augment.methods.0``.
    source : str
        The recipe file, for messages.

    Returns
    -------
    Options
        The validated options, defaults filled in.

    Raises
    ------
    RecipeError
        One line per problem, each naming the full key (``model.head.units: expected an
        integer >= 1, got 0``), with a did-you-mean for unknown keys.
    """
    options_model = plugin.Options
    try:
        return options_model.model_validate(values)
    except ValidationError as err:
        errors = list(err.errors())
        for e in errors:
            if e["type"] == "extra_forbidden":
                e["ctx"] = {"candidates": list(options_model.model_fields)}  # type: ignore[typeddict-item]
        _raise_validation(err, tuple(key.split(".")), source, errors, dict(options_model.model_fields))


def plugin_options(plugin: type[Plugin], section: Any, *, key: str) -> Options:
    """A plugin's ``Options`` from a recipe section (its keys that are the plugin's options).

    Parameters
    ----------
    plugin : type
        The plugin class.
    section : pydantic model or mapping
        The recipe section (``recipe.model.head``, an entry of ``recipe.augment.methods``).
    key : str
        The section's recipe path, for messages (``model.head``).
    """
    values = section.model_dump() if hasattr(section, "model_dump") else dict(section)
    fields = plugin.Options.model_fields
    return validate_options(plugin, {k: v for k, v in values.items() if k in fields}, key=key)


def _validate_plugin_options(raw: dict[str, Any], source: str) -> None:
    """Check plugin names and options; fill each section with the plugin's defaults."""
    for path, group, section in _plugin_sections(raw):
        key = ".".join(str(p) for p in path)
        name = section.get("name")
        if name is None:
            model = _model_at(path)
            default = model.model_fields["name"].default if model else None
            if not isinstance(default, str):
                raise RecipeError(f"{source}: {key}.name: required; name a {group[:-1]} plugin")
            name = section["name"] = default
        if not isinstance(name, str):
            raise RecipeError(f"{source}: {key}.name: expected a string, got {_describe(name)}")
        try:
            plugin = registry.load(group, name)
        except DsplugError as err:
            raise type(err)(f"{source}: {key}.name: {err}") from err
        core = set(_model_at(path).model_fields)  # type: ignore[union-attr]
        options = {k: v for k, v in section.items() if k not in core}
        section.update(validate_options(plugin, options, key=key, source=source).model_dump())


def validate_recipe(raw: dict[str, Any], *, base_dir: str | Path, source: str = "recipe") -> Recipe:
    """Validate one (sweep-free) recipe mapping.

    Parameters
    ----------
    raw : dict
        Recipe data (after overrides and sweep expansion).
    base_dir : path
        Folder relative paths in the recipe are resolved against (the recipe file's folder).
    source : str
        Name used in error messages (the recipe file).

    Returns
    -------
    Recipe
        With plugin defaults filled in and ``data.manifest`` made absolute.
    """
    try:
        check_finite(raw)
    except RecipeError as err:
        raise RecipeError(f"{source}: {err}") from None
    try:
        data = Recipe.model_validate(raw).model_dump(mode="json")  # defaults filled in
    except ValidationError as err:
        _raise_validation(err, source=source)
    _validate_plugin_options(data, source)
    manifest = Path(data["data"]["manifest"]).expanduser()
    if not manifest.is_absolute():
        manifest = Path(os.path.normpath(Path(base_dir).resolve() / manifest))  # links resolve when read
    data["data"]["manifest"] = str(manifest)
    recipe = Recipe.model_validate(data)
    _check_colormap(recipe.frontend.colormap, source)
    return recipe


def _check_colormap(name: str, source: str) -> None:
    """A colour map is a ``dsplug.colormaps`` plugin or a matplotlib colour map."""
    if name in registry.names("colormaps"):
        return
    import matplotlib

    known = list(matplotlib.colormaps)
    if name not in known:
        plugins = registry.names("colormaps")
        best = difflib.get_close_matches(name, plugins + known, n=1, cutoff=0.6)
        hint = f"; did you mean {best[0]!r}?" if best else ""
        raise RecipeError(
            f"{source}: frontend.colormap: unknown colour map {name!r}{hint} "
            f"(plugins: {', '.join(plugins)}; or any matplotlib colour map)"
        )


# ---------------------------------------------------------------------------------- sweeps
#: The recipe block that declares a sweep: recipe keys (dotted, or nested mappings) to the list of
#: values each takes, e.g. ``sweep: {train.lr: [0.01, 0.001], seed: [0, 1]}``. A list anywhere
#: else is the key's value; only this block sweeps.
SWEEP_BLOCK = "sweep"


def _sweep_axes(raw: dict[str, Any], *, source: str = "recipe") -> list[tuple[tuple[str, ...], list[Any]]]:
    """The swept keys (as path parts) and their values, from the recipe's ``sweep:`` block."""
    block = raw.get(SWEEP_BLOCK)
    if block is None:
        return []
    example = "e.g. sweep: {train.lr: [0.01, 0.001]} or --set 'sweep.train.lr=[0.01, 0.001]'"
    if not isinstance(block, dict) or not block:
        raise RecipeError(f"{source}: sweep: expected a mapping of recipe keys to lists of values, got {_describe(block)}; {example}")
    axes: list[tuple[tuple[str, ...], list[Any]]] = []

    def walk(node: dict[Any, Any], path: tuple[str, ...]) -> None:
        for key, value in node.items():
            parts = (*path, *str(key).split("."))
            if isinstance(value, dict) and value:
                walk(value, parts)
            elif isinstance(value, list) and value:
                axes.append((parts, value))
            else:
                raise RecipeError(
                    f"{source}: sweep.{'.'.join(parts)}: expected the list of values to try, got {_describe(value)}; "
                    f"{example} (a list-valued key sweeps a list of lists, e.g. frontend.image_size: [[64, 64], [128, 128]])"
                )

    walk(block, ())
    return axes


def _slug(values: dict[str, Any]) -> str:
    parts = []
    for key, value in values.items():
        text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        parts.append(f"{key.split('.')[-1]}-{text}")
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", "__".join(parts))[:120]


def expand_sweep(raw: dict[str, Any], *, source: str = "recipe") -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Expand the recipe's ``sweep:`` block (:data:`SWEEP_BLOCK`) into the grid of its points.

    Returns
    -------
    list of (values, raw)
        ``values`` maps each swept key (dotted) to its value at that point; ``raw`` is the
        recipe data at that point, without the ``sweep`` block. One entry with empty
        ``values`` when nothing is swept.
    """
    axes = _sweep_axes(raw, source=source)
    base = {key: value for key, value in raw.items() if key != SWEEP_BLOCK}
    if not axes:
        return [({}, base)]
    points = []
    for combo in itertools.product(*(values for _, values in axes)):
        point = json.loads(json.dumps(base))
        values: dict[str, Any] = {}
        for (parts, _), value in zip(axes, combo):
            key = ".".join(parts)
            item = f"sweep.{key}"
            node = point
            for depth, part in enumerate(parts[:-1]):
                node = _child(node, part, list(parts[: depth + 1]), item)
            _set(node, parts[-1], value, list(parts), item)
            values[key] = value
        points.append((values, point))
    return points


def load_recipe(path: str | Path, *, overrides: Sequence[str] = ()) -> list[RecipePoint]:
    """Read, override, expand and validate a recipe file.

    Parameters
    ----------
    path : path
        The recipe YAML file.
    overrides : sequence of str
        ``KEY=VALUE`` strings (``--set`` on the command line); ``sweep.KEY=[a, b]`` sweeps KEY.

    Returns
    -------
    list of RecipePoint
        One per sweep point (one without a sweep).

    Raises
    ------
    RecipeError
        Any invalid key, type or value, naming the key path and the fix.
    """
    path = Path(path)
    raw = apply_overrides(read_recipe_file(path), overrides)
    points = []
    for values, point in expand_sweep(raw, source=str(path)):
        recipe = validate_recipe(point, base_dir=path.parent, source=str(path))
        points.append(RecipePoint(recipe=recipe, values=values, slug=_slug(values)))
    slugs = [p.slug for p in points]
    if len(set(slugs)) != len(slugs):
        points = [dataclasses.replace(p, slug=f"{i:03d}_{p.slug}") for i, p in enumerate(points)]
    return points
