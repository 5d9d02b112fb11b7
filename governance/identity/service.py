"""Principals and API keys: creation, listing, disabling, issue, revocation, lookup."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.db import state
from governance.db.base import utcnow
from governance.identity import anchor
from governance.identity.errors import (
    InvalidIdentity,
    LastAdmin,
    PersonalCredential,
    PrincipalExists,
    PrincipalNotFound,
)
from governance.identity.models import ApiKey, Principal
from governance.identity.tokens import new_token, token_hash
from governance.kit.context import Context
from governance.policy.holders import holders
from governance.policy.rules import Rule, load_rules, role_subject
from governance.policy.service import policy

# \Z, not $: "$" also matches before a trailing newline ("bob\n" would pass as a new name).
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
KINDS = ("user", "service")


class IdentityService:
    """Stateless; one instance per module. Never commits: the caller owns the transaction."""

    def create_principal(
        self, session: Session, ctx: Context, *, name: str, kind: str
    ) -> Principal:
        if not NAME_RE.match(name):
            raise InvalidIdentity(
                "principal names are 1-64 lowercase letters, digits, '.', '_' or '-'"
            )
        if kind not in KINDS:
            raise InvalidIdentity("kind must be 'user' or 'service'")
        if session.scalar(select(Principal.id).where(Principal.name == name)) is not None:
            raise PrincipalExists(f"principal {name!r} already exists")
        principal = Principal(name=name, kind=kind, disabled=False, created_by=ctx.name)
        session.add(principal)
        try:
            session.flush()
        except IntegrityError:
            raise PrincipalExists(f"principal {name!r} already exists") from None
        audit_log.append(
            session,
            [
                ctx.event(
                    "principal.create",
                    "create",
                    resource={"principal": name},
                    details={"kind": kind},
                )
            ],
        )
        return principal

    def get(self, session: Session, name: str) -> Principal:
        principal = session.scalar(select(Principal).where(Principal.name == name))
        if principal is None:
            raise PrincipalNotFound(f"principal {name!r} does not exist")
        return principal

    def list_principals(self, session: Session) -> list[Principal]:
        return list(session.scalars(select(Principal).order_by(Principal.name)))

    def set_disabled(
        self, session: Session, ctx: Context, *, name: str, disabled: bool
    ) -> Principal:
        principal = self.get(session, name)
        if disabled and not principal.disabled:
            self.keep_an_admin(session, losing_principal=principal.id)
        principal.disabled = disabled
        state.bump(session, state.IDENTITY)
        audit_log.append(
            session,
            [
                ctx.event(
                    "principal.disable" if disabled else "principal.enable",
                    "disable" if disabled else "enable",
                    resource={"principal": name},
                )
            ],
        )
        return principal

    def issue_key(
        self,
        session: Session,
        ctx: Context,
        *,
        principal: str,
        expires_at: datetime | None = None,
        personal: bool = False,
    ) -> tuple[ApiKey, str]:
        """Issue a key. The token is returned once and never stored.

        Args:
            personal: the person is obtaining their own key (enrolment, or the local operator
                running ``warden init`` for the first admin). Otherwise only services' keys are
                issued: a key for a person handed over by someone else would let that someone
                act as them.

        Returns:
            ``(key row, token)``.

        Raises:
            PrincipalNotFound: no such principal.
            InvalidIdentity: disabled, or an expiry in the past.
            PersonalCredential: a person's key asked for by someone else.
        """
        owner = self.get(session, principal)
        if owner.disabled:
            raise InvalidIdentity(f"principal {principal!r} is disabled")
        # A person may add a key of their own; nobody may issue one for another person.
        if owner.kind == "user" and not personal and ctx.actor.principal_id != owner.id:
            raise PersonalCredential(
                f"{principal!r} is a person: people obtain their own key by enrolment "
                f"(POST /v1/principals/{principal}/enrolment, then POST /v1/enrol)"
            )
        if expires_at is not None and expires_at <= utcnow():
            raise InvalidIdentity("expires_at must be in the future")
        key_id, token = new_token()
        key = ApiKey(
            key_id=key_id,
            token_hash=token_hash(token),
            principal_id=owner.id,
            created_by=ctx.name,
            expires_at=expires_at,
        )
        session.add(key)
        session.flush()
        audit_log.append(
            session,
            [
                ctx.event(
                    "key.issue",
                    "issue",
                    resource={"principal": principal, "key_id": key_id},
                    details={
                        "expires_at": expires_at.isoformat() if expires_at else None,
                        "content_hash": anchor.row_hash(key),
                    },
                )
            ],
        )
        return key, token

    def list_keys(self, session: Session, principal: str | None = None) -> list[tuple[ApiKey, str]]:
        query = select(ApiKey, Principal.name).join(Principal).order_by(ApiKey.id)
        if principal is not None:
            query = query.where(Principal.name == principal)
        return [(k, n) for k, n in session.execute(query).all()]

    def revoke_key(self, session: Session, ctx: Context, *, key_id: str) -> ApiKey:
        key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
        if key is None:
            raise PrincipalNotFound(f"API key {key_id!r} does not exist")
        if key.revoked_at is None:
            self.keep_an_admin(session, losing_key=key.id)
            key.revoked_at = utcnow()
            key.revoked_by = ctx.name
            state.bump(session, state.IDENTITY)
        audit_log.append(session, [ctx.event("key.revoke", "revoke", resource={"key_id": key_id})])
        return key

    def keep_an_admin(
        self,
        session: Session,
        *,
        rules: Sequence[Rule] | None = None,
        losing_key: int | None = None,
        losing_principal: int | None = None,
    ) -> None:
        """Refuse what would leave no enabled admin with a live key (a locked-out deployment).

        Args:
            rules: the policy after a planned change (default: the current one).
            losing_key: a key about to be revoked.
            losing_principal: a principal about to be disabled.

        Raises:
            LastAdmin: no admin would keep a live key.
        """
        admin = role_subject("admin")
        current = load_rules(policy.current(session).rules)
        now = utcnow()
        live = [
            k
            for k in session.execute(
                select(ApiKey.id, ApiKey.principal_id, ApiKey.expires_at, Principal.name)
                .join(Principal)
                .where(
                    Principal.name.in_(sorted(holders(current, admin))),
                    Principal.disabled.is_(False),
                    ApiKey.revoked_at.is_(None),
                )
            ).all()
            if k.expires_at is None or k.expires_at > now
        ]
        if not live:
            return  # nobody to protect: the deployment is already without an admin
        admins_after = holders(rules, admin) if rules is not None else {k.name for k in live}
        if not any(
            k.id != losing_key and k.principal_id != losing_principal and k.name in admins_after
            for k in live
        ):
            raise LastAdmin(
                "no admin would keep a live key: the change would lock every admin out; "
                "enrol another admin first"
            )

    def lookup(self, session: Session, hashed: str) -> tuple[Principal, ApiKey] | None:
        """The live principal and key for a token hash, or None (unknown, revoked, expired,
        disabled: the caller must not tell these apart)."""
        row = session.execute(
            select(Principal, ApiKey).join(ApiKey).where(ApiKey.token_hash == hashed)
        ).first()
        if row is None:
            return None
        principal, key = row
        if principal.disabled or key.revoked_at is not None:
            return None
        if key.expires_at is not None and key.expires_at <= utcnow():
            return None
        return principal, key


identity = IdentityService()
