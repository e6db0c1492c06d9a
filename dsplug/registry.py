"""The plugin registry: entry-point groups, listing, loading by name, contract checks.

Plugins are classes registered under the entry-point groups of :data:`dsplug.plugin.GROUPS`.
dsplug's own built-ins register through its ``pyproject.toml`` exactly as third-party
packages do, so there is one path for both. Discovery and loading use stevedore:
:class:`stevedore.ExtensionManager` to list a group (a plugin whose import fails is reported as
broken, with its error), :class:`stevedore.DriverManager` to load one plugin by name.

Examples
--------
>>> from dsplug import registry
>>> registry.names("heads")  # doctest: +SKIP
['linear', 'mlp', 'regression']
>>> MLPHead = registry.load("heads", "mlp")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import logging
from collections import defaultdict
from typing import Any, Literal

from stevedore import DriverManager, ExtensionManager
from stevedore.extension import Extension

from dsplug import plugin as api
from dsplug.errors import PluginBroken, PluginError, PluginNotFound, extra_of, missing_module_hint

logger = logging.getLogger(__name__)

#: Base class each group's plugins must derive from.
BASES: dict[str, type[api.Plugin]] = {
    "backbones": api.Backbone,
    "colormaps": api.Colormap,
    "augmentations": api.Augmentation,
    "heads": api.Head,
}


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """What is known about one installed plugin.

    Attributes
    ----------
    group : str
        Short group name (``backbones``, ``colormaps``, ``augmentations``, ``heads``).
    name : str
        The entry-point name, as used in recipes.
    target : str
        ``module:attribute`` the entry point points to.
    distribution, version : str
        The installed distribution that provides the plugin, and its version.
    status : {"ok", "broken", "needs-extra"}
        ``broken`` if importing or checking the plugin failed; ``needs-extra`` if its import
        failed only for a module of an optional extra of dsplug that is not installed (a
        training-only plugin in the light runtime install).
    error : str
        Why it is broken, or which extra it needs (``"needs dsplug[train]"``); empty when ok.
    summary : str
        First line of the plugin class's docstring.
    extra : str
        With ``needs-extra``: the extra of dsplug to install (e.g. ``train``).
    """

    group: str
    name: str
    target: str
    distribution: str
    version: str
    status: Literal["ok", "broken", "needs-extra"]
    error: str = ""
    summary: str = ""
    extra: str = ""


def groups() -> list[str]:
    """Return the short names of the plugin groups, e.g. ``["backbones", ...]``."""
    return list(api.GROUPS)


def _namespace(group: str) -> str:
    if group not in api.GROUPS:
        raise PluginError(
            f"unknown plugin group {group!r}; groups: {', '.join(api.GROUPS)}"
            + _suggest(group, list(api.GROUPS))
        )
    return api.GROUPS[group]


def _suggest(name: str, candidates: list[str]) -> str:
    best = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return f"; did you mean {best[0]!r}?" if best else ""


def _entry_points(group: str) -> dict[str, list[importlib.metadata.EntryPoint]]:
    """Entry points of a group by name, de-duplicated by target."""
    found: dict[str, list[importlib.metadata.EntryPoint]] = defaultdict(list)
    for ep in importlib.metadata.entry_points(group=_namespace(group)):
        if all(other.value != ep.value for other in found[ep.name]):
            found[ep.name].append(ep)
    return dict(found)


def _provider(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"] or "?", dist.version or "?"


def _check_duplicates(group: str, name: str, eps: list[importlib.metadata.EntryPoint]) -> None:
    if len(eps) > 1:
        providers = "; ".join(
            f"{ep.value} from {_provider(ep)[0]} {_provider(ep)[1]}" for ep in eps
        )
        raise PluginError(
            f"duplicate {group[:-1]} plugin {name!r} (entry-point group {_namespace(group)!r}): "
            f"{providers}. Uninstall one of these distributions or rename its entry point."
        )


def _raise_on_conflict(namespace: str, name: str, extensions: list[Extension[Any]]) -> Any:
    targets = ", ".join(str(ext.entry_point_target) for ext in extensions)
    raise PluginError(
        f"duplicate plugin {name!r} in entry-point group {namespace!r}: {targets}. "
        "Uninstall one of the distributions that provide it."
    )


def _check_contract(group: str, name: str, plugin: Any) -> None:
    base = BASES[group]
    if not (isinstance(plugin, type) and issubclass(plugin, base)):
        raise PluginBroken(
            f"{group[:-1]} plugin {name!r} is {plugin!r}, not a subclass of "
            f"dsplug.plugin.{base.__name__}; fix its entry point or its class"
        )
    major = str(getattr(plugin, "api_version", "")).split(".")[0]
    if major != api.API_VERSION.split(".")[0]:
        raise PluginBroken(
            f"{group[:-1]} plugin {name!r} was written for dsplug plugin API "
            f"{plugin.api_version!r}, but this dsplug provides {api.API_VERSION!r}; "
            "upgrade the plugin or dsplug"
        )
    if not (isinstance(plugin.Options, type) and issubclass(plugin.Options, api.Options)):
        raise PluginBroken(
            f"{group[:-1]} plugin {name!r}: its Options must be a dsplug.plugin.Options subclass "
            f"(a pydantic model with defaults and bounds), got {plugin.Options!r}"
        )


def names(group: str) -> list[str]:
    """Return the sorted entry-point names installed in a group (without importing them).

    Parameters
    ----------
    group : str
        ``backbones``, ``colormaps``, ``augmentations`` or ``heads``.
    """
    return sorted(_entry_points(group))


def load(group: str, name: str) -> type[Any]:
    """Load one plugin class by its entry-point name.

    Parameters
    ----------
    group : str
        ``backbones``, ``colormaps``, ``augmentations`` or ``heads``.
    name : str
        The entry-point name, e.g. ``densenet121``.

    Returns
    -------
    type
        The plugin class (a subclass of the group's base in :mod:`dsplug.plugin`), with its
        ``name`` attribute set to ``name``.

    Raises
    ------
    PluginNotFound
        No installed plugin has this name; the message lists the installed names and the
        closest match.
    PluginBroken
        The plugin is installed but fails to import or breaks the contract.
    PluginError
        Two distributions provide the same name.
    """
    namespace = _namespace(group)
    eps = _entry_points(group)
    if name not in eps:
        installed = ", ".join(sorted(eps)) or "none"
        raise PluginNotFound(
            f"no {group[:-1]} plugin named {name!r}; installed: {installed}"
            + _suggest(name, list(eps))
        )
    _check_duplicates(group, name, eps[name])

    failures: list[BaseException] = []

    def on_failure(_manager: Any, _ep: Any, err: BaseException) -> None:
        failures.append(err)

    try:
        manager = DriverManager(
            namespace,
            name,
            on_load_failure_callback=on_failure,
            conflict_resolver=_raise_on_conflict,
        )
        plugin = manager.driver
    except Exception as err:  # stevedore raises NoMatches when the only candidate failed
        cause = failures[0] if failures else err
        hint = missing_module_hint(cause)
        raise PluginBroken(
            f"{group[:-1]} plugin {name!r} ({eps[name][0].value}) is installed but broken: "
            f"{type(cause).__name__}: {cause}" + (f"; {hint}" if hint else "")
        ) from cause
    _check_contract(group, name, plugin)
    plugin.name = name
    return plugin


def list_plugins(group: str | None = None) -> list[PluginInfo]:
    """List installed plugins with their distribution, version and status.

    Every plugin is imported, so a plugin whose import fails is listed as ``broken`` with its
    error instead of silently missing.

    Parameters
    ----------
    group : str, optional
        Restrict to one group; all groups by default.
    """
    infos: list[PluginInfo] = []
    for grp in [group] if group else groups():
        namespace = _namespace(grp)
        failures: dict[str, BaseException] = {}

        def on_failure(_manager: Any, ep: Any, err: BaseException) -> None:
            failures[ep.name] = err

        ExtensionManager.ENTRY_POINT_CACHE.pop(namespace, None)
        manager = ExtensionManager(namespace, on_load_failure_callback=on_failure)
        loaded = {ext.name: ext.plugin for ext in manager.extensions}
        for name, eps in sorted(_entry_points(grp).items()):
            for ep in eps:
                dist, version = _provider(ep)
                status: Literal["ok", "broken", "needs-extra"] = "ok"
                error = ""
                summary = ""
                try:
                    if len(eps) > 1:
                        _check_duplicates(grp, name, eps)
                    if name in failures:
                        cause = failures[name]
                        extra = extra_of(cause)
                        if extra is not None:
                            infos.append(PluginInfo(grp, name, ep.value, dist, version, "needs-extra", f"needs dsplug[{extra}]", extra=extra))
                            continue
                        raise PluginBroken(f"{type(cause).__name__}: {cause}")
                    plugin = loaded.get(name) or ep.load()
                    _check_contract(grp, name, plugin)
                    summary = (plugin.__doc__ or "").strip().split("\n")[0]
                except PluginError as err:
                    status, error = "broken", str(err)
                except Exception as err:  # a plugin's import may raise anything
                    status, error = "broken", f"{type(err).__name__}: {err}"
                infos.append(PluginInfo(grp, name, ep.value, dist, version, status, error, summary))
    return infos


def refresh() -> None:
    """Forget cached entry points (after installing or removing a plugin in this process)."""
    ExtensionManager.ENTRY_POINT_CACHE.clear()
    importlib.invalidate_caches()
