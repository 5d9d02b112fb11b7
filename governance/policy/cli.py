"""``warden policy ...``: read, change, test, dry-run, approve and review the access policy.

Commands act on the database directly as the local operator. ``--operator`` names who is acting
(recorded as author or approver, and used for separation of duties); whoever runs the CLI holds
the database and key file, so the name is trusted, as with every local operator command.
Rules are written as in Casbin's CSV, ``"g, alice, role:auditor"``: values can never contain a
comma, so the split is unambiguous.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from governance.cli.common import (
    ExitCode,
    console,
    err_console,
    exit_code_of,
    settings,
    transaction,
)
from governance.config import Settings
from governance.db.base import DB_INT_MAX
from governance.errors import WardenError
from governance.identity import duties
from governance.kit.context import Context, cli_context
from governance.policy.impact import dry_run
from governance.policy.proposals import proposal_changes, proposals
from governance.policy.rules import Vocabulary, load_rules
from governance.policy.schemas import REPLAY_DAYS_MAX, REPLAY_EXAMPLES_MAX
from governance.policy.service import default_policy, policy
from governance.policy.testcases import compile_candidate, policy_tests
from governance.policy.timeline import role_timeline
from governance.policy.view import summarize

app = typer.Typer(
    help="The access policy: versions, changes, tests, impact, approvals.", no_args_is_help=True
)
tests_app = typer.Typer(
    help="Policy tests: expected decisions every change must keep.", no_args_is_help=True
)
proposals_app = typer.Typer(
    help="Changes waiting for a second compliance officer.", no_args_is_help=True
)
app.add_typer(tests_app, name="test")
app.add_typer(proposals_app, name="proposals")

OPERATOR = typer.Option(
    None, "--operator", help="Who is acting (default: the local operator, local:<OS user>)."
)
JSON = typer.Option(False, "--json", help="Print JSON instead of text.")
ADD = typer.Option(None, "--add", help='A rule to add, e.g. "g, alice, role:auditor".')
REMOVE = typer.Option(None, "--remove", help="A rule to remove (same form).")
FILE = typer.Option(None, "--file", help='JSON {"add": [[...]], "remove": [[...]]}.')


@contextmanager
def _errors() -> Iterator[None]:
    """A one-line error and its exit code; failing policy tests are listed one per line."""
    try:
        yield
    except WardenError as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)
        for case in exc.extra.get("failing", []):
            err_console.print(
                f"  test {case['id']}: ({case['subject']}, {case['object']}, {case['action']}) "
                f"expected {case['expected']}, got {case['actual']}",
                markup=False,
            )
        raise typer.Exit(exit_code_of(exc)) from None


def parse_rule_text(text: str) -> list[str]:
    """``"g, alice, role:auditor"`` -> ``["g", "alice", "role:auditor"]``."""
    return [part.strip() for part in text.split(",")]


def _change(
    add: list[str] | None, remove: list[str] | None, file: Path | None
) -> tuple[list[Any], list[Any]]:
    adds: list[Any] = [parse_rule_text(t) for t in add or []]
    removes: list[Any] = [parse_rule_text(t) for t in remove or []]
    if file is not None:
        doc = json.loads(file.read_text())
        if not isinstance(doc, dict):
            raise typer.BadParameter(
                'expected {"add": [...], "remove": [...]}', param_hint="--file"
            )
        adds += list(doc.get("add", []))
        removes += list(doc.get("remove", []))
    return adds, removes


def _setup(operator: str | None) -> tuple[Settings, Vocabulary, Context]:
    cfg = settings()
    vocab, _ = default_policy(cfg.policies_dir)
    return cfg, vocab, cli_context(operator)


def _echo_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, default=str))


def _print_rules(title: str, rows: list[list[str]]) -> None:
    console.print(f"[bold]{title}[/bold] ({len(rows)})")
    for row in rows:
        console.print("  " + ", ".join(row))


# -- reading ---------------------------------------------------------------------------------


@app.command("show")
def show(as_json: bool = JSON) -> None:
    """The current version: roles and members, grants, denies, resource groups; the actions."""
    cfg, vocab, _ = _setup(None)
    with _errors(), transaction(cfg) as session:
        row = policy.current(session)
        view = summarize(load_rules(row.rules), roles_known=vocab.roles)
        head = {
            "version": row.version,
            "author": row.author,
            "created_at": row.created_at,
            "reason": row.reason,
            "kind": row.kind,
            "sha256": row.sha256,
        }
    actions = sorted(vocab.actions)
    if as_json:
        _echo_json({**head, **view, "actions": actions})
        return
    console.print(
        f"policy version {head['version']} ({head['kind']}) by {head['author']} "
        f"at {head['created_at']}: {head['reason']}"
    )
    console.print(f"sha256 {head['sha256']}")
    console.print("[bold]roles[/bold]")
    for role, members in view["roles"].items():
        console.print(f"  {role}: {', '.join(members) or '-'}")
    _print_rules("grants", view["grants"])
    _print_rules("denies", view["denies"])
    console.print("[bold]groups[/bold]")
    for group, members in view["groups"].items():
        console.print(f"  {group}: {', '.join(members)}")
    console.print(f"[bold]actions[/bold] a rule may name: {', '.join(actions)}")


@app.command("history")
def history(
    limit: int = typer.Option(50, min=1, max=1000, help="Newest N versions."), as_json: bool = JSON
) -> None:
    """Every version: who, when, why, approved by whom, and its size of change."""
    cfg, _, _ = _setup(None)
    with _errors(), transaction(cfg) as session:
        rows = policy.history(session)[-limit:]
        docs = [
            {
                "version": r.version,
                "created_at": r.created_at,
                "author": r.author,
                "approved_by": r.approved_by,
                "kind": r.kind,
                "reason": r.reason,
                "sha256": r.sha256,
                "diff": json.loads(r.diff),
            }
            for r in rows
        ]
    if as_json:
        _echo_json(docs)
        return
    for d in docs:
        approved = f" approved by {d['approved_by']}" if d["approved_by"] else ""
        console.print(
            f"v{d['version']:<5} {d['created_at']:%Y-%m-%d %H:%M:%S} {d['kind']:8} "
            f"+{len(d['diff']['added'])}/-{len(d['diff']['removed'])} "
            f"{d['author']}{approved}: {d['reason']}"
        )


@app.command("diff")
def diff_cmd(
    old: int = typer.Argument(..., min=1, max=DB_INT_MAX),
    new: int = typer.Argument(None, min=1, max=DB_INT_MAX, help="Default: the current version."),
    as_json: bool = JSON,
) -> None:
    """Rules added and removed between two versions."""
    cfg, _, _ = _setup(None)
    with _errors(), transaction(cfg) as session:
        target = new if new is not None else policy.current(session).version
        change = policy.diff_between(session, old=old, new=target)
    if as_json:
        _echo_json({"from_version": old, "to_version": target, **change})
        return
    console.print(f"v{old} -> v{target}")
    for row in change["added"]:
        console.print("[green]+ " + ", ".join(row) + "[/green]")
    for row in change["removed"]:
        console.print("[red]- " + ", ".join(row) + "[/red]")


# -- changing --------------------------------------------------------------------------------


@app.command("apply")
def apply(
    reason: str = typer.Option(..., help="Why (required, audited)."),
    add: list[str] = ADD,
    remove: list[str] = REMOVE,
    file: Path = FILE,
    base_version: int = typer.Option(
        None, min=1, max=DB_INT_MAX, help="Refuse if the current version differs."
    ),
    operator: str | None = OPERATOR,
    as_json: bool = JSON,
) -> None:
    """Apply a change (a new version), or propose it when a second approval is required."""
    cfg, vocab, ctx = _setup(operator)
    adds, removes = _change(add, remove, file)
    with _errors(), transaction(cfg) as session:
        duties.keep_an_admin(session, vocab=vocab, add=adds, remove=removes)
        if cfg.require_second_approval or policy.second_person_needed(
            session, vocab=vocab, add=adds, remove=removes
        ):
            proposal = proposals.propose_change(
                session,
                ctx,
                add=adds,
                remove=removes,
                reason=reason,
                vocab=vocab,
                base_version=base_version,
            )
            if as_json:
                _echo_json({"status": "pending", "proposal_id": proposal.id})
                return
            console.print(
                f"proposal {proposal.id} is pending: another compliance officer must "
                f"run `warden policy proposals approve {proposal.id}`"
            )
            return
        row = policy.apply(
            session,
            ctx,
            add=adds,
            remove=removes,
            reason=reason,
            vocab=vocab,
            base_version=base_version,
        )
        version, sha = row.version, row.sha256
    if as_json:
        _echo_json({"status": "applied", "version": version, "sha256": sha})
        return
    console.print(f"policy version {version} applied (sha256 {sha})")


@app.command("rollback")
def rollback(
    to_version: int = typer.Argument(..., min=1, max=DB_INT_MAX),
    reason: str = typer.Option(..., help="Why (required, audited)."),
    operator: str | None = OPERATOR,
    as_json: bool = JSON,
) -> None:
    """Restore an earlier version's rules as a new version."""
    cfg, vocab, ctx = _setup(operator)
    with _errors(), transaction(cfg) as session:
        duties.keep_an_admin(session, vocab=vocab, to_version=to_version)
        if cfg.require_second_approval or policy.second_person_needed(
            session, vocab=vocab, to_version=to_version
        ):
            proposal = proposals.propose_rollback(
                session, ctx, to_version=to_version, reason=reason, vocab=vocab
            )
            if as_json:
                _echo_json({"status": "pending", "proposal_id": proposal.id})
                return
            console.print(f"rollback proposal {proposal.id} is pending approval")
            return
        row = policy.rollback(session, ctx, to_version=to_version, reason=reason, vocab=vocab)
        version, sha = row.version, row.sha256
    if as_json:
        _echo_json({"status": "applied", "version": version, "restores": to_version, "sha256": sha})
        return
    console.print(f"policy version {version} restores version {to_version} (sha256 {sha})")


