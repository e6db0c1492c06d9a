"""The typer command classes of the ``dsplug`` command line: help that reads like the docs.

``dsplug run [OPTIONS] RECIPE`` rather than typer's ``{recipe}``; arguments and options by their
metavars (``RECIPE``, ``KEY=VALUE``, ``N``) rather than ``<path>`` or ``<list[str]>``; flags without
a type. :class:`SetCommand` also refuses the old override spelling ``-o KEY=VALUE`` (``-o`` is the
output path now, overrides are ``--set``). Only the CLI uses this module.
"""

from __future__ import annotations

import re

import typer
from typer.core import TyperCommand, TyperGroup


class _PlainHelp:
    """Flags without a type and arguments by their metavar only, the help option included."""

    params: list

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        for param in self.params:
            _plain(param)

    def get_help_option(self, ctx: typer.Context) -> object:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            _plain(option)
        return option


class Command(_PlainHelp, TyperCommand):
    """A command whose help reads like the docs: ``dsplug run [OPTIONS] RECIPE``, arguments and
    options by their metavars (``RECIPE``, ``KEY=VALUE``, ``N``), flags without a type."""

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.params:
            if param.param_type_name == "argument":
                name = param.metavar or (param.name or "").upper() + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


class SetCommand(Command):
    """A command with recipe overrides (``--set``), where ``-o`` was the override before it meant
    the output path: ``-o KEY=VALUE`` is refused with the new spelling, never taken for a path."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        takes_value = {name for param in self.params if param.param_type_name == "option"
                       and not getattr(param, "is_flag", False) for name in param.opts}
        i = 0
        while i < len(args) and args[i] != "--":
            arg = args[i]
            if arg.startswith("-o") and not arg.startswith("--"):
                value = arg[2:] or (args[i + 1] if i + 1 < len(args) else "")
                if _OVERRIDE.match(value):
                    typer.echo(f"error: -o {value}: -o is the output path now (-o/--out); a recipe override "
                               f"is --set KEY=VALUE: write --set {value}", err=True)
                    raise typer.Exit(code=2)
            i += 2 if arg in takes_value else 1  # an option's value is not an option (--sbatch -o...)
        return super().parse_args(ctx, args)


class Group(_PlainHelp, TyperGroup):
    """The ``dsplug`` group: its own flags (``--version``, ``--debug``, ``--help``) without a type."""


#: ``KEY=VALUE`` with a recipe key (``train.lr=0.1``, ``augment.methods.0.max_size=3``).
_OVERRIDE = re.compile(r"[A-Za-z_]\w*(\.\w+)*=")


def _plain(param: object) -> None:
    """No ``<bool>``/``<path>`` type in the help: flags show none, arguments their metavar only."""
    if getattr(param, "is_flag", False):
        param.metavar = ""  # type: ignore[attr-defined]
    elif getattr(param, "param_type_name", "") == "argument":
        param.display_type_rich = lambda ctx: None  # type: ignore[attr-defined]
