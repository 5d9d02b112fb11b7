"""``warden policy ...`` over the API: read the policy, propose changes, decide proposals."""

from __future__ import annotations

from typing import Any

import typer

from governance.cli.common import JSON, console, print_json
from governance.cli.routing import RemoteGroup, remote_of

app = typer.Typer(
    cls=RemoteGroup,
    help="The access policy, over the API as the signed-in person.",
    no_args_is_help=True,
)
proposals_app = typer.Typer(
    cls=RemoteGroup, help="Changes waiting for a second compliance officer.", no_args_is_help=True
)
app.add_typer(proposals_app, name="proposals")

ADD = typer.Option(None, "--add", help='A rule to add, e.g. "g, alice, role:auditor".')
REMOVE = typer.Option(None, "--remove", help="A rule to remove (same form).")


def _rules(texts: list[str] | None) -> list[list[str]]:
    return [[part.strip() for part in text.split(",")] for text in texts or []]


def _print_rules(title: str, rows: list[list[str]]) -> None:
    console.print(f"[bold]{title}[/bold] ({len(rows)})")
    for row in rows:
        console.print("  " + ", ".join(row), markup=False)


@app.command("show")
def show(ctx: typer.Context, as_json: bool = JSON) -> None:
    """The current version: roles and members, grants, denies, resource groups."""
    doc = remote_of(ctx).json("GET", "/v1/policy")
    if as_json:
        print_json(doc)
        return
    console.print(
        f"policy version {doc['version']} ({doc['kind']}) by {doc['author']} "
        f"at {doc['created_at']}: {doc['reason']}",
        markup=False,
    )
    console.print(f"sha256 {doc['sha256']}")
    view = doc.get("view") or {}
    console.print("[bold]roles[/bold]")
    for role, members in view.get("roles", {}).items():
        console.print(f"  {role}: {', '.join(members) or '-'}", markup=False)
    _print_rules("grants", view.get("grants", []))
    _print_rules("denies", view.get("denies", []))


@app.command("apply")
def apply(
    ctx: typer.Context,
    reason: str = typer.Option(..., help="Why (required, audited)."),
    add: list[str] = ADD,
    remove: list[str] = REMOVE,
    base_version: int = typer.Option(None, min=1, help="Refuse if the current version differs."),
    as_json: bool = JSON,
) -> None:
    """Apply a change, or propose it where a second officer must approve."""
    body: dict[str, Any] = {"add": _rules(add), "remove": _rules(remove), "reason": reason}
    if base_version is not None:
        body["base_version"] = base_version
    response = remote_of(ctx).call("POST", "/v1/policy/changes", json=body)
    _outcome(response.status_code == 202, response.json(), as_json)


@app.command("propose")
def propose(
    ctx: typer.Context,
    reason: str = typer.Option(..., help="Why (required, audited)."),
    add: list[str] = ADD,
    remove: list[str] = REMOVE,
    base_version: int = typer.Option(None, min=1, help="Refuse if the current version differs."),
    as_json: bool = JSON,
) -> None:
    """Propose a change for a second officer, even where approval is optional."""
    body: dict[str, Any] = {"add": _rules(add), "remove": _rules(remove), "reason": reason}
    if base_version is not None:
        body["base_version"] = base_version
    _outcome(True, remote_of(ctx).json("POST", "/v1/policy/proposals", json=body), as_json)


def _outcome(pending: bool, doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(
            {"status": "pending", "proposal_id": doc["id"]}
            if pending
            else {"status": "applied", "version": doc["version"], "sha256": doc["sha256"]}
        )
    elif pending:
        console.print(
            f"proposal {doc['id']} is pending: another compliance officer must "
            f"run `warden policy proposals approve {doc['id']}`"
        )
    else:
        console.print(f"policy version {doc['version']} applied (sha256 {doc['sha256']})")


@proposals_app.command("list")
def proposals_list(
    ctx: typer.Context,
    status: str = typer.Option("pending", help="pending, applied, rejected, withdrawn or all."),
    as_json: bool = JSON,
) -> None:
    """Proposals, pending ones by default."""
    params = {} if status == "all" else {"status": status}
    docs = remote_of(ctx).json("GET", "/v1/policy/proposals", params=params)
    if as_json:
        print_json(docs)
        return
    for d in docs:
        console.print(
            f"{d['id']:>4} {d['status']:9} {d['kind']:8} by {d['author']} on "
            f"v{d['base_version']}: {d['reason']}",
            markup=False,
        )
        for key in ("add", "remove"):
            for rule in d["changes"].get(key, []):
                sign = "+" if key == "add" else "-"
                console.print(f"       {sign} {', '.join(rule)}", markup=False)


@proposals_app.command("approve")
def proposals_approve(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., min=1),
    reason: str = typer.Option("", help="A note on the approval (audited)."),
) -> None:
    """Approve and apply a proposal (the approver must not be its author)."""
    doc = remote_of(ctx).json(
        "POST", f"/v1/policy/proposals/{proposal_id}/approve", json={"reason": reason}
    )
    console.print(f"proposal {proposal_id} approved: policy version {doc['version']}")


@proposals_app.command("reject")
def proposals_reject(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., min=1),
    reason: str = typer.Option(..., help="Why (audited)."),
) -> None:
    """Reject a proposal."""
    doc = remote_of(ctx).json(
        "POST", f"/v1/policy/proposals/{proposal_id}/reject", json={"reason": reason}
    )
    console.print(f"proposal {proposal_id} {doc.get('status', 'rejected')}")