@app.command("impact")
def impact(
    add: list[str] = ADD,
    remove: list[str] = REMOVE,
    file: Path = FILE,
    to_version: int = typer.Option(
        None, min=1, max=DB_INT_MAX, help="Dry-run a rollback to this version instead."
    ),
    days: int = typer.Option(
        30, min=1, max=REPLAY_DAYS_MAX, help="Replay the audited requests of N days."
    ),
    examples: int = typer.Option(5, min=0, max=REPLAY_EXAMPLES_MAX, help="Examples per principal."),
    as_json: bool = JSON,
) -> None:
    """Dry run: who would gain or lose access to what (nothing is written)."""
    cfg, vocab, _ = _setup(None)
    adds, removes = _change(add, remove, file)
    with _errors(), transaction(cfg) as session:
        report, change = dry_run(
            session, vocab=vocab, days=days, add=adds, remove=removes, to_version=to_version
        )
        doc = {**report.summary(examples=examples), "diff": change}
    if as_json:
        _echo_json(doc)
        return
    totals = doc["totals"]
    console.print(
        f"against version {doc['current_version']}, {doc['entries_scanned']} audited "
        f"requests of {days} days ({doc['distinct_requests']} distinct)"
        + (" [yellow]truncated[/yellow]" if doc["truncated"] else "")
    )
    for title, key in (("would GAIN access", "gained"), ("would LOSE access", "lost")):
        console.print(
            f"[bold]{title}[/bold]: {len(doc[key])} principals, "
            f"{totals['requests_' + ('gaining' if key == 'gained' else 'losing')]} "
            "requests"
        )
        for group in doc[key]:
            console.print(
                f"  {group['principal']}: {group['requests']} requests, "
                f"{group['permissions']} permissions"
            )
            for ex in group["examples"]:
                console.print(
                    f"    {ex['action']} {ex['object']} ({ex['requests']}x, last {ex['last_seen']})"
                )


