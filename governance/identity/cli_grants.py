"""Command-line sign-in through the browser: a one-time code bound to the CLI's challenge.

The CLI makes a random verifier V and sends the person's browser to the console with
C = base64url(SHA-256(V)). The signed-in person allows it; the console shows a one-time code G
bound to C and to them. The CLI then sends G with V: a code read off the screen (or a phishing
page that relayed someone's challenge) opens nothing without the verifier that only the CLI
which started the flow holds. G lives five minutes, is stored only as SHA-256, and is used up by
its first redemption, right or wrong. Each grant is anchored to its audit entry, so a row
written into the database by hand opens no session. Stateless; never commits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.audit.anchors import content_hash, latest_about, unanchored
from governance.audit.log import resource_label
from governance.db.base import as_utc
from governance.identity.models import CliGrant, Principal
from governance.identity.sign_in import digest
from governance.identity.sign_in_anchor import SESSION_EVENTS
from governance.kit.context import Context

logger = logging.getLogger(__name__)

# Long enough to switch windows and paste, short enough that a code left on screen goes stale.
GRANT_TTL = timedelta(minutes=5)
# Used and expired grants are deleted this long after they expire.
_KEEP = timedelta(days=1)
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


def challenge_of(verifier: str) -> str:
    """base64url(SHA-256(verifier)) without padding: PKCE's S256 (RFC 7636 4.2)."""
    raw = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def well_formed_challenge(value: str) -> bool:
    return _CHALLENGE.fullmatch(value) is not None


def _hash(row: CliGrant) -> str:
    return content_hash(
        "cli_grant",
        {
            "id": row.id,
            "code_hash": row.code_hash,
            "challenge": row.challenge,
            "principal_id": row.principal_id,
            "expires_at": as_utc(row.expires_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    )


def _resource(row_id: int) -> dict[str, Any]:
    return {"cli_grant": row_id}


def _problem(session: Session, row: CliGrant) -> str | None:
    label = resource_label(_resource(row.id))
    found = latest_about(
        session,
        event_types=SESSION_EVENTS,
        labels=[label] if label else [],
        about=lambda res: res.get("cli_grant") == row.id,
    )
    return unanchored(found, _hash(row), f"command-line grant {row.id}")


def create(session: Session, ctx: Context, *, challenge: str, now: datetime) -> str:
    """Grant the caller's command line a session: the one-time code to show them once.

    Raises:
        ValueError: ``challenge`` is not 43 base64url characters (callers check first).
    """
    if not well_formed_challenge(challenge):
        raise ValueError("malformed challenge")
    assert ctx.actor.principal_id is not None
    session.execute(delete(CliGrant).where(CliGrant.expires_at < now - _KEEP))
    code = secrets.token_urlsafe(32)
    row = CliGrant(
        code_hash=digest(code),
        challenge=challenge,
        principal_id=ctx.actor.principal_id,
        created_at=now,
        expires_at=now + GRANT_TTL,
    )
    session.add(row)
    session.flush()
    audit_log.append(
        session,
        [
            ctx.event(
                "principal.session",
                "cli-grant",
                resource=_resource(row.id),
                details={"content_hash": _hash(row)},
            )
        ],
    )
    return code


def redeem(session: Session, *, code: str, verifier: str, now: datetime) -> Principal | None:
    """Use up the grant ``code`` names; the person it signs in, or None if it may not.

    Any attempt on a known code uses it up, right verifier or wrong: whoever guessed wrong may
    be racing the person's own CLI, which then simply starts again. None rather than an error,
    so that the caller's transaction keeps the code used (and answers one 401 for every cause:
    unknown, used, expired, another verifier, a grant the audit log does not vouch for, or a
    disabled person).
    """
    row = session.scalar(
        select(CliGrant).where(CliGrant.code_hash == digest(code)).with_for_update()
    )
    if row is None or row.used_at is not None:
        return None
    row.used_at = now
    session.flush()
    if now >= as_utc(row.expires_at) or not hmac.compare_digest(
        row.challenge, challenge_of(verifier)
    ):
        return None
    if (problem := _problem(session, row)) is not None:
        logger.warning("command-line sign-in refused: %s", problem)
        return None
    person = session.get(Principal, row.principal_id)
    if person is None or person.disabled or person.kind != "user":
        return None
    return person
