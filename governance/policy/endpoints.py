"""Routes for reading, changing, testing, reviewing and approving the access policy.

Plain ``def`` routes: FastAPI runs them in its thread pool, and each owns one transaction.
A route that writes a version reloads the policy after commit, so this process
enforces the change before it answers; the other processes follow within one poll period.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from governance.api.dependencies import PolicyDep, ReloadDep, SettingsDep
from governance.api.deps import Authorize, Caller
from governance.config import Settings
from governance.db.base import DbBigInt, DbInt
from governance.identity import duties
from governance.kit.problems import responses
from governance.kit.transaction import SessionsDep, TransactionDep
from governance.policy.impact import dry_run
from governance.policy.models import PolicyProposal, PolicyTestCase, PolicyVersion
from governance.policy.proposals import proposal_changes, proposals
from governance.policy.rules import Vocabulary, load_rules
from governance.policy.schemas import (
    ImpactReportOut,
    ImpactRequest,
    PolicyChange,
    PolicyDiff,
    PolicyOut,
    PolicyTestCreate,
    PolicyTestOut,
    PolicyTestResult,
    PolicyTestRun,
    PolicyVersionOut,
    PolicyView,
    PolicyVocabulary,
    ProposalDecision,
    ProposalOut,
    ProposalRejection,
    RoleHoldingOut,
    Rollback,
)
from governance.policy.service import default_policy, policy
from governance.policy.testcases import policy_tests
from governance.policy.timeline import role_timeline
from governance.policy.view import summarize

router = APIRouter(prefix="/v1/policy", tags=["policy"])

CanReadPolicy = Annotated[Caller, Depends(Authorize("api:policy", "read"))]
CanWritePolicy = Annotated[Caller, Depends(Authorize("api:policy", "write"))]
CanApprovePolicy = Annotated[Caller, Depends(Authorize("api:policy", "approve"))]
CanReadRoles = Annotated[Caller, Depends(Authorize("api:roles", "read"))]

PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": ProposalOut, "description": "Pending: a second officer must approve"}
}


def version_out(row: PolicyVersion) -> PolicyVersionOut:
    return PolicyVersionOut(
        version=row.version,
        parent=row.parent,
        created_at=row.created_at,
        author=row.author,
        approved_by=row.approved_by,
        reason=row.reason,
        kind=row.kind,
        sha256=row.sha256,
        diff=json.loads(row.diff),
    )


def policy_out(row: PolicyVersion, vocab: Vocabulary | None = None) -> PolicyOut:
    rules = load_rules(row.rules)
    view = vocabulary = None
    if vocab is not None:
        view = PolicyView(**summarize(rules, roles_known=vocab.roles))
        vocabulary = PolicyVocabulary(roles=sorted(vocab.roles), actions=sorted(vocab.actions))
    return PolicyOut(
        **version_out(row).model_dump(),
        rules=[r.as_list() for r in rules],
        view=view,
        vocabulary=vocabulary,
    )


def proposal_out(row: PolicyProposal) -> ProposalOut:
    return ProposalOut(
        id=row.id,
        created_at=row.created_at,
        author=row.author,
        reason=row.reason,
        kind=row.kind,
        changes=proposal_changes(row),
        base_version=row.base_version,
        status=row.status,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        decision_reason=row.decision_reason,
        applied_version=row.applied_version,
    )


def test_out(row: PolicyTestCase) -> PolicyTestOut:
    return PolicyTestOut(
        id=row.id,
        subject=row.subject,
        object=row.object,
        action=row.action,
        expected=row.expected,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _vocab(settings: Settings) -> Vocabulary:
    vocab, _ = default_policy(settings.policies_dir)
    return vocab


# -- reading ---------------------------------------------------------------------------------


@router.get("", operation_id="get_policy", responses=responses())
def current_policy(
    settings: SettingsDep, caller: CanReadPolicy, session: TransactionDep
) -> PolicyOut:
    """The current policy version: its rules; roles, grants, denies and groups; the vocabulary."""
    return policy_out(policy.current(session), _vocab(settings))


@router.get("/versions", operation_id="list_policy_versions", responses=responses())
def list_versions(
    caller: CanReadPolicy,
    session: TransactionDep,
    offset: Annotated[DbBigInt, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[PolicyVersionOut]:
    """The history: every version with author, time, reason, approver, diff and sha256."""
    return [version_out(r) for r in policy.history(session, offset=offset, limit=limit)]


@router.get("/versions/{version}", operation_id="get_policy_version", responses=responses(404))
def get_version(
    version: DbInt, settings: SettingsDep, caller: CanReadPolicy, session: TransactionDep
) -> PolicyOut:
    """One version with all its rules."""
    return policy_out(policy.get(session, version), _vocab(settings))


@router.get("/diff", operation_id="diff_policy_versions", responses=responses(404))
def diff_versions(
    sessions: SessionsDep,
    caller: CanReadPolicy,
    from_version: Annotated[DbInt, Query(alias="from", ge=1)],
    to_version: Annotated[DbInt | None, Query(alias="to", ge=1)] = None,
) -> PolicyDiff:
    """Rules added and removed between two versions (``to`` defaults to the current one)."""
    with sessions.begin() as session:
        target = to_version if to_version is not None else policy.current(session).version
        change = policy.diff_between(session, old=from_version, new=target)
    return PolicyDiff(from_version=from_version, to_version=target, **change)


# -- changing --------------------------------------------------------------------------------


def _applied(reload: Callable[[], None], out: PolicyOut) -> PolicyOut:
    reload()
    return out


@router.post(
    "/changes",
    operation_id="change_policy",
    status_code=201,
    responses={**responses(409, 422), **PENDING},
)
def apply_change(
    body: PolicyChange,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
    reload: ReloadDep,
    caller: CanWritePolicy,
) -> PolicyOut | ProposalOut:
    """Apply a change (add/remove rules) with a reason; creates a new immutable version.

    Every policy test must pass on the result. The change becomes a pending proposal instead
    (202) when a second approval is required, and always when it widens anyone's power over
    identity, keys, roles, policy or the audit log.
    """
    vocab = _vocab(settings)
    with sessions.begin() as session:
        duties.keep_an_admin(session, vocab=vocab, add=body.add, remove=body.remove)
        if settings.require_second_approval or policy.second_person_needed(
            session, vocab=vocab, add=body.add, remove=body.remove
        ):
            proposal = proposals.propose_change(
                session,
                caller.ctx,
                add=body.add,
                remove=body.remove,
                reason=body.reason,
                vocab=vocab,
                base_version=body.base_version,
            )
            response.status_code = 202
            return proposal_out(proposal)
        row = policy.apply(
            session,
            caller.ctx,
            add=body.add,
            remove=body.remove,
            reason=body.reason,
            vocab=vocab,
            base_version=body.base_version,
        )
        out = policy_out(row)
    return _applied(reload, out)


@router.post(
    "/rollback",
    operation_id="rollback_policy",
    status_code=201,
    responses={**responses(404, 409, 422), **PENDING},
)
def rollback(
    body: Rollback,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
    reload: ReloadDep,
    caller: CanWritePolicy,
) -> PolicyOut | ProposalOut:
    """Restore an earlier version's rules as a new version (kind ``rollback``)."""
    vocab = _vocab(settings)
    with sessions.begin() as session:
        duties.keep_an_admin(session, vocab=vocab, to_version=body.to_version)
        if settings.require_second_approval or policy.second_person_needed(
            session, vocab=vocab, to_version=body.to_version
        ):
            proposal = proposals.propose_rollback(
                session,
                caller.ctx,
                to_version=body.to_version,
                reason=body.reason,
                vocab=vocab,
                base_version=body.base_version,
            )
            response.status_code = 202
            return proposal_out(proposal)
        row = policy.rollback(
            session,
            caller.ctx,
            to_version=body.to_version,
            reason=body.reason,
            vocab=vocab,
            base_version=body.base_version,
        )
        out = policy_out(row)
    return _applied(reload, out)


