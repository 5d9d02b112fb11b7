"""Command groups that import a command's module only when that command is looked up by name.

The domains' CLI modules import their services, and with them the registry, the trainer and
torch: seconds before ``warden --help`` or a remote command could print anything. A group
here knows each such command's name, module and one-line help; listing the commands (help,
shell completion of names) shows that help, and resolving one name imports its module alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer import _click as click
from typer.core import TyperCommand, TyperGroup

from governance.plugins import optional_module


@dataclass(frozen=True)
class Lazy:
    """A command in ``module``: its typer ``app`` as a group, or the function ``command``.

    ``help`` is what listings show before the module is imported; tests/cli/test_conventions.py
    checks it is the command's own.
    """

    module: str
    help: str
    command: str | None = None

    def summary(self, name: str) -> click.Command:
        """A stand-in that only names the command and its help, for listings."""
        return TyperCommand(name=name, help=self.help)

    def load(self, name: str) -> click.Command | None:
        """The command, built as ``app.add_typer`` or ``app.command`` would; None if the
        module does not exist."""
        found = optional_module(self.module)
        if found is None:
            return None
        holder = typer.Typer()
        # A callback makes the holder a group even with one command in it.
        holder.callback()(_nothing)
        if self.command is None:
            holder.add_typer(found.app, name=name)
        else:
            holder.command(name)(getattr(found, self.command))
        group = typer.main.get_command(holder)
        assert isinstance(group, TyperGroup)
        return group.commands[name]


def _nothing() -> None:
    return None


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name; looking a lazy one up imports it, once.

    Listed as typer lists them, commands before groups: the lazy commands, the others, then
    the lazy groups.
    """

    def __init__(
        self,
        commands: Mapping[str, click.Command],
        lazy: Mapping[str, Lazy],
        on_load: Callable[[click.Command], None],
    ) -> None:
        self._on_load = on_load
        self._entries: dict[str, click.Command | Lazy] = {
            **{name: entry for name, entry in lazy.items() if entry.command is not None},
            **commands,
            **{name: entry for name, entry in lazy.items() if entry.command is None},
        }

    def __getitem__(self, name: str) -> click.Command:
        entry = self._entries[name]
        if not isinstance(entry, Lazy):
            return entry
        command = entry.load(name)
        if command is None:
            del self._entries[name]
            raise KeyError(name)
        self._on_load(command)
        self._entries[name] = command
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def summary(self, name: str) -> click.Command | None:
        """The command if it is loaded, else its stand-in; nothing is imported."""
        entry = self._entries.get(name)
        return entry.summary(name) if isinstance(entry, Lazy) else entry

    def loaded(self) -> list[click.Command]:
        """The commands built so far."""
        return [entry for entry in self._entries.values() if not isinstance(entry, Lazy)]


class LazyGroup(TyperGroup):
    """A group whose ``lazy`` commands are imported when looked up by name."""

    lazy: ClassVar[Mapping[str, Lazy]] = {}
    _listing = False

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands, self.lazy, self.on_load)

    def on_load(self, command: click.Command) -> None:
        """Called with each lazy command when it is built."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # The names alone: typer's own reads every command, which would import them all.
        return list(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if self._listing and isinstance(self.commands, LazyCommands):
            return self.commands.summary(cmd_name)
        return super().get_command(ctx, cmd_name)

    @contextmanager
    def _summaries(self) -> Iterator[None]:
        self._listing = True
        try:
            yield
        finally:
            self._listing = False

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with self._summaries():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        with self._summaries():
            return super().shell_complete(ctx, incomplete)
