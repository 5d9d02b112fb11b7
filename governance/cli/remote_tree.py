"""The remote tree: for each command group, the commands that have an API mapping."""

from __future__ import annotations

from functools import cache

import typer
from typer.core import TyperGroup

from governance.cli import (
    remote_audit,
    remote_catalog,
    remote_governance,
    remote_identity,
    remote_operations,
    remote_policy,
)
from governance.cli.help import tidy
from governance.cli.routing import RemoteGroup

_GROUPS: dict[str, typer.Typer] = {
    "policy": remote_policy.app,
    "principals": remote_identity.principals_app,
    "keys": remote_identity.keys_app,
    "roles": remote_identity.roles_app,
    "audit": remote_audit.app,
    "models": remote_catalog.models_app,
    "fairness": remote_catalog.fairness_app,
    "datasets": remote_catalog.datasets_app,
    "privacy": remote_catalog.privacy_app,
    "report": remote_catalog.report_app,
}


@cache
def remote_root() -> TyperGroup:
    """The groups above as one click group (a name it lacks refuses: routing.RoutedGroup)."""
    root = typer.Typer(cls=RemoteGroup)
    remote_governance.extend(_GROUPS)
    _GROUPS.update(remote_operations.groups(_GROUPS))
    root.command("train")(remote_operations.privacy_train)
    for name, group in _GROUPS.items():
        root.add_typer(group, name=name)
    command = typer.main.get_command(root)
    assert isinstance(command, TyperGroup)
    tidy(command)
    return command
