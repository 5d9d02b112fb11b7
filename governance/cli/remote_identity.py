"""``warden principals|keys|roles ...`` over the API, as the signed-in admin or officer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import typer

from governance.cli.common import JSON, console, show_rows
from governance.cli.routing import RemoteGroup, remote_of

principals_app = typer.Typer(
    cls=RemoteGroup, help="Principals: users and services (over the API).", no_args_is_help=True
)
keys_app = typer.Typer(
    cls=RemoteGroup, help="API keys of services (over the API).", no_args_is_help=True
)
roles_app = typer.Typer(
    cls=RemoteGroup, help="Grant and revoke roles (over the API).", no_args_is_help=True
)


@principals_app.command("list")
def principals_list(ctx: typer.Context, as_json: bool = JSON) -> None:
    """List principals."""
    docs = remote_of(ctx).json("GET", "/v1/principals")
    rows = [
        {
            "name": d["name"],
            "kind": d["kind"],
            "state": "disabled" if d["disabled"] else "active",
            "created_at": d["created_at"],
        }
        for d in docs
    ]
    show_rows(rows, as_json=as_json, empty="no principals")


@principals_app.command("create")
def principals_create(
    ctx: typer.Context, name: str, kind: str = typer.Option("user", help="user or service")
) -> None:
    """Create a principal."""
    remote_of(ctx).call("POST", "/v1/principals", json={"name": name, "kind": kind})
    console.print(f"created {kind} {name}", markup=False)


@principals_app.command("enrol")
def principals_enrol(
    ctx: typer.Context,
    name: str,
    expires_in_hours: int = typer.Option(
        24, min=1, max=7 * 24, help="How long the code can be redeemed."
    ),
) -> None:
    """Print a one-time enrolment code for a person, who redeems it for their own key."""
    doc = remote_of(ctx).json(
        "POST",
        f"/v1/principals/{quote(name, safe='')}/enrolment",
        json={"expires_in_minutes": expires_in_hours * 60},
    )
    console.print(
        f"enrolment code for {name}, valid until {doc['expires_at']} (shown once; give it to "
        "the person only, who redeems it with POST /v1/enrol):",
        markup=False,
        highlight=False,
    )
    typer.echo(doc["code"])


@keys_app.command("list")
def keys_list(
    ctx: typer.Context, principal: str = typer.Option(None), as_json: bool = JSON
) -> None:
    """List keys (ids and dates, never tokens)."""
    docs = remote_of(ctx).json("GET", "/v1/keys")
    rows = [
        {
            "key_id": d["key_id"],
            "principal": d["principal"],
            "status": "revoked" if d["revoked_at"] else "active",
            "expires_at": d["expires_at"],
        }
        for d in docs
        if principal is None or d["principal"] == principal
    ]
    show_rows(rows, as_json=as_json, empty="no API keys")


@keys_app.command("issue")
def keys_issue(
    ctx: typer.Context,
    principal: str,
    expires_in_days: int = typer.Option(
        None, min=1, max=36_500, help="Expire the key after this many days."
    ),
) -> None:
    """Issue a service's key and print it once (people enrol: `warden principals enrol`)."""
    body: dict[str, Any] = {"principal": principal}
    if expires_in_days:
        body["expires_at"] = (datetime.now(UTC) + timedelta(days=expires_in_days)).isoformat()
    doc = remote_of(ctx).json("POST", "/v1/keys", json=body)
    console.print(f"key id {doc['key_id']} for {principal} (shown once):", highlight=False)
    typer.echo(doc["token"])


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: str) -> None:
    """Revoke a key by its id."""
    remote_of(ctx).call("POST", f"/v1/keys/{quote(key_id, safe='')}/revoke")
    console.print(f"revoked {key_id}", markup=False)


def _role_change(ctx: typer.Context, principal: str, role: str, reason: str, grant: bool) -> str:
    verb = "grant" if grant else "revoke"
    body = {"principal": principal, "role": role, "reason": reason}
    doc = remote_of(ctx).json("POST", f"/v1/roles/{verb}", json=body)
    if doc["status"] == "applied":
        return f"policy version {doc['policy_version']}"
    return (
        f"proposal {doc['proposal']} is pending: a compliance officer must approve it "
        f"(`warden policy proposals approve {doc['proposal']}`)"
    )


@roles_app.command("grant")
def roles_grant(
    ctx: typer.Context,
    principal: str,
    role: str,
    reason: str = typer.Option(..., help="Why (required)."),
) -> None:
    """Grant a role (pending a second officer where the policy asks for one)."""
    outcome = _role_change(ctx, principal, role, reason, True)
    console.print(f"grant of {role} to {principal}: {outcome}", markup=False)


@roles_app.command("revoke")
def roles_revoke(
    ctx: typer.Context,
    principal: str,
    role: str,
    reason: str = typer.Option(..., help="Why (required)."),
) -> None:
    """Revoke a role."""
    outcome = _role_change(ctx, principal, role, reason, False)
    console.print(f"revocation of {role} from {principal}: {outcome}", markup=False)


@roles_app.command("pending")
def roles_pending(ctx: typer.Context, as_json: bool = JSON) -> None:
    """Role changes waiting for a compliance officer's approval."""
    docs = remote_of(ctx).json("GET", "/v1/policy/proposals", params={"status": "pending"})
    rows = [
        {
            "proposal": d["id"],
            "change": f"{'+' if key == 'add' else '-'} {', '.join(rule)}",
            "author": d["author"],
            "reason": d["reason"],
        }
        for d in docs
        for key in ("add", "remove")
        for rule in d["changes"].get(key, [])
        if rule and rule[0] == "g" and len(rule) > 2 and str(rule[2]).startswith("role:")
    ]
    show_rows(rows, as_json=as_json, empty="no pending role changes")