# -- policy tests ----------------------------------------------------------------------------


@tests_app.command("add")
def test_add(
    subject: str,
    object: str,
    action: str,
    expected: str = typer.Argument(..., help="allow or deny"),
    description: str = typer.Option("", help="What the case protects."),
    operator: str | None = OPERATOR,
) -> None:
    """Add a case; it must pass now and after every later change."""
    cfg, vocab, ctx = _setup(operator)
    with _errors(), transaction(cfg) as session:
        case = policy_tests.add(
            session,
            ctx,
            subject=subject,
            object=object,
            action=action,
            expected=expected,
            description=description,
            vocab=vocab,
        )
        case_id = case.id
    console.print(f"policy test {case_id} added")


@tests_app.command("remove")
def test_remove(
    case_id: int = typer.Argument(..., min=1, max=DB_INT_MAX),
    reason: str = typer.Option(..., help="Why (audited)."),
    operator: str | None = OPERATOR,
) -> None:
    """Remove a case."""
    cfg, _, ctx = _setup(operator)
    with _errors(), transaction(cfg) as session:
        policy_tests.remove(session, ctx, case_id=case_id, reason=reason)
    console.print(f"policy test {case_id} removed")


@tests_app.command("list")
def test_list(as_json: bool = JSON) -> None:
    """The stored cases."""
    cfg, _, _ = _setup(None)
    with _errors(), transaction(cfg) as session:
        docs = [
            {
                "id": c.id,
                "subject": c.subject,
                "object": c.object,
                "action": c.action,
                "expected": c.expected,
                "description": c.description,
                "created_by": c.created_by,
            }
            for c in policy_tests.cases(session)
        ]
    if as_json:
        _echo_json(docs)
        return
    for d in docs:
        console.print(
            f"{d['id']:>4} {d['expected']:5} {d['subject']} {d['action']} "
            f"{d['object']}  {d['description']}"
        )


