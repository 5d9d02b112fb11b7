"""Enrolment: a person obtains their own first API key; nobody hands one over.

An admin (or the local operator) creates a person and an enrolment for them: a one-time code with
a short expiry, stored as a hash like an API key. The person redeems the code for a key that only
they see. A person enrols once: a second enrolment for someone who already redeemed one is
refused, so an admin cannot mint a fresh credential for an existing person. Keys for services
(client applications) stay issuable by admins, since no person holds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.db.base import utcnow
from governance.identity.errors import EnrolmentRefused, InvalidEnrolmentCode
from governance.identity.models import ApiKey, Enrolment, Principal
from governance.identity.service import identity
from governance.identity.tokens import ENROLMENT_PREFIX, new_token, token_hash, well_formed_code
from governance.kit.context import Context

# Long enough to reach a colleague by phone or mail, short enough that a leaked code goes stale.
DEFAULT_TTL = timedelta(hours=24)
MAX_TTL = timedelta(days=7)


@dataclass(frozen=True)
class Enroller:
    """Who enrolled a principal (``enroller_id`` None: the local operator) and when."""

    enroller: str
    enroller_id: int | None
    redeemed_at: datetime


class EnrolmentService:
    """Stateless; never commits."""

    def create(
        self,
        session: Session,
        ctx: Context,
        *,
        principal: str,
        ttl: timedelta = DEFAULT_TTL,
    ) -> tuple[Enrolment, str]:
        """A one-time enrolment code for a person who has not enrolled yet.

        Returns:
            ``(enrolment row, code)``; the code is shown once and never stored.

        Raises:
            PrincipalNotFound: no such principal.
            EnrolmentRefused: a service, a disabled person, a person who already enrolled or
                holds a key, or one with an enrolment still open.
        """
        if not timedelta(0) < ttl <= MAX_TTL:
            raise EnrolmentRefused(f"an enrolment expires within {MAX_TTL.days} days")
        person = identity.get(session, principal)
        if person.kind != "user":
            raise EnrolmentRefused(
                f"{principal!r} is a service: an admin issues its keys (POST /v1/keys)"
            )
        if person.disabled:
            raise EnrolmentRefused(f"principal {principal!r} is disabled")
        now = utcnow()
        previous = list(
            session.scalars(select(Enrolment).where(Enrolment.principal_id == person.id))
        )
        has_key = session.scalar(select(ApiKey.id).where(ApiKey.principal_id == person.id))
        if any(e.redeemed_at is not None for e in previous) or has_key is not None:
            raise EnrolmentRefused(
                f"{principal!r} has already enrolled: a person enrols once, and nobody else can "
                "obtain a credential for them"
            )
        if any(e.expires_at > now for e in previous):
            raise EnrolmentRefused(f"{principal!r} has an enrolment that has not expired yet")
        _, code = new_token(ENROLMENT_PREFIX)
        row = Enrolment(
            principal_id=person.id,
            code_hash=token_hash(code),
            created_at=now,
            created_by=ctx.name[:64],
            created_by_principal_id=ctx.actor.principal_id,
            expires_at=now + ttl,
        )
        session.add(row)
        session.flush()
        audit_log.append(
            session,
            [
                ctx.event(
                    "principal.enrolment",
                    "create",
                    resource={"principal": principal, "enrolment": row.id},
                    details={"expires_at": row.expires_at.isoformat()},
                )
            ],
        )
        return row, code

    def redeem(self, session: Session, ctx: Context, *, code: str) -> tuple[ApiKey, Principal, str]:
        """Exchange a valid, unused, unexpired code for the person's own key.

        Returns:
            ``(key row, principal, token)``; the token is shown once.

        Raises:
            InvalidEnrolmentCode: one message for malformed, unknown, used and expired codes.
        """
        if not well_formed_code(code):
            raise InvalidEnrolmentCode()
        query = select(Enrolment).where(Enrolment.code_hash == token_hash(code))
        # Two redemptions racing on PostgreSQL: the second waits, then sees it redeemed.
        row = session.scalar(query.with_for_update())
        now = utcnow()
        if row is None or row.redeemed_at is not None or row.expires_at <= now:
            raise InvalidEnrolmentCode()
        person = session.get(Principal, row.principal_id)
        if person is None or person.disabled:
            raise InvalidEnrolmentCode()
        as_person = Context(
            actor=type(ctx.actor)(
                principal_id=person.id, name=person.name, roles=(), auth_method="enrolment"
            ),
            source=ctx.source,
            request_id=ctx.request_id,
            policy_version=ctx.policy_version,
        )
        key, token = identity.issue_key(session, as_person, principal=person.name, personal=True)
        row.redeemed_at = now
        row.key_id = key.key_id
        session.flush()
        audit_log.append(
            session,
            [
                as_person.event(
                    "principal.enrolment",
                    "redeem",
                    resource={"principal": person.name, "enrolment": row.id, "key_id": key.key_id},
                )
            ],
        )
        return key, person, token

    def enrolled_by(self, session: Session, principal_id: int) -> Enroller | None:
        """Who created the enrolment a principal redeemed, and when it was redeemed."""
        row = session.execute(
            select(Enrolment.created_by, Enrolment.created_by_principal_id, Enrolment.redeemed_at)
            .where(Enrolment.principal_id == principal_id, Enrolment.redeemed_at.is_not(None))
            .limit(1)
        ).first()
        if row is None or row[2] is None:
            return None
        return Enroller(enroller=str(row[0]), enroller_id=row[1], redeemed_at=row[2])


enrolments = EnrolmentService()
