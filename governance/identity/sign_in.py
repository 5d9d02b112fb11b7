"""Personal sign-in: a person's password and TOTP, and the server-side sessions they open.

A session id and its CSRF token are 256 random bits each, handed to the browser once and stored
only as SHA-256 (like API keys: nothing to brute-force, so no slow hash is needed). A session
ends when it is signed out or revoked, after ``idle`` without a request, or ``lifetime`` after
sign-in, whichever comes first. Stateless; never commits; times come from the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.identity import passwords, second_factor
from governance.identity import sign_in_anchor as anchor
from governance.identity.errors import (
    SessionNotFound,
    SignInFailed,
    SignInRefused,
)
from governance.identity.models import Credential, Principal, SignInSession
from governance.identity.second_factor import TotpEnrolment
from governance.kit.context import Context
from governance.kit.events import Actor
from governance.vault.providers import KeyProvider, WrappedKey

logger = logging.getLogger(__name__)

# Roles whose holders sign in with a second factor: they change or read what others answer to.
SECOND_FACTOR_ROLES = frozenset({"admin", "compliance_officer", "auditor"})
SESSION_PREFIX = "wss_"
# A request refreshes its session's idle clock at most this often: one write per half minute.
_TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta
    absolute: timedelta


DEFAULT_LIFETIMES = Lifetimes(idle=timedelta(minutes=15), absolute=timedelta(hours=8))


@dataclass(frozen=True)
class Opened:
    """A new session: its row, and the id and CSRF token the person receives once."""

    row: SignInSession
    session_id: str
    csrf_token: str


@dataclass(frozen=True)
class Resolved:
    """A live session as a request sees it."""

    session_row_id: int
    principal_id: int
    name: str
    csrf_hash: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def well_formed_session(value: str) -> bool:
    body = value.removeprefix(SESSION_PREFIX)
    return value.startswith(SESSION_PREFIX) and len(body) == 43 and body.isascii()


def csrf_matches(token: str | None, csrf_hash: str) -> bool:
    return token is not None and hmac.compare_digest(digest(token), csrf_hash)


def needs_second_factor(roles: tuple[str, ...] | list[str]) -> bool:
    """Whether the policy's roles (``role:<name>``, as Casbin names them) need a TOTP code."""
    return any(role.removeprefix("role:") in SECOND_FACTOR_ROLES for role in roles)


def _as_person(ctx: Context, person: Principal, method: str) -> Context:
    return Context(
        actor=Actor(principal_id=person.id, name=person.name, roles=(), auth_method=method),
        source=ctx.source,
        request_id=ctx.request_id,
        policy_version=ctx.policy_version,
    )


def set_password(
    session: Session,
    ctx: Context,
    person: Principal,
    password: str,
    *,
    keys: KeyProvider,
    second_factor_needed: bool,
    now: datetime,
) -> TotpEnrolment | None:
    """Set (or replace) a person's password; enrol a fresh TOTP secret where their roles need one.

    Every open session of theirs ends: a new password is often a response to a stolen one.

    Returns:
        The TOTP enrolment to show once, or None where no second factor is needed.

    Raises:
        SignInRefused: a service principal (services authenticate with keys only).
        WeakPassword: the password breaks the rule (passwords.check_rule).
    """
    if person.kind != "user":
        raise SignInRefused(f"{person.name!r} is a service: services use API keys, not passwords")
    passwords.check_rule(person.name, password)
    row = session.get(Credential, person.id)
    if row is None:
        row = Credential(principal_id=person.id, password_hash="")
        session.add(row)
    row.password_hash = passwords.hash_password(password)
    row.set_at = now
    enrolled: TotpEnrolment | None = None
    if second_factor_needed:
        secret = second_factor.new_secret()
        wrapped = second_factor.seal(keys, person.id, secret)
        row.totp_kek_id, row.totp_blob, row.totp_last_step = wrapped.kek_id, wrapped.blob, None
        enrolled = second_factor.enrolment(person.name, secret)
    else:
        row.totp_kek_id, row.totp_blob, row.totp_last_step = None, None, None
    # The person themselves with their key or session, or redeeming their enrolment code.
    method = ctx.actor.auth_method if ctx.actor.principal_id == person.id else "enrolment"
    as_person = _as_person(ctx, person, method)
    # One entry per ended session: its latest entry then names no content, so a session
    # "un-ended" by hand stays refused (sign_in_anchor).
    ended = list(
        session.scalars(
            select(SignInSession).where(
                SignInSession.principal_id == person.id,
                SignInSession.ended_at.is_(None),
                SignInSession.expires_at > now,
            )
        )
    )
    for open_row in ended:
        open_row.ended_at = now
    session.flush()
    audit_log.append(
        session,
        [
            as_person.event(
                "principal.credentials",
                "set",
                resource=anchor.credential_resource(person.id, person.name),
                details={
                    "second_factor": enrolled is not None,
                    "content_hash": anchor.credential_hash(row),
                },
            ),
            *(
                as_person.event(
                    "principal.session",
                    "end",
                    resource=anchor.session_resource(r.id),
                    details={"why": "password set"},
                )
                for r in ended
            ),
        ],
    )
    return enrolled