@tests_app.command("run")
def test_run(
    version: int = typer.Option(None, min=1, max=DB_INT_MAX, help="Default: the current version."),
    as_json: bool = JSON,
) -> None:
    """Run every case against a version; exit 3 if any fails."""
    cfg, vocab, _ = _setup(None)
    with _errors(), transaction(cfg) as session:
        row = policy.get(session, version) if version is not None else policy.current(session)
        compiled = compile_candidate(version=row.version, rules=load_rules(row.rules), vocab=vocab)
        results = policy_tests.run(session, compiled=compiled)
        failing = [r.as_dict() for r in results if not r.passed]
    if as_json:
        _echo_json(
            {
                "version": compiled.version,
                "total": len(results),
                "passed": len(results) - len(failing),
                "failing": failing,
            }
        )
        if failing:
            raise typer.Exit(ExitCode.REFUSED)
        return
    console.print(
        f"{len(results) - len(failing)}/{len(results)} policy tests pass on version "
        f"{compiled.version}"
    )
    for case in failing:
        console.print(
            f"  [red]FAIL[/red] test {case['id']}: ({case['subject']}, {case['object']}, "
            f"{case['action']}) expected {case['expected']}, got {case['actual']}"
        )
    if failing:
        raise typer.Exit(ExitCode.REFUSED)


# -- separation of duties --------------------------------------------------------------------


@proposals_app.command("list")
def proposals_list(
    status: str = typer.Option("pending", help="pending, applied, rejected, withdrawn or all."),
    as_json: bool = JSON,
) -> None:
    """Proposals, pending ones by default."""
    cfg, _, _ = _setup(None)
    with _errors(), transaction(cfg) as session:
        rows = proposals.find(session, status=None if status == "all" else status)
        docs: list[dict[str, Any]] = [
            {
                "id": p.id,
                "status": p.status,
                "kind": p.kind,
                "author": p.author,
                "created_at": p.created_at,
                "reason": p.reason,
                "base_version": p.base_version,
                "changes": proposal_changes(p),
                "decided_by": p.decided_by,
                "applied_version": p.applied_version,
            }
            for p in rows
        ]
    if as_json:
        _echo_json(docs)
        return
    for d in docs:
        console.print(
            f"{d['id']:>4} {d['status']:9} {d['kind']:8} by {d['author']} on "
            f"v{d['base_version']}: {d['reason']}"
        )
        for key in ("add", "remove"):
            for rule in d["changes"].get(key, []):
                console.print(f"       {'+' if key == 'add' else '-'} {', '.join(rule)}")
        if "to_version" in d["changes"]:
            console.print(f"       rollback to v{d['changes']['to_version']}")


@proposals_app.command("approve")
def proposals_approve(
    proposal_id: int = typer.Argument(..., min=1, max=DB_INT_MAX),
    operator: str | None = OPERATOR,
    reason: str = typer.Option("", help="A note on the approval (audited)."),
) -> None:
    """Approve and apply a proposal (the approver must not be its author)."""
    cfg, vocab, ctx = _setup(operator)
    with _errors(), transaction(cfg) as session:
        _, row = duties.approve(
            session,
            ctx,
            proposal_id=proposal_id,
            vocab=vocab,
            note=reason,
            lifetime=timedelta(hours=cfg.proposal_lifetime_hours),
        )
        version = row.version
    console.print(f"proposal {proposal_id} approved: policy version {version}")


@proposals_app.command("reject")
def proposals_reject(
    proposal_id: int = typer.Argument(..., min=1, max=DB_INT_MAX),
    reason: str = typer.Option(..., help="Why (audited)."),
    operator: str | None = OPERATOR,
) -> None:
    """Reject a proposal (or withdraw one's own)."""
    cfg, _, ctx = _setup(operator)
    with _errors(), transaction(cfg) as session:
        proposal = proposals.reject(session, ctx, proposal_id=proposal_id, reason=reason)
        status = proposal.status
    console.print(f"proposal {proposal_id} {status}")


# -- access review ---------------------------------------------------------------------------


@app.command("timeline")
def timeline(
    principal: str = typer.Option(None, help="Only this principal."),
    role: str = typer.Option(None, help="Only this role."),
    as_json: bool = JSON,
) -> None:
    """Who held which role, from when to when, granted by whom."""
    cfg, _, _ = _setup(None)
    with _errors(), transaction(cfg) as session:
        docs = [p.as_dict() for p in role_timeline(session, member=principal, role=role)]
    if as_json:
        _echo_json(docs)
        return
    for d in docs:
        until = (
            (
                f"until {d['revoked_at']:%Y-%m-%d %H:%M:%S} (v{d['revoked_in_version']}, "
                f"{d['revoked_by']})"
            )
            if d["revoked_at"]
            else "held now"
        )
        console.print(
            f"{d['member']:20} {d['role']:20} from {d['granted_at']:%Y-%m-%d %H:%M:%S}"
            f" (v{d['granted_in_version']}, {d['granted_by']}) {until}"
        )


__all__ = ["app", "parse_rule_text"]
