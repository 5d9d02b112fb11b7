"""Which way a command runs: over the API as the signed-in person, or on the database directly.

Remote mode holds with ``--server URL``, ``WARDEN_SERVER`` or a stored ``warden login``; then a
command runs its twin in the remote tree (governance/cli/remote_tree.py), and a command that
has no API mapping refuses with exit 2 instead of falling back to the database. ``--local``
asks for direct database mode, for bootstrap and recovery on the server machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NoReturn

import typer
from typer import _click as click
from typer.core import TyperGroup

from governance.cli.common import ExitCode, fail
from governance.cli.help import TidyGroup, WardenGroup
from governance.cli.remote import (
    SERVER_ENV,
    Remote,
    StoredSession,
    load_session,
    normal_server,
)

# Commands about the sign-in itself: the same in both modes.
SIGN_IN_COMMANDS = frozenset({"login", "logout", "whoami"})
# Commands that act as no one: a server process, and the demo in its own fresh folder.
NO_ACTOR_COMMANDS = frozenset({"serve", "demo"})
_MODE = "warden.mode"


@dataclass(frozen=True)
class Mode:
    """Remote when ``server`` is set; ``stored`` is the sign-in for that server, if any."""

    server: str | None
    stored: StoredSession | None

    @property
    def remote(self) -> bool:
        return self.server is not None


def decide_mode(server_option: str | None, local: bool) -> Mode:
    """``--local`` wins; else ``--server``, ``WARDEN_SERVER``, then a stored sign-in."""
    server = server_option or os.environ.get(SERVER_ENV) or None
    if local:
        if server_option:
            fail("--local and --server exclude each other", ExitCode.USAGE)
        return Mode(None, None)
    stored = load_session()
    if server is None:
        return Mode(stored.server, stored) if stored is not None else Mode(None, None)
    server = normal_server(server)
    return Mode(server, stored if stored is not None and stored.server == server else None)


def mode_of(ctx: typer.Context) -> Mode:
    """The mode the root command decided (direct when it decided none, as in unit tests)."""
    found = ctx.find_root().meta.get(_MODE)
    return found if isinstance(found, Mode) else Mode(None, None)


def remote_of(ctx: typer.Context) -> Remote:
    """The API client of the signed-in person, closed when the command ends."""
    mode = mode_of(ctx)
    if mode.server is None:
        fail("not in remote mode: use --server URL or `warden login --server URL`")
    if mode.stored is None:
        fail(f"not signed in to {mode.server}: run `warden login --server {mode.server}`")
    remote = Remote(mode.stored)
    ctx.call_on_close(remote.close)
    return remote


def _local_only(path: str) -> NoReturn:
    fail(
        f"`{path}` has no API mapping: it only runs on the server machine, in direct database "
        "mode (`warden --local ...`)",
        ExitCode.USAGE,
    )


def _refusal(name: str) -> click.Command:
    """A command that swallows its arguments and refuses: nothing touches the database."""
    single = typer.Typer()

    @single.command(
        name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    def refuse(ctx: typer.Context) -> None:
        """Runs only on the server machine (direct database mode)."""
        # Named as typed after `warden`, whatever the program is called (python -m ...).
        root = ctx.find_root().info_name or ""
        _local_only("warden" + ctx.command_path.removeprefix(root))

    return typer.main.get_command(single)


def _local_twin(ctx: click.Context, name: str) -> click.Command | None:
    """The direct-mode command at the same path as ``ctx``'s group and ``name``."""
    root = ctx.find_root()
    command: click.Command | None = root.command
    trail: list[click.Context] = []
    current: click.Context | None = ctx
    while current is not None and current is not root:
        trail.append(current)
        current = current.parent
    for part in [c.info_name for c in reversed(trail)] + [name]:
        if not isinstance(command, TyperGroup) or part is None:
            return None
        command = command.get_command(root, part)
    return command


class RemoteGroup(TidyGroup):
    """A group of the remote tree: a direct-mode command it lacks refuses instead."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        return _refusal(cmd_name) if _local_twin(ctx, cmd_name) is not None else None


class RoutedGroup(WardenGroup):
    """The root command: decides the mode, then resolves the command in that mode's tree."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if name not in self.commands or name in SIGN_IN_COMMANDS or name in NO_ACTOR_COMMANDS:
            # An unknown name is the usage error (with suggestions) of the group itself.
            return super().resolve_command(ctx, args)
        mode = decide_mode(ctx.params.get("server"), bool(ctx.params.get("local")))
        ctx.meta[_MODE] = mode
        if not mode.remote:
            return super().resolve_command(ctx, args)
        from governance.cli.remote_tree import remote_root

        # Only the remote tree: the direct-mode group (and what it imports) stays unloaded.
        twin = remote_root().get_command(ctx, name)
        return name, twin if twin is not None else _refusal(name), args[1:]
