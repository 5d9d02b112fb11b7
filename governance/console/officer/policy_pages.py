"""The policy as an officer reads it, and a change tried before it is proposed.

The page reads what ``GET /v1/policy`` reads; the preview is ``POST /v1/policy/impact`` (the
same permission, the same dry run) with the diff and the policy tests run on the candidate;
submitting is ``POST /v1/policy/proposals``: a proposal a second officer decides.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from governance.api.dependencies import PolicyDep, SettingsDep
from governance.api.deps import Caller
from governance.console.guard import Page
from governance.console.officer.rule_text import parse_rules
from governance.console.render import render
from governance.errors import WardenError
from governance.kit.transaction import SessionsDep
from governance.policy.engine import PolicyEngine
from governance.policy.impact import dry_run
from governance.policy.proposals import proposals
from governance.policy.rules import Vocabulary, load_rules
from governance.policy.schemas import REPLAY_DAYS_MAX
from governance.policy.service import default_policy, policy
from governance.policy.testcases import compile_candidate, policy_tests
from governance.policy.view import summarize

router = APIRouter()
POLICY = "/console/officer/policy"
CanReadPolicy = Annotated[Caller, Depends(Page("api:policy", "read"))]
CanWritePolicy = Annotated[Caller, Depends(Page("api:policy", "write"))]
# The impact examples shown per principal.
EXAMPLES = 5
HISTORY = 20


def vocabulary(settings: SettingsDep) -> Vocabulary:
    vocab, _ = default_policy(settings.policies_dir)
    return vocab


def may(engine: PolicyEngine, caller: Caller, obj: str, action: str) -> bool:
    """Whether the policy in force lets the person do what a button on the page would do."""
    return engine.current.enforce(caller.name, obj, action).allowed


def _policy_context(session: Session, vocab: Vocabulary) -> dict[str, Any]:
    row = policy.current(session)
    return {
        "version": row,
        "view": summarize(load_rules(row.rules), roles_known=vocab.roles),
        "history": policy.history(session, offset=0, limit=HISTORY),
        "actions": sorted(vocab.actions),
    }


def _policy_page(
    request: Request,
    caller: Caller,
    sessions: SessionsDep,
    vocab: Vocabulary,
    engine: PolicyEngine,
    *,
    error: str | None = None,
    status_code: int = 200,
    form: dict[str, Any] | None = None,
) -> Response:
    with sessions() as session:
        context = _policy_context(session, vocab)
    context.update(
        can_write=may(engine, caller, "api:policy", "write"),
        error=error,
        form={"add": "", "remove": "", "days": 30, **(form or {})},
        max_days=REPLAY_DAYS_MAX,
    )
    return render(
        request, "officer/policy.html.j2", context, caller=caller, status_code=status_code
    )


@router.get("/policy")
def policy_page(
    request: Request,
    caller: CanReadPolicy,
    sessions: SessionsDep,
    settings: SettingsDep,
    engine: PolicyDep,
    add: Annotated[str, Query(max_length=200_000)] = "",
    remove: Annotated[str, Query(max_length=200_000)] = "",
    days: Annotated[int, Query(ge=1, le=REPLAY_DAYS_MAX)] = 30,
) -> Response:
    form = {"add": add, "remove": remove, "days": days}
    return _policy_page(request, caller, sessions, vocabulary(settings), engine, form=form)


def _preview(
    session: Session, vocab: Vocabulary, add: list[list[str]], remove: list[list[str]], days: int
) -> dict[str, Any]:
    """Diff, policy tests and impact of a change: nothing is written."""
    current, _, after = policy.propose(session, add=add, remove=remove, vocab=vocab)
    candidate = compile_candidate(version=current.version + 1, rules=after, vocab=vocab)
    results = policy_tests.evaluate(policy_tests.cases(session), candidate)
    report, change = dry_run(session, vocab=vocab, days=days, add=add, remove=remove)
    return {
        "base_version": current.version,
        "diff": change,
        "tests": [r.as_dict() for r in results],
        "failing": sum(1 for r in results if not r.passed),
        "impact": report.summary(examples=EXAMPLES),
    }


@router.get("/policy/preview")
def preview_page(
    request: Request,
    caller: CanWritePolicy,
    sessions: SessionsDep,
    settings: SettingsDep,
    engine: PolicyDep,
    add: Annotated[str, Query(max_length=200_000)] = "",
    remove: Annotated[str, Query(max_length=200_000)] = "",
    days: Annotated[int, Query(ge=1, le=REPLAY_DAYS_MAX)] = 30,
) -> Response:
    vocab = vocabulary(settings)
    form = {"add": add, "remove": remove, "days": days}
    try:
        adds, removes = parse_rules(add, "add"), parse_rules(remove, "remove")
        with sessions() as session:
            preview = _preview(session, vocab, adds, removes, days)
    except WardenError as exc:
        return _policy_page(
            request,
            caller,
            sessions,
            vocab,
            engine,
            error=exc.message,
            status_code=exc.status_code,
            form=form,
        )
    context = {
        **preview,
        "add": [", ".join(r) for r in adds],
        "remove": [", ".join(r) for r in removes],
        "form": form,
    }
    return render(request, "officer/preview.html.j2", context, caller=caller)


@router.post("/proposals")
def submit_proposal(
    request: Request,
    caller: CanWritePolicy,
    sessions: SessionsDep,
    settings: SettingsDep,
    engine: PolicyDep,
    reason: Annotated[str, Form(max_length=2000)],
    add: Annotated[list[str], Form(max_length=10_000)] = [],  # noqa: B006 - FastAPI copies it
    remove: Annotated[list[str], Form(max_length=10_000)] = [],  # noqa: B006
    base_version: Annotated[int | None, Form(ge=1)] = None,
) -> Response:
    vocab = vocabulary(settings)
    try:
        adds = parse_rules("\n".join(add), "add")
        removes = parse_rules("\n".join(remove), "remove")
        with sessions.begin() as session:
            proposal = proposals.propose_change(
                session,
                caller.ctx,
                add=adds,
                remove=removes,
                reason=reason,
                vocab=vocab,
                base_version=base_version,
            )
            proposal_id = proposal.id
    except WardenError as exc:
        form = {"add": "\n".join(add), "remove": "\n".join(remove)}
        return _policy_page(
            request,
            caller,
            sessions,
            vocab,
            engine,
            error=exc.message,
            status_code=exc.status_code,
            form=form,
        )
    return RedirectResponse(f"/console/officer/proposals/{proposal_id}", status_code=303)
