"""Which audit entry anchors a fairness thresholds version, and whether the row matches it."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.orm import Session

from governance.audit.anchors import (
    ANCHOR_EVENT,
    Anchor,
    content_hash,
    latest_about,
    unanchored,
)
from governance.fairness.models import ThresholdVersion

KIND = "fairness_thresholds"
EVENT_TYPES = ("fairness.thresholds", ANCHOR_EVENT)


def resource(version: int) -> dict[str, Any]:
    """The audit resource of every entry about a thresholds version."""
    return {"fairness_thresholds": version}


def version_hash(*, version: int, document: str) -> str:
    """The content hash of a version: its number and the digest of its stored document."""
    return content_hash(
        KIND, {"version": version, "document": hashlib.sha256(document.encode()).hexdigest()}
    )


def row_hash(row: ThresholdVersion) -> str:
    return version_hash(version=row.version, document=row.document)


def latest(session: Session, row: ThresholdVersion) -> Anchor | None:
    """The latest audit entry about this version."""
    return latest_about(
        session,
        event_types=EVENT_TYPES,
        labels=[f"fairness_thresholds={row.version}"],
        about=lambda res: res.get("fairness_thresholds") == row.version,
    )


def problem(session: Session, row: ThresholdVersion) -> str | None:
    """Why this stored version may not be used, or None when the log anchors it."""
    what = f"fairness thresholds version {row.version}"
    return unanchored(latest(session, row), row_hash(row), what)


def legacy_match(found: Anchor, row: ThresholdVersion) -> bool:
    """Whether an entry written before content hashes records this version."""
    return found.event_type == "fairness.thresholds" and found.details.get("version") == row.version
