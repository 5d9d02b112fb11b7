"""``warden keys issue|revoke|list``."""

from __future__ import annotations

from datetime import timedelta

import typer

from governance.cli.common import JSON, console, errors_as_exit, show_rows, transaction
from governance.db.base import utcnow
from governance.identity.service import identity
from governance.kit.context import cli_context

app = typer.Typer(help="API keys: shown once, stored as hashes.", no_args_is_help=True)


@app.command("issue")
def issue(
    principal: str,
    expires_in_days: int = typer.Option(
        None, min=1, max=36_500, help="Expire the key after this many days."
    ),
) -> None:
    """Issue a service's key and print it once (people enrol: `warden principals enrol`)."""
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    with errors_as_exit(), transaction() as session:
        key, token = identity.issue_key(
            session, cli_context(), principal=principal, expires_at=expires
        )
        key_id = key.key_id
    console.print(f"key id {key_id} for {principal} (shown once):", highlight=False)
    typer.echo(token)


@app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key by its id."""
    with errors_as_exit(), transaction() as session:
        identity.revoke_key(session, cli_context(), key_id=key_id)
    console.print(f"revoked {key_id}")


@app.command("list")
def list_(principal: str = typer.Option(None), as_json: bool = JSON) -> None:
    """List keys (ids and dates, never tokens)."""
    with errors_as_exit(), transaction() as session:
        rows = [
            {
                "key_id": key.key_id,
                "principal": owner,
                "status": "revoked" if key.revoked_at else "active",
                "expires_at": key.expires_at,
            }
            for key, owner in identity.list_keys(session, principal)
        ]
    show_rows(rows, as_json=as_json, empty="no API keys")