@router.post("/impact", operation_id="simulate_policy_impact", responses=responses(404, 409, 422))
def impact(
    body: ImpactRequest, settings: SettingsDep, caller: CanWritePolicy, session: TransactionDep
) -> ImpactReportOut:
    """Dry run: who would gain or lose access, replaying the audited requests of N days."""
    report, change = dry_run(
        session,
        vocab=_vocab(settings),
        days=body.days,
        add=body.add,
        remove=body.remove,
        to_version=body.to_version,
    )
    return ImpactReportOut(**report.summary(examples=body.examples), diff=change)


# -- policy tests ----------------------------------------------------------------------------


@router.get("/tests", operation_id="list_policy_tests", responses=responses())
def list_tests(caller: CanReadPolicy, session: TransactionDep) -> list[PolicyTestOut]:
    """The stored policy tests."""
    return [test_out(c) for c in policy_tests.cases(session)]


@router.post(
    "/tests", operation_id="add_policy_test", status_code=201, responses=responses(409, 422)
)
def add_test(
    body: PolicyTestCreate,
    policy_engine: PolicyDep,
    settings: SettingsDep,
    caller: CanWritePolicy,
    session: TransactionDep,
) -> PolicyTestOut:
    """Add a policy test; it must pass now, and every later change must keep it passing."""
    current = policy.current(session)
    compiled = policy_engine.current
    case = policy_tests.add(
        session,
        caller.ctx,
        subject=body.subject,
        object=body.object,
        action=body.action,
        expected=body.expected,
        description=body.description,
        vocab=_vocab(settings),
        current=compiled if compiled.version == current.version else None,
    )
    return test_out(case)


