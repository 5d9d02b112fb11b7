"""What the policy domain publishes for other domains to read: the versions of the policy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.policy.models import PolicyVersion
from governance.policy.rules import Rule, load_rules


@dataclass(frozen=True, slots=True)
class PolicyInForce:
    version: int
    sha256: str
    created_at: datetime
    rules: list[Rule]


@dataclass(frozen=True, slots=True)
class PolicyVersionChange:
    version: int
    created_at: datetime
    kind: str
    author: str
    approved_by: str | None
    reason: str
    added: list[Any]
    removed: list[Any]


def version_in_force(session: Session, before: datetime) -> PolicyInForce | None:
    """The newest policy version created before ``before`` (None before the first one)."""
    row = session.scalar(
        select(PolicyVersion)
        .where(PolicyVersion.created_at < before)
        .order_by(PolicyVersion.version.desc())
        .limit(1)
    )
    if row is None:
        return None
    return PolicyInForce(
        version=row.version,
        sha256=row.sha256,
        created_at=row.created_at,
        rules=load_rules(row.rules),
    )


def versions_in_period(
    session: Session, start: datetime, end: datetime
) -> list[PolicyVersionChange]:
    """Policy versions created in ``[start, end)`` with what each added and removed, in order."""
    out = []
    for v in session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.created_at >= start, PolicyVersion.created_at < end)
        .order_by(PolicyVersion.version)
    ):
        diff = json.loads(v.diff)
        out.append(
            PolicyVersionChange(
                version=v.version,
                created_at=v.created_at,
                kind=v.kind,
                author=v.author,
                approved_by=v.approved_by,
                reason=v.reason,
                added=diff.get("added", []),
                removed=diff.get("removed", []),
            )
        )
    return out
