"""Policy history and tests, fairness audits and thresholds, dataset and model registration,
over the API as the signed-in person: the remote twins of the direct-mode commands.

Each group here adds commands to the remote tree's group of the same name (``extend``).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer

from governance.cli.common import JSON, ExitCode, console, fail, print_json, show_rows
from governance.cli.routing import RemoteGroup, remote_of

policy_app = typer.Typer(cls=RemoteGroup)
policy_tests_app = typer.Typer(
    cls=RemoteGroup,
    help="Policy tests: decisions every policy version must keep.",
    no_args_is_help=True,
)
policy_app.add_typer(policy_tests_app, name="test")

ADD = typer.Option(None, "--add", help='A rule to add, e.g. "g, alice, role:auditor".')
REMOVE = typer.Option(None, "--remove", help="A rule to remove (same form).")
FILE = typer.Option(None, "--file", help='JSON {"add": [[...]], "remove": [[...]]}.')


def _part(text: str) -> str:
    return quote(text, safe="")


def _when(text: str | None) -> str:
    """An API timestamp as the direct-mode commands print one."""
    return f"{datetime.fromisoformat(text):%Y-%m-%d %H:%M:%S}" if text else "-"


def _change(
    add: list[str] | None, remove: list[str] | None, file: Path | None
) -> tuple[list[Any], list[Any]]:
    adds: list[Any] = [[p.strip() for p in t.split(",")] for t in add or []]
    removes: list[Any] = [[p.strip() for p in t.split(",")] for t in remove or []]
    if file is not None:
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--file") from exc
        if not isinstance(doc, dict):
            raise typer.BadParameter(
                'expected {"add": [...], "remove": [...]}', param_hint="--file"
            )
        adds += list(doc.get("add", []))
        removes += list(doc.get("remove", []))
    return adds, removes


# -- policy ----------------------------------------------------------------------------------


@policy_app.command("history")
def policy_history(
    ctx: typer.Context,
    limit: int = typer.Option(50, min=1, max=1000, help="Newest N versions."),
    as_json: bool = JSON,
) -> None:
    """Every version: who, when, why, approved by whom, and its size of change."""
    remote = remote_of(ctx)
    current = remote.json("GET", "/v1/policy")["version"]
    offset = max(current - limit, 0)
    docs = remote.json("GET", "/v1/policy/versions", params={"offset": offset, "limit": limit})
    docs = [{k: v for k, v in d.items() if k != "parent"} for d in docs]
    if as_json:
        print_json(docs)
        return
    for d in docs:
        approved = f" approved by {d['approved_by']}" if d["approved_by"] else ""
        console.print(
            f"v{d['version']:<5} {_when(d['created_at'])} {d['kind']:8} "
            f"+{len(d['diff'].get('added', []))}/-{len(d['diff'].get('removed', []))} "
            f"{d['author']}{approved}: {d['reason']}",
            markup=False,
        )


@policy_app.command("diff")
def policy_diff(
    ctx: typer.Context,
    old: int = typer.Argument(..., min=1),
    new: int = typer.Argument(None, min=1, help="Default: the current version."),
    as_json: bool = JSON,
) -> None:
    """Rules added and removed between two versions."""
    params = {"from": old} if new is None else {"from": old, "to": new}
    doc = remote_of(ctx).json("GET", "/v1/policy/diff", params=params)
    if as_json:
        print_json(doc)
        return
    console.print(f"v{doc['from_version']} -> v{doc['to_version']}")
    for row in doc["added"]:
        console.print("+ " + ", ".join(row), style="green", markup=False)
    for row in doc["removed"]:
        console.print("- " + ", ".join(row), style="red", markup=False)


@policy_app.command("rollback")
def policy_rollback(
    ctx: typer.Context,
    to_version: int = typer.Argument(..., min=1),
    reason: str = typer.Option(..., help="Why (required, audited)."),
    as_json: bool = JSON,
) -> None:
    """Restore an earlier version's rules as a new version."""
    body = {"to_version": to_version, "reason": reason}
    response = remote_of(ctx).call("POST", "/v1/policy/rollback", json=body)
    doc = response.json()
    if response.status_code == 202:
        if as_json:
            print_json({"status": "pending", "proposal_id": doc["id"]})
        else:
            console.print(f"rollback proposal {doc['id']} is pending approval")
        return
    if as_json:
        print_json(
            {
                "status": "applied",
                "version": doc["version"],
                "restores": to_version,
                "sha256": doc["sha256"],
            }
        )
        return
    console.print(
        f"policy version {doc['version']} restores version {to_version} (sha256 {doc['sha256']})"
    )


