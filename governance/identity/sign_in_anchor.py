"""Which audit entries anchor a person's credential and sessions (see governance/audit/anchors).

A credential row or session row a database administrator inserted or edited by hand opens
nothing: the latest ``principal.credentials`` entry about a person names the content hash of
their password hash and sealed TOTP secret, and the latest ``principal.session`` entry about a
session names that of its id hash, owner and lifetime (a sign-out or revocation names none, so
a session "un-ended" by hand stays ended).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from governance.audit.anchors import content_hash, latest_about, unanchored
from governance.audit.log import resource_label
from governance.db.base import as_utc
from governance.identity.models import Credential, SignInSession

CREDENTIAL_EVENTS = ("principal.credentials",)
SESSION_EVENTS = ("principal.session",)


def _time(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def credential_hash(row: Credential) -> str:
    blob = hashlib.sha256(row.totp_blob).hexdigest() if row.totp_blob is not None else None
    return content_hash(
        "credential",
        {
            "principal_id": row.principal_id,
            "password_hash": row.password_hash,
            "totp_kek_id": row.totp_kek_id,
            "totp_blob_sha256": blob,
        },
    )


def session_hash(row: SignInSession) -> str:
    return content_hash(
        "sign_in_session",
        {
            "id": row.id,
            "session_hash": row.session_hash,
            "csrf_hash": row.csrf_hash,
            "principal_id": row.principal_id,
            "created_at": _time(row.created_at),
            "expires_at": _time(row.expires_at),
        },
    )


def credential_resource(principal_id: int, name: str) -> dict[str, Any]:
    return {"principal": name, "principal_id": principal_id}


def session_resource(row_id: int) -> dict[str, Any]:
    return {"session": row_id}


def _label(resource: dict[str, Any]) -> list[str]:
    label = resource_label(resource)
    return [label] if label else []


def credential_problem(session: Session, row: Credential, name: str) -> str | None:
    """Why this credential may not be used, or None when the log anchors it."""
    found = latest_about(
        session,
        event_types=CREDENTIAL_EVENTS,
        labels=_label(credential_resource(row.principal_id, name)),
        about=lambda res: res.get("principal_id") == row.principal_id,
    )
    return unanchored(
        found, credential_hash(row), f"the credential of principal {row.principal_id}"
    )


def session_problem(session: Session, row: SignInSession) -> str | None:
    """Why this session may not authenticate, or None when the log anchors it."""
    found = latest_about(
        session,
        event_types=SESSION_EVENTS,
        labels=_label(session_resource(row.id)),
        about=lambda res: res.get("session") == row.id,
    )
    return unanchored(found, session_hash(row), f"session {row.id}")
