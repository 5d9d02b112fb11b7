"""Separation of duties: a change proposed by one compliance officer, applied by another.

With ``settings.require_second_approval`` every change and rollback becomes a pending proposal.
A different officer approves it; only then is it applied, re-validated against the version that
is current at approval time and re-run through the policy tests. Anyone may also choose to ask
for a second pair of eyes when approval is not required.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.db.base import utcnow
from governance.kit.context import Context
from governance.policy.errors import ApprovalRefused, InvalidPolicy, PolicyNotFound
from governance.policy.models import PolicyProposal, PolicyVersion
from governance.policy.rules import Vocabulary
from governance.policy.service import policy, require_reason

STATUSES = ("pending", "applied", "rejected", "withdrawn")


def same_person(ctx: Context, proposal: PolicyProposal) -> bool:
    """Whether ``ctx`` acts for the proposal's author (by principal id, else by name)."""
    pid = ctx.actor.principal_id
    if pid is not None and proposal.author_principal_id is not None:
        return pid == proposal.author_principal_id
    return ctx.name == proposal.author


def proposal_changes(proposal: PolicyProposal) -> dict[str, Any]:
    """The stored change: ``{"add": [...], "remove": [...]}`` or ``{"to_version": n}``."""
    changes: dict[str, Any] = json.loads(proposal.changes)
    return changes


