"""Separation of duties over people: who may grant roles, and who may approve whose proposal.

- A role grant that widens anyone's power over the governance surface (admin, compliance
  officer, auditor, or any role a policy made as strong) becomes a proposal that a compliance
  officer other than its author approves. Other grants apply at once.
- The first compliance officer and the first admin are appointed by the local operator (``warden
  init`` or ``warden roles grant`` on the server's machine), audited as a bootstrap; that path
  closes as soon as someone holds the role.
- An approval is refused when the approver holds a role that the proposal's author granted
  (proposed), holds a key the author issued, when both got their credentials (a person's
  enrolment, a service's key) from the same principal close to the proposal (two accounts of
  one admin), or when the proposal has expired. Enrolments by the local operator (who can
  write the database anyway) do not count as an admin's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.db.base import as_utc, utcnow
from governance.identity.enrolment import enrolments
from governance.identity.models import ApiKey, Principal
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
    since = as_utc(proposal.created_at) - lifetime
    mine = credentials(session, ctx.actor.principal_id)
    theirs = credentials(session, proposal.author_principal_id)
    for issued in mine:
        # The author holds a key they issued to the approver: the author can act as it.
        if not issued.enrolled and issued.issuer == proposal.author:
            return f"the approver's key was issued by the proposal's author {proposal.author!r}"
    recent = {c.issuer: c for c in mine if c.at >= since}
    for other in theirs:
        same = recent.get(other.issuer)
        if same is None or other.at < since:
            continue
        how = (
            "were both enrolled by"
            if same.enrolled and other.enrolled
            else "both got their credentials from"
        )
        return f"the approver and the author {how} {other.issuer!r} within the proposal's lifetime"
    return None


@dataclass(frozen=True)
class Credential:
    """Who gave a principal a credential it holds (``enrolled``: by enrolment), and when."""

    issuer: str
    at: datetime
    enrolled: bool


def credentials(session: Session, principal_id: int) -> list[Credential]:
    """The enrolment a person redeemed and the live keys someone else issued to a service.

    Whoever issued them may hold them (an enrolment code is a bearer secret until redeemed).
    The local operator's enrolments are left out: the operator can write the database anyway.
    """
    found: list[Credential] = []
    enrolled = enrolments.enrolled_by(session, principal_id)
    if enrolled is not None and enrolled.enroller_id is not None:
        found.append(Credential(enrolled.enroller, as_utc(enrolled.redeemed_at), True))
    now = utcnow()
    issued = session.execute(
        select(ApiKey.created_by, ApiKey.created_at, ApiKey.expires_at)
        .join(Principal, Principal.id == ApiKey.principal_id)
        .where(
            ApiKey.principal_id == principal_id,
            Principal.kind == "service",
            ApiKey.revoked_at.is_(None),
            ApiKey.created_by.is_not(None),
        )
    ).all()
    found.extend(
        Credential(str(by), as_utc(at), False)
        for by, at, expires in issued
        if expires is None or as_utc(expires) > now
    )
    return found


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
