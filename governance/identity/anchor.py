"""Which audit entry anchors an API key, and whether the stored row still matches it.

The latest ``key.issue`` or ``key.revoke`` entry about a key decides: a key row inserted by
hand has none, and a revocation undone by hand leaves the revocation as the latest entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from governance.audit.anchors import (
    ANCHOR_EVENT,
    Anchor,
    content_hash,
    latest_about,
    unanchored,
)
from governance.db.base import as_utc
from governance.identity.models import ApiKey

KIND = "api_key"
EVENT_TYPES = ("key.issue", "key.revoke", ANCHOR_EVENT)


def key_hash(
    *, key_id: str, token_hash: str, principal_id: int, expires_at: datetime | None
) -> str:
    """The content hash of a key: whose it is, which token opens it, and until when."""
    expiry = as_utc(expires_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if expires_at else None
    return content_hash(
        KIND,
        {
            "key_id": key_id,
            "token_hash": token_hash,
            "principal_id": principal_id,
            "expires_at": expiry,
        },
    )


def row_hash(row: ApiKey) -> str:
    return key_hash(
        key_id=row.key_id,
        token_hash=row.token_hash,
        principal_id=row.principal_id,
        expires_at=row.expires_at,
    )


def resource(key_id: str) -> dict[str, Any]:
    """The audit resource of an anchoring entry about a key."""
    return {"key_id": key_id}


def latest(session: Session, row: ApiKey) -> Anchor | None:
    """The latest issue or revocation entry about this key."""
    return latest_about(
        session,
        event_types=EVENT_TYPES,
        contains=f"key_id={row.key_id}",
        about=lambda res: res.get("key_id") == row.key_id,
    )


def problem(session: Session, row: ApiKey) -> str | None:
    """Why this key may not authenticate, or None when the log anchors it."""
    return unanchored(latest(session, row), row_hash(row), f"API key {row.key_id}")


def legacy_match(found: Anchor, row: ApiKey) -> bool:
    """Whether an issue entry written before content hashes records this key's expiry."""
    if found.event_type != "key.issue":
        return False
    recorded = found.details.get("expires_at")
    if recorded is None or row.expires_at is None:
        return recorded is None and row.expires_at is None
    try:
        return isinstance(recorded, str) and as_utc(datetime.fromisoformat(recorded)) == as_utc(
            row.expires_at
        )
    except ValueError:
        return False
