"""Separation of duties over people: who may grant roles, and who may approve whose proposal.

- A role grant that widens anyone's power over the governance surface (admin, compliance
  officer, auditor, or any role a policy made as strong) becomes a proposal that a compliance
  officer other than its author approves. Other grants apply at once.
- The first compliance officer and the first admin are appointed by the local operator (``warden
  init`` or ``warden roles grant`` on the server's machine), audited as a bootstrap; that path
  closes as soon as someone holds the role.
- An approval is refused when the approver holds a role that the proposal's author granted
  (proposed), when both were enrolled by the same principal close to the proposal (two accounts
  of one admin), or when the proposal has expired. Enrolments by the local operator (who can
  write the database anyway) do not count as an admin's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.db.base import as_utc, utcnow
from governance.identity.enrolment import enrolments
from governance.identity.models import Principal
from governance.identity.service import identity
from governance.kit.context import Context
from governance.policy.errors import ApprovalRefused
from governance.policy.holders import holders
from governance.policy.models import PolicyProposal, PolicyVersion
from governance.policy.proposals import proposal_changes, proposals
from governance.policy.rules import Vocabulary, load_rules, role_subject
from governance.policy.service import policy
from governance.policy.timeline import role_timeline

# Roles a local operator may appoint while nobody holds them (a fresh or locked-out deployment).
BOOTSTRAP_ROLES = ("admin", "compliance_officer")


def held_by_anyone(session: Session, role: str) -> bool:
    """Whether an enabled principal holds ``role`` under the current policy."""
    names = holders(load_rules(policy.current(session).rules), role_subject(role))
    if not names:
        return False
    enabled = session.scalar(
        select(Principal.id)
        .where(Principal.name.in_(sorted(names)), Principal.disabled.is_(False))
        .limit(1)
    )
    return enabled is not None


def change_role(
    session: Session,
    ctx: Context,
    *,
    principal: str,
    role: str,
    reason: str,
    grant: bool,
    vocab: Vocabulary,
    local_operator: bool = False,
) -> PolicyVersion | PolicyProposal:
    """Grant or revoke a role: a new policy version, or a proposal when a second person must agree.

    Args:
        local_operator: the caller is the operator on the server's machine (the CLI), who may
            appoint the first holder of a bootstrap role.

    Returns:
        The applied version, or the pending proposal.

    Raises:
        PrincipalNotFound, InvalidPolicy, PolicyConflict: as for any policy change.
    """
    identity.get(session, principal)
    rule = ["g", principal, role_subject(role)]
    add, remove = ([rule], []) if grant else ([], [rule])
    if not grant:
        keep_an_admin(session, vocab=vocab, remove=remove)
    gains = policy.second_person_needed(session, vocab=vocab, add=add, remove=remove)
    if not gains:
        return policy.apply(session, ctx, add=add, remove=remove, reason=reason, vocab=vocab)
    if local_operator and role in BOOTSTRAP_ROLES and not held_by_anyone(session, role):
        return policy.apply(
            session,
            ctx,
            add=add,
            remove=remove,
            reason=f"bootstrap: first {role} appointed by the local operator: {reason}",
            vocab=vocab,
            bootstrap=True,
        )
    return proposals.propose_change(
        session, ctx, add=add, remove=remove, reason=reason, vocab=vocab
    )


def keep_an_admin(
    session: Session,
    *,
    vocab: Vocabulary,
    add: Sequence[Any] = (),
    remove: Sequence[Any] = (),
    to_version: int | None = None,
) -> None:
    """Refuse a change or rollback that would leave no admin with a live key.

    Raises:
        LastAdmin: naming why; validation errors as the change itself would raise them.
    """
    if to_version is not None:
        _, _, after = policy.plan_rollback(session, to_version=to_version, vocab=vocab)
    else:
        _, _, after = policy.propose(session, add=add, remove=remove, vocab=vocab)
    identity.keep_an_admin(session, rules=after)


def approval_conflict(
    session: Session, ctx: Context, proposal: PolicyProposal, *, lifetime: timedelta
) -> str | None:
    """Why separation of duties forbids ``ctx`` to approve ``proposal``, or None."""
    if as_utc(proposal.created_at) + lifetime <= utcnow():
        return (
            f"the proposal expired {lifetime.days * 24 + lifetime.seconds // 3600} h after it "
            "was made; propose it again"
        )
    approver = ctx.actor.name
    if approver is None:
        return None
    for holding in role_timeline(session, member=approver):
        if holding.revoked_at is not None:
            continue
        if holding.granted_by == proposal.author:
            return (
                f"the approver's role {holding.role.removeprefix('role:')} was granted by the "
                f"proposal's author {proposal.author!r} (policy version "
                f"{holding.granted_in_version})"
            )
    if proposal.author_principal_id is None or ctx.actor.principal_id is None:
        return None
    mine = enrolments.enrolled_by(session, ctx.actor.principal_id)
    theirs = enrolments.enrolled_by(session, proposal.author_principal_id)
    if mine is None or theirs is None or mine.enroller_id is None:
        return None
    made = as_utc(proposal.created_at)
    if mine.enroller_id == theirs.enroller_id and all(
        as_utc(e.redeemed_at) >= made - lifetime for e in (mine, theirs)
    ):
        return (
            f"the approver and the author were both enrolled by {mine.enroller!r} within the "
            "proposal's lifetime"
        )
    return None


def approve(
    session: Session,
    ctx: Context,
    *,
    proposal_id: int,
    vocab: Vocabulary,
    note: str,
    lifetime: timedelta,
) -> tuple[PolicyProposal, PolicyVersion]:
    """Approve a proposal once separation of duties allows this approver.

    Raises:
        ApprovalRefused: naming why; the proposal stays pending.
        See :meth:`ProposalService.approve` for the rest.
    """
    proposal = proposals.get(session, proposal_id, lock=True)
    if proposal.status == "pending":
        why = approval_conflict(session, ctx, proposal, lifetime=lifetime)
        if why is not None:
            raise ApprovalRefused(f"separation of duties: {why}")
        changes = proposal_changes(proposal)
        keep_an_admin(
            session,
            vocab=vocab,
            add=changes.get("add", ()),
            remove=changes.get("remove", ()),
            to_version=changes.get("to_version"),
        )
    return proposals.approve(session, ctx, proposal_id=proposal_id, vocab=vocab, note=note)
