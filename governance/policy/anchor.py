"""Which audit entry anchors a policy version, and whether the stored row still matches it.

Role grants are policy rules (``g`` rules), so anchoring the version anchors every grant in it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from governance.audit.anchors import (
    ANCHOR_EVENT,
    Anchor,
    content_hash,
    latest_about,
    unanchored,
)
from governance.policy.models import PolicyVersion
from governance.policy.rules import digest

KIND = "policy_version"
EVENT_TYPES = ("policy.change", ANCHOR_EVENT)


def resource(version: int) -> dict[str, Any]:
    """The audit resource of every entry about a policy version."""
    return {"policy_version": version}


def version_hash(*, version: int, parent: int | None, rules: str) -> str:
    """The content hash of a version: its number, its parent and the digest of its rules."""
    return content_hash(KIND, {"version": version, "parent": parent, "rules": digest(rules)})


def row_hash(row: PolicyVersion) -> str:
    return version_hash(version=row.version, parent=row.parent, rules=row.rules)


def latest(session: Session, row: PolicyVersion) -> Anchor | None:
    """The latest audit entry about this version."""
    return latest_about(
        session,
        event_types=EVENT_TYPES,
        labels=[f"policy_version={row.version}"],
        about=lambda res: res.get("policy_version") == row.version,
    )


def problem(session: Session, row: PolicyVersion) -> str | None:
    """Why this stored version may not be installed, or None when the log anchors it."""
    return unanchored(latest(session, row), row_hash(row), f"policy version {row.version}")


def legacy_match(found: Anchor, row: PolicyVersion) -> bool:
    """Whether an entry written before content hashes records exactly this version."""
    return (
        found.event_type == "policy.change"
        and found.details.get("sha256") == digest(row.rules)
        and found.details.get("parent") == row.parent
    )
