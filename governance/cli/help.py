"""``--help`` as an operator reads it: no placeholder on a flag, no bound that is only a column's.

Typer shows ``<bool>`` beside every flag and the range of every bounded integer; a range at a
database column's limit (``[0<=x<=9223372036854775807]``) is plumbing, not advice; a listing
keeps a docstring's line breaks. The command tree is tidied once, when the root command first
builds a context; a lazy group (governance/cli/lazy.py) when it is imported.
"""

from __future__ import annotations

import inspect
from typing import Any

from governance.cli.lazy import LazyCommands, LazyGroup

# Bounds at or past a 32-bit column's are storage limits; smaller ones are worth reading.
_INTERNAL_BOUND = 2**31 - 1


def _no_range() -> None:
    return None


def _tidy_param(param: Any) -> None:
    if getattr(param, "is_flag", False) and param.metavar is None:
        # An empty metavar: the flag's name says it all.
        param.metavar = ""
    described = getattr(param, "type_descriptor", None)
    if described is not None and getattr(described, "is_ranged", False):
        # A bounded number is still a number to whoever types it.
        shown = f"<{described.ranged_type_name}>"
        if param.param_type_name == "option" and param.metavar is None:
            param.metavar = shown
        elif param.param_type_name == "argument":
            param.display_type_rich = lambda ctx: shown
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if any(b is not None and abs(b) >= _INTERNAL_BOUND for b in (low, high)):
        # The bound still applies (a usage error past it); it is only not advertised.
        param._get_number_range_help_str = _no_range


def _listed_help(command: Any) -> None:
    # A group's listing shows the first paragraph of a command's help with its line breaks kept
    # (typer's rich mode), so a docstring's wrap would break the row mid-sentence.
    if command.short_help or not command.help:
        return
    first = inspect.cleandoc(command.help).split("\n\n", 1)[0]
    if "\n" in first and not first.startswith("\b"):
        command.short_help = " ".join(first.split())


def tidy(command: Any) -> None:
    """Tidy the help of ``command`` and every command under it."""
    _listed_help(command)
    for param in getattr(command, "params", ()):
        _tidy_param(param)
    help_option = command.get_help_option

    def tidy_help_option(ctx: Any) -> Any:
        # Built on first use, from the context's option names.
        option = help_option(ctx)
        if option is not None:
            _tidy_param(option)
        return option

    command.get_help_option = tidy_help_option
    subs = getattr(command, "commands", {})
    # Not the lazy ones: tidying them would import them (they are tidied on import).
    for sub in subs.loaded() if isinstance(subs, LazyCommands) else subs.values():
        tidy(sub)


class TidyGroup(LazyGroup):
    """A lazy group whose commands' help is tidied as each is imported."""

    def on_load(self, command: Any) -> None:
        tidy(command)


class WardenGroup(TidyGroup):
    """The root command: its tree's help is tidied before the first parse."""

    _tidied = False

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Any = None,
        **extra: Any,
    ) -> Any:
        if not self._tidied:
            tidy(self)
            self._tidied = True
        return super().make_context(info_name, args, parent, **extra)