def sign_in(
    session: Session,
    ctx: Context,
    *,
    name: str,
    password: str,
    code: str | None,
    roles: tuple[str, ...],
    keys: KeyProvider,
    now: datetime,
    lifetimes: Lifetimes,
) -> Opened:
    """Check a person's password (and TOTP code where their roles need one); open a session.

    Raises:
        SignInFailed: unknown name, wrong password or code, a replayed code, no password set,
            a disabled person: one answer for all, so that nothing says which was wrong.
        SignInRefused: a service principal, or a person whose roles now need a second factor
            they have not enrolled (they set their password again with their key).
    """
    person = session.scalar(select(Principal).where(Principal.name == name))
    cred = session.get(Credential, person.id, with_for_update=True) if person else None
    if not passwords.verify(cred.password_hash if cred else None, password):
        raise SignInFailed()
    assert person is not None and cred is not None
    if (problem := anchor.credential_problem(session, cred, person.name)) is not None:
        logger.warning("sign-in refused: %s", problem)
        raise SignInFailed()
    if person.disabled:
        raise SignInFailed()
    if person.kind != "user":
        raise SignInRefused(f"{name!r} is a service: services use API keys, not sessions")
    if needs_second_factor(roles) or cred.totp_blob is not None:
        if cred.totp_blob is None or cred.totp_kek_id is None:
            raise SignInRefused(
                "your roles need a second factor: set your password again with your key "
                "(PUT /v1/me/password) to enrol one"
            )
        secret = second_factor.unseal(keys, person.id, WrappedKey(cred.totp_kek_id, cred.totp_blob))
        step = second_factor.accepted_step(secret, code or "", now, cred.totp_last_step)
        if step is None:
            raise SignInFailed()
        cred.totp_last_step = step
    return open_session(
        session,
        ctx,
        person,
        method="password",
        details={"second_factor": cred.totp_blob is not None},
        now=now,
        lifetimes=lifetimes,
    )


def open_session(
    session: Session,
    ctx: Context,
    person: Principal,
    *,
    method: str,
    details: dict[str, Any],
    now: datetime,
    lifetimes: Lifetimes,
) -> Opened:
    """Open a session for a person whose sign-in was checked (``method`` says how); audited."""
    session_id = SESSION_PREFIX + secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    row = SignInSession(
        session_hash=digest(session_id),
        csrf_hash=digest(csrf_token),
        principal_id=person.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetimes.absolute,
        source_ip=(ctx.source.ip or None),
    )
    session.add(row)
    session.flush()
    audit_log.append(
        session,
        [
            _as_person(ctx, person, method).event(
                "principal.session",
                "create",
                resource=anchor.session_resource(row.id),
                details={
                    "principal": person.name,
                    **details,
                    "content_hash": anchor.session_hash(row),
                },
            )
        ],
    )
    return Opened(row, session_id, csrf_token)


def resolve(
    session: Session, session_id: str, *, now: datetime, lifetimes: Lifetimes
) -> Resolved | None:
    """The live session ``session_id`` names, its idle clock refreshed; None if it has ended."""
    if not well_formed_session(session_id):
        return None
    found = session.execute(
        select(SignInSession, Principal)
        .join(Principal, Principal.id == SignInSession.principal_id)
        .where(SignInSession.session_hash == digest(session_id))
    ).first()
    if found is None:
        return None
    row, person = found
    if (
        row.ended_at is not None
        or person.disabled
        or now >= row.expires_at
        or now >= row.last_seen_at + lifetimes.idle
    ):
        return None
    if (problem := anchor.session_problem(session, row)) is not None:
        logger.warning("session refused: %s", problem)
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
        session.flush()
    return Resolved(row.id, person.id, person.name, row.csrf_hash)


def live(
    session: Session, principal_id: int, *, now: datetime, lifetimes: Lifetimes
) -> list[SignInSession]:
    """A person's sessions that have not ended, newest first."""
    rows = session.scalars(
        select(SignInSession)
        .where(SignInSession.principal_id == principal_id, SignInSession.ended_at.is_(None))
        .order_by(SignInSession.id.desc())
    )
    return [r for r in rows if now < r.expires_at and now < r.last_seen_at + lifetimes.idle]


def end(
    session: Session,
    ctx: Context,
    principal_id: int,
    session_row_id: int,
    *,
    now: datetime,
    action: str,
) -> SignInSession:
    """End one of a person's own sessions (sign-out or revocation).

    Raises:
        SessionNotFound: no such session of theirs still open (another's reads the same).
    """
    row = session.get(SignInSession, session_row_id, with_for_update=True)
    if row is None or row.principal_id != principal_id or row.ended_at is not None:
        raise SessionNotFound(f"no open session {session_row_id} of yours")
    row.ended_at = now
    session.flush()
    audit_log.append(
        session,
        [ctx.event("principal.session", action, resource=anchor.session_resource(row.id))],
    )
    return row