class ProposalService:
    """Stateless; never commits."""

    def find(self, session: Session, *, status: str | None = None) -> list[PolicyProposal]:
        query = select(PolicyProposal).order_by(PolicyProposal.id)
        if status is not None:
            if status not in STATUSES:
                raise InvalidPolicy(f"status must be one of {', '.join(STATUSES)}")
            query = query.where(PolicyProposal.status == status)
        return list(session.scalars(query))

    def get(self, session: Session, proposal_id: int, *, lock: bool = False) -> PolicyProposal:
        query = select(PolicyProposal).where(PolicyProposal.id == proposal_id)
        if lock:
            # Two approvers racing on PostgreSQL: the second waits, then sees "applied".
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise PolicyNotFound(f"policy proposal {proposal_id} does not exist")
        return row

    def propose_change(
        self,
        session: Session,
        ctx: Context,
        *,
        add: Sequence[Any],
        remove: Sequence[Any],
        reason: str,
        vocab: Vocabulary,
        base_version: int | None = None,
    ) -> PolicyProposal:
        """Validate a change and store it as pending (the policy itself is untouched).

        It is checked now, for early feedback, and again at approval.

        Raises:
            InvalidPolicy: malformed change or no reason.
            PolicyConflict: stale base version, self-grant.
            PolicyTestsFailed: it breaks policy tests under the current version.
        """
        reason = require_reason(reason)
        current, before, after = policy.propose(
            session, add=add, remove=remove, vocab=vocab, base_version=base_version
        )
        policy.check(
            session,
            names=(ctx.actor.name,),
            before=before,
            after=after,
            version=current.version + 1,
            vocab=vocab,
        )
        adds = [r.as_list() for r in policy.parse_rules(add, vocab, "add")]
        removes = [r.as_list() for r in policy.parse_rules(remove, vocab, "remove")]
        return self._store(
            session,
            ctx,
            kind="change",
            reason=reason,
            current=current,
            changes={"add": adds, "remove": removes},
        )

    def propose_rollback(
        self,
        session: Session,
        ctx: Context,
        *,
        to_version: int,
        reason: str,
        vocab: Vocabulary,
        base_version: int | None = None,
    ) -> PolicyProposal:
        """Store a rollback as pending; at approval it restores ``to_version``'s rules exactly.

        Raises:
            See :meth:`PolicyService.plan_rollback`; also a self-grant or failing tests.
        """
        reason = require_reason(reason)
        current, before, after = policy.plan_rollback(
            session, to_version=to_version, vocab=vocab, base_version=base_version
        )
        policy.check(
            session,
            names=(ctx.actor.name,),
            before=before,
            after=after,
            version=current.version + 1,
            vocab=vocab,
        )
        return self._store(
            session,
            ctx,
            kind="rollback",
            reason=reason,
            current=current,
            changes={"to_version": to_version},
        )

    def approve(
        self,
        session: Session,
        ctx: Context,
        *,
        proposal_id: int,
        vocab: Vocabulary,
        note: str = "",
    ) -> tuple[PolicyProposal, PolicyVersion]:
        """Apply a pending proposal on behalf of a second officer.

        Returns:
            ``(the proposal, now applied; the new version)``.

        Raises:
            ApprovalRefused: the approver is the author, or the proposal is not pending.
            InvalidPolicy, PolicyConflict, PolicyTestsFailed: it no longer applies to the
                current version; the proposal stays pending and the policy unchanged.
        """
        proposal = self._pending(session, proposal_id)
        if same_person(ctx, proposal):
            raise ApprovalRefused(
                "separation of duties: a proposal must be approved by a different compliance "
                "officer than its author"
            )
        changes = proposal_changes(proposal)
        if proposal.kind == "rollback":
            row = policy.rollback(
                session,
                ctx,
                to_version=int(changes["to_version"]),
                reason=proposal.reason,
                vocab=vocab,
                approved_by=ctx.name,
                author=proposal.author,
            )
        else:
            row = policy.apply(
                session,
                ctx,
                add=changes["add"],
                remove=changes["remove"],
                reason=proposal.reason,
                vocab=vocab,
                approved_by=ctx.name,
                author=proposal.author,
            )
        self._decide(
            session, ctx, proposal, status="applied", note=note, applied_version=row.version
        )
        return proposal, row

    def reject(
        self, session: Session, ctx: Context, *, proposal_id: int, reason: str
    ) -> PolicyProposal:
        """Close a pending proposal without applying it (``withdrawn`` when its author does).

        Raises:
            InvalidPolicy: no reason.
            ApprovalRefused: the proposal is not pending.
        """
        reason = require_reason(reason)
        proposal = self._pending(session, proposal_id)
        status = "withdrawn" if same_person(ctx, proposal) else "rejected"
        self._decide(session, ctx, proposal, status=status, note=reason)
        return proposal

    def withdraw(
        self, session: Session, ctx: Context, *, proposal_id: int, reason: str
    ) -> PolicyProposal:
        """Withdraw one's own pending proposal.

        Raises:
            InvalidPolicy: no reason.
            ApprovalRefused: not the author's, or not pending.
        """
        reason = require_reason(reason)
        proposal = self._pending(session, proposal_id)
        if not same_person(ctx, proposal):
            raise ApprovalRefused("only its author can withdraw a proposal; others reject it")
        self._decide(session, ctx, proposal, status="withdrawn", note=reason)
        return proposal

    def _pending(self, session: Session, proposal_id: int) -> PolicyProposal:
        proposal = self.get(session, proposal_id, lock=True)
        if proposal.status != "pending":
            raise ApprovalRefused(f"policy proposal {proposal_id} is already {proposal.status}")
        return proposal

    def _store(
        self,
        session: Session,
        ctx: Context,
        *,
        kind: str,
        reason: str,
        current: PolicyVersion,
        changes: dict[str, Any],
    ) -> PolicyProposal:
        proposal = PolicyProposal(
            author=ctx.name[:64],
            author_principal_id=ctx.actor.principal_id,
            reason=reason[:2000],
            kind=kind,
            changes=json.dumps(changes, separators=(",", ":"), sort_keys=True),
            base_version=current.version,
            status="pending",
        )
        session.add(proposal)
        session.flush()
        audit_log.append(
            session,
            [
                ctx.event(
                    "policy.proposal",
                    "propose",
                    resource={"policy_proposal": proposal.id},
                    reason=reason[:500],
                    details={
                        "kind": kind,
                        "base_version": current.version,
                        **_audit_changes(changes),
                    },
                )
            ],
        )
        return proposal

    def _decide(
        self,
        session: Session,
        ctx: Context,
        proposal: PolicyProposal,
        *,
        status: str,
        note: str,
        applied_version: int | None = None,
    ) -> None:
        proposal.status = status
        proposal.decided_by = ctx.name[:64]
        proposal.decided_at = utcnow()
        proposal.decision_reason = note[:2000] or None
        proposal.applied_version = applied_version
        session.flush()
        action = {"applied": "approve", "rejected": "reject", "withdrawn": "withdraw"}[status]
        audit_log.append(
            session,
            [
                ctx.event(
                    "policy.proposal",
                    action,
                    resource={"policy_proposal": proposal.id},
                    reason=note[:500],
                    **({"policy_version": applied_version} if applied_version is not None else {}),
                    details={
                        "author": proposal.author,
                        "kind": proposal.kind,
                        "applied_version": applied_version,
                    },
                )
            ],
        )


def _audit_changes(changes: dict[str, Any]) -> dict[str, Any]:
    if "to_version" in changes:
        return {"to_version": changes["to_version"]}
    if len(changes["add"]) + len(changes["remove"]) <= 500:
        return {"add": changes["add"], "remove": changes["remove"]}
    return {"add_count": len(changes["add"]), "remove_count": len(changes["remove"])}


proposals = ProposalService()
