"""``warden principals create|list|disable``."""

from __future__ import annotations

from datetime import timedelta

import typer

from governance.cli.common import JSON, console, errors_as_exit, show_rows, transaction
from governance.identity.enrolment import MAX_TTL, enrolments
from governance.identity.service import identity
from governance.kit.context import cli_context

app = typer.Typer(help="Principals: users and services.", no_args_is_help=True)


@app.command("create")
def create(name: str, kind: str = typer.Option("user", help="user or service")) -> None:
    """Create a principal."""
    with errors_as_exit(), transaction() as session:
        identity.create_principal(session, cli_context(), name=name, kind=kind)
    console.print(f"created {kind} {name}")


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List principals."""
    with errors_as_exit(), transaction() as session:
        rows = [
            {
                "name": p.name,
                "kind": p.kind,
                "state": "disabled" if p.disabled else "active",
                "created_at": p.created_at,
            }
            for p in identity.list_principals(session)
        ]
    show_rows(rows, as_json=as_json, empty="no principals")


@app.command("disable")
def disable(name: str) -> None:
    """Disable a principal; its keys stop working in every process within a poll period."""
    with errors_as_exit(), transaction() as session:
        identity.set_disabled(session, cli_context(), name=name, disabled=True)
    console.print(f"disabled {name}")


@app.command("enrol")
def enrol(
    name: str,
    expires_in_hours: int = typer.Option(
        24, min=1, max=MAX_TTL.days * 24, help="How long the code can be redeemed."
    ),
) -> None:
    """Print a one-time enrolment code for a person, who redeems it for their own key."""
    with errors_as_exit(), transaction() as session:
        row, code = enrolments.create(
            session, cli_context(), principal=name, ttl=timedelta(hours=expires_in_hours)
        )
        expires = row.expires_at
    console.print(
        f"enrolment code for {name}, valid until {expires:%Y-%m-%d %H:%M} UTC (shown once; give "
        "it to the person only, who redeems it with POST /v1/enrol):",
        highlight=False,
    )
    typer.echo(code)