# ``:int``: ``/v1/policy/tests/run`` is the run route's path (a DELETE there is a 405 naming
# POST), not a test case named "run".
@router.delete(
    "/tests/{case_id:int}", operation_id="remove_policy_test", responses=responses(404, 422)
)
def remove_test(
    case_id: DbInt,
    caller: CanWritePolicy,
    session: TransactionDep,
    reason: Annotated[str, Query(min_length=1, max_length=2000)],
) -> PolicyTestOut:
    """Remove a policy test (the reason is audited)."""
    return test_out(policy_tests.remove(session, caller.ctx, case_id=case_id, reason=reason))


@router.post("/tests/run", operation_id="run_policy_tests", responses=responses())
def run_tests(
    sessions: SessionsDep, policy_engine: PolicyDep, caller: CanReadPolicy
) -> PolicyTestRun:
    """Run every policy test against the policy this process enforces now."""
    compiled = policy_engine.current
    with sessions.begin() as session:
        results = policy_tests.run(session, compiled=compiled)
    failing = [PolicyTestResult(**r.as_dict()) for r in results if not r.passed]
    return PolicyTestRun(
        policy_version=compiled.version,
        total=len(results),
        passed=len(results) - len(failing),
        failed=len(failing),
        failing=failing,
    )


# -- separation of duties --------------------------------------------------------------------


@router.get("/proposals", operation_id="list_policy_proposals", responses=responses(422))
def list_proposals(
    caller: CanReadPolicy, session: TransactionDep, status: str | None = None
) -> list[ProposalOut]:
    """Change proposals (filter by ``status``: pending, applied, rejected, withdrawn)."""
    return [proposal_out(p) for p in proposals.find(session, status=status)]


@router.post(
    "/proposals",
    operation_id="create_policy_proposal",
    status_code=201,
    responses=responses(409, 422),
)
def create_proposal(
    body: PolicyChange, settings: SettingsDep, caller: CanWritePolicy, session: TransactionDep
) -> ProposalOut:
    """Propose a change for a second officer to approve (even when approval is optional)."""
    return proposal_out(
        proposals.propose_change(
            session,
            caller.ctx,
            add=body.add,
            remove=body.remove,
            reason=body.reason,
            vocab=_vocab(settings),
            base_version=body.base_version,
        )
    )


@router.get(
    "/proposals/{proposal_id}", operation_id="get_policy_proposal", responses=responses(404)
)
def get_proposal(proposal_id: DbInt, caller: CanReadPolicy, session: TransactionDep) -> ProposalOut:
    """One proposal."""
    return proposal_out(proposals.get(session, proposal_id))


@router.post(
    "/proposals/{proposal_id}/approve",
    operation_id="approve_policy_proposal",
    status_code=201,
    responses=responses(404, 409, 422),
)
def approve_proposal(
    proposal_id: DbInt,
    body: ProposalDecision,
    sessions: SessionsDep,
    settings: SettingsDep,
    reload: ReloadDep,
    caller: CanApprovePolicy,
) -> PolicyOut:
    """Approve and apply a proposal; its approver must not be its author.

    Also refused when the approver's roles were granted by the author, when both were enrolled
    by the same person within the proposal's lifetime, or when the proposal has expired.

    It is re-validated against the current version and the policy tests are run again.
    """
    with sessions.begin() as session:
        _, row = duties.approve(
            session,
            caller.ctx,
            proposal_id=proposal_id,
            vocab=_vocab(settings),
            note=body.reason,
            lifetime=timedelta(hours=settings.proposal_lifetime_hours),
        )
        out = policy_out(row)
    return _applied(reload, out)


@router.post(
    "/proposals/{proposal_id}/reject",
    operation_id="reject_policy_proposal",
    responses=responses(404, 409, 422),
)
def reject_proposal(
    proposal_id: DbInt, body: ProposalRejection, caller: CanApprovePolicy, session: TransactionDep
) -> ProposalOut:
    """Reject a pending proposal (nothing is applied)."""
    return proposal_out(
        proposals.reject(session, caller.ctx, proposal_id=proposal_id, reason=body.reason)
    )


@router.post(
    "/proposals/{proposal_id}/withdraw",
    operation_id="withdraw_policy_proposal",
    responses=responses(404, 409, 422),
)
def withdraw_proposal(
    proposal_id: DbInt, body: ProposalRejection, caller: CanWritePolicy, session: TransactionDep
) -> ProposalOut:
    """Withdraw one's own pending proposal."""
    return proposal_out(
        proposals.withdraw(session, caller.ctx, proposal_id=proposal_id, reason=body.reason)
    )


# -- access review ---------------------------------------------------------------------------


@router.get("/role-timeline", responses=responses())
def get_role_timeline(
    sessions: SessionsDep,
    caller: CanReadRoles,
    principal: str | None = None,
    role: str | None = None,
    include_roles: bool = False,
) -> list[RoleHoldingOut]:
    """Who held which role, from when to when, granted and revoked by whom (from history)."""
    with sessions.begin() as session:
        periods = role_timeline(session, member=principal, role=role, include_roles=include_roles)
    return [RoleHoldingOut(**p.as_dict()) for p in periods]
