"""The approval queue: policy changes waiting for a second officer (four eyes).

Each action is the API's: approving is ``POST /v1/policy/proposals/{id}/approve`` through the
same separation-of-duties check (never the author, nor someone the author enrolled or gave a
role), rejecting and withdrawing likewise.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from governance.api.dependencies import PolicyDep, ReloadDep, SettingsDep
from governance.api.deps import Caller
from governance.console.guard import Page
from governance.console.officer.policy_pages import EXAMPLES, may, vocabulary
from governance.console.render import render
from governance.db.base import DbInt
from governance.errors import WardenError
from governance.identity import duties
from governance.kit.transaction import SessionsDep
from governance.policy.engine import PolicyEngine
from governance.policy.impact import dry_run
from governance.policy.models import PolicyProposal
from governance.policy.proposals import proposal_changes, proposals, same_person
from governance.policy.rules import Vocabulary
from governance.policy.service import policy
from governance.policy.testcases import compile_candidate, policy_tests

router = APIRouter()
QUEUE = "/console/officer/proposals"
CanReadPolicy = Annotated[Caller, Depends(Page("api:policy", "read"))]
CanWritePolicy = Annotated[Caller, Depends(Page("api:policy", "write"))]
CanApprovePolicy = Annotated[Caller, Depends(Page("api:policy", "approve"))]
Reason = Annotated[str, Form(max_length=2000)]
# What a redirect back to a proposal may say happened.
DONE = {
    "approved": "Approved: the change is in force.",
    "rejected": "Rejected: nothing was applied.",
    "withdrawn": "Withdrawn: nothing was applied.",
}
RECENT = 20
IMPACT_DAYS = 30


@router.get("/proposals")
def queue_page(request: Request, caller: CanReadPolicy, sessions: SessionsDep) -> Response:
    with sessions() as session:
        rows = proposals.find(session)
        pending = [_summary(p) for p in rows if p.status == "pending"]
        decided = [_summary(p) for p in reversed(rows) if p.status != "pending"][:RECENT]
    return render(
        request,
        "officer/proposals.html.j2",
        {"pending": pending, "decided": decided},
        caller=caller,
    )


def _summary(row: PolicyProposal) -> dict[str, Any]:
    changes = proposal_changes(row)
    return {
        "row": row,
        "added": len(changes.get("add", ())),
        "removed": len(changes.get("remove", ())),
        "to_version": changes.get("to_version"),
    }


def _checks(session: Session, vocab: Vocabulary, row: PolicyProposal) -> dict[str, Any]:
    """The proposal tried on the policy as it is now: its diff, the policy tests, its impact."""
    changes = proposal_changes(row)
    to_version = changes.get("to_version")
    if to_version is not None:
        current, _, after = policy.plan_rollback(session, to_version=to_version, vocab=vocab)
    else:
        current, _, after = policy.propose(
            session, add=changes["add"], remove=changes["remove"], vocab=vocab
        )
    candidate = compile_candidate(version=current.version + 1, rules=after, vocab=vocab)
    results = policy_tests.evaluate(policy_tests.cases(session), candidate)
    report, change = dry_run(
        session,
        vocab=vocab,
        days=IMPACT_DAYS,
        add=changes.get("add", ()),
        remove=changes.get("remove", ()),
        to_version=to_version,
    )
    return {
        "diff": change,
        "tests": [r.as_dict() for r in results],
        "failing": sum(1 for r in results if not r.passed),
        "impact": report.summary(examples=EXAMPLES),
    }


def _proposal_page(
    request: Request,
    caller: Caller,
    sessions: SessionsDep,
    vocab: Vocabulary,
    engine: PolicyEngine,
    proposal_id: int,
    *,
    error: str | None = None,
    done: str | None = None,
    status_code: int = 200,
) -> Response:
    checks: dict[str, Any] | None = None
    checks_error = None
    can_write = may(engine, caller, "api:policy", "write")
    with sessions() as session:
        row = proposals.get(session, proposal_id)
        mine = same_person(caller.ctx, row)
        # The dry run is the impact route's, behind its permission.
        if row.status == "pending" and can_write:
            try:
                checks = _checks(session, vocab, row)
            except WardenError as exc:
                checks_error = exc.message
    context = {
        "proposal": row,
        "changes": proposal_changes(row),
        "mine": mine,
        "can_approve": may(engine, caller, "api:policy", "approve") and not mine,
        "can_withdraw": can_write and mine,
        "checks": checks,
        "checks_error": checks_error,
        "impact_days": IMPACT_DAYS,
        "error": error,
        "done": DONE.get(done or ""),
    }
    return render(
        request, "officer/proposal.html.j2", context, caller=caller, status_code=status_code
    )


@router.get("/proposals/{proposal_id}")
def proposal_page(
    request: Request,
    proposal_id: DbInt,
    caller: CanReadPolicy,
    sessions: SessionsDep,
    settings: SettingsDep,
    engine: PolicyDep,
    done: str | None = None,
) -> Response:
    return _proposal_page(
        request, caller, sessions, vocabulary(settings), engine, proposal_id, done=done
    )


def _back(proposal_id: int, done: str) -> Response:
    return RedirectResponse(f"{QUEUE}/{proposal_id}?done={done}", status_code=303)


@router.post("/proposals/{proposal_id}/approve")
def approve(
    request: Request,
    proposal_id: DbInt,
    caller: CanApprovePolicy,
    sessions: SessionsDep,
    settings: SettingsDep,
    engine: PolicyDep,
    reload: ReloadDep,
    reason: Reason = "",
) -> Response:
    vocab = vocabulary(settings)
    try:
        with sessions.begin() as session:
            duties.approve(
                session,
                caller.ctx,
                proposal_id=proposal_id,
                vocab=vocab,
                note=reason,
                lifetime=timedelta(hours=settings.proposal_lifetime_hours),
            )
    except WardenError as exc:
        return _proposal_page(
            request,
            caller,
            sessions,
            vocab,
            engine,
            proposal_id,
            error=exc.message,
            status_code=exc.status_code,
        )
    # This process enforces the new version before it answers, as the API's route does.
    reload()
    return _back(proposal_id, "approved")


def _close(
    request: Request,
    proposal_id: int,
    caller: Caller,
    sessions: SessionsDep,
    vocab: Vocabulary,
    engine: PolicyEngine,
    reason: str,
    *,
    withdraw: bool,
) -> Response:
    try:
        with sessions.begin() as session:
            close = proposals.withdraw if withdraw else proposals.reject
            status = close(session, caller.ctx, proposal_id=proposal_id, reason=reason).status
    except WardenError as exc:
        return _proposal_page(
            request,
            caller,
            sessions,
            vocab,
            engine,
            proposal_id,
            error=exc.message,
            status_code=exc.status_code,
        )
    return _back(proposal_id, status)


@router.post("/proposals/{proposal_id}/reject")
def reject(
    request: Request,
    proposal_id: DbInt,
    caller: CanApprovePolicy,
    sessions: SessionsDep,
    settings: SettingsDep,
    engine: PolicyDep,
    reason: Reason = "",
) -> Response:
    return _close(
        request, proposal_id, caller, sessions, vocabulary(settings), engine, reason, withdraw=False
    )


@router.post("/proposals/{proposal_id}/withdraw")
def withdraw(
    request: Request,
    proposal_id: DbInt,
    caller: CanWritePolicy,
    sessions: SessionsDep,
    settings: SettingsDep,
    engine: PolicyDep,
    reason: Reason = "",
) -> Response:
    return _close(
        request, proposal_id, caller, sessions, vocabulary(settings), engine, reason, withdraw=True
    )