@policy_app.command("impact")
def policy_impact(
    ctx: typer.Context,
    add: list[str] = ADD,
    remove: list[str] = REMOVE,
    file: Path = FILE,
    to_version: int = typer.Option(None, min=1, help="Dry-run a rollback to this version instead."),
    days: int = typer.Option(30, min=1, help="Replay the audited requests of N days."),
    examples: int = typer.Option(5, min=0, help="Examples per principal."),
    as_json: bool = JSON,
) -> None:
    """Dry run: who would gain or lose access to what (nothing is written)."""
    adds, removes = _change(add, remove, file)
    body: dict[str, Any] = {"add": adds, "remove": removes, "days": days, "examples": examples}
    if to_version is not None:
        body["to_version"] = to_version
    doc = remote_of(ctx).json("POST", "/v1/policy/impact", json=body)
    if as_json:
        print_json(doc)
        return
    totals = doc["totals"]
    console.print(
        f"against version {doc['current_version']}, {doc['entries_scanned']} audited "
        f"requests of {days} days ({doc['distinct_requests']} distinct)"
        + (" truncated" if doc["truncated"] else ""),
        markup=False,
    )
    for title, key in (("would GAIN access", "gained"), ("would LOSE access", "lost")):
        count = totals["requests_" + ("gaining" if key == "gained" else "losing")]
        console.print(f"{title}: {len(doc[key])} principals, {count} requests", markup=False)
        for group in doc[key]:
            console.print(
                f"  {group['principal']}: {group['requests']} requests, "
                f"{group['permissions']} permissions",
                markup=False,
            )
            for ex in group["examples"]:
                console.print(
                    f"    {ex['action']} {ex['object']} "
                    f"({ex['requests']}x, last {ex['last_seen']})",
                    markup=False,
                )


@policy_app.command("timeline")
def policy_timeline(
    ctx: typer.Context,
    principal: str = typer.Option(None, help="Only this principal."),
    role: str = typer.Option(None, help="Only this role."),
    as_json: bool = JSON,
) -> None:
    """Who held which role, from when to when, granted by whom."""
    params = {k: v for k, v in (("principal", principal), ("role", role)) if v is not None}
    docs = remote_of(ctx).json("GET", "/v1/policy/role-timeline", params=params)
    if as_json:
        print_json(docs)
        return
    for d in docs:
        until = (
            f"until {_when(d['revoked_at'])} (v{d['revoked_in_version']}, {d['revoked_by']})"
            if d["revoked_at"]
            else "held now"
        )
        console.print(
            f"{d['member']:20} {d['role']:20} from {_when(d['granted_at'])}"
            f" (v{d['granted_in_version']}, {d['granted_by']}) {until}",
            markup=False,
        )


@policy_tests_app.command("add")
def policy_test_add(
    ctx: typer.Context,
    subject: str,
    object: str,
    action: str,
    expected: str = typer.Argument(..., help="allow or deny"),
    description: str = typer.Option("", help="What the case protects."),
) -> None:
    """Add a case; it must pass now and after every later change."""
    body = {
        "subject": subject,
        "object": object,
        "action": action,
        "expected": expected,
        "description": description,
    }
    doc = remote_of(ctx).json("POST", "/v1/policy/tests", json=body)
    console.print(f"policy test {doc['id']} added")


@policy_tests_app.command("remove")
def policy_test_remove(
    ctx: typer.Context,
    case_id: int = typer.Argument(..., min=1),
    reason: str = typer.Option(..., help="Why (audited)."),
) -> None:
    """Remove a case."""
    remote_of(ctx).call("DELETE", f"/v1/policy/tests/{case_id}", params={"reason": reason})
    console.print(f"policy test {case_id} removed")


@policy_tests_app.command("list")
def policy_test_list(ctx: typer.Context, as_json: bool = JSON) -> None:
    """The stored cases."""
    docs = [
        {k: d[k] for k in ("id", "subject", "object", "action", "expected", "description")}
        | {"created_by": d["created_by"]}
        for d in remote_of(ctx).json("GET", "/v1/policy/tests")
    ]
    if as_json:
        print_json(docs)
        return
    for d in docs:
        console.print(
            f"{d['id']:>4} {d['expected']:5} {d['subject']} {d['action']} "
            f"{d['object']}  {d['description']}",
            markup=False,
        )


@policy_tests_app.command("run")
def policy_test_run(
    ctx: typer.Context,
    version: int = typer.Option(
        None, min=1, help="Only the version the server enforces now (the API runs no other)."
    ),
    as_json: bool = JSON,
) -> None:
    """Run every case against the enforced version; exit 3 if any fails."""
    doc = remote_of(ctx).json("POST", "/v1/policy/tests/run")
    if version is not None and version != doc["policy_version"]:
        fail(
            f"the server enforces version {doc['policy_version']}; the API runs the tests "
            f"only on that one (run version {version} with `warden --local`)",
            ExitCode.USAGE,
        )
    failing = doc["failing"]
    if as_json:
        print_json(
            {
                "version": doc["policy_version"],
                "total": doc["total"],
                "passed": doc["passed"],
                "failing": failing,
            }
        )
    else:
        console.print(
            f"{doc['passed']}/{doc['total']} policy tests pass on version {doc['policy_version']}"
        )
        for case in failing:
            console.print(
                f"  FAIL test {case['id']}: ({case['subject']}, {case['object']}, "
                f"{case['action']}) expected {case['expected']}, got {case['actual']}",
                markup=False,
            )
    if failing:
        raise typer.Exit(ExitCode.REFUSED)


# -- registration ----------------------------------------------------------------------------

_EXTRA: dict[str, typer.Typer] = {"policy": policy_app}


def extend(groups: dict[str, typer.Typer]) -> None:
    """Add this module's commands and sub-groups to the remote tree's groups of those names."""
    for name, extra in _EXTRA.items():
        groups[name].registered_commands.extend(extra.registered_commands)
        groups[name].registered_groups.extend(extra.registered_groups)


__all__ = ["extend", "show_rows"]
