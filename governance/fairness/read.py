"""What the fairness domain publishes for other domains to read: thresholds, audits, overrides.

Stored JSON columns come back parsed; nothing here changes a row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.fairness.models import FairnessAudit, GateOverride, ThresholdVersion


@dataclass(frozen=True, slots=True)
class ThresholdsVersion:
    version: int
    created_at: datetime
    author: str
    reason: str
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredAudit:
    id: int
    created_at: datetime
    kind: str
    model: str
    model_version: str | None
    artifact_sha256: str | None
    dataset: str | None
    n_rows: int
    bootstrap: int
    thresholds_version: int
    passed: bool
    audited_by: str
    verdict: dict[str, Any]
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredOverride:
    id: int
    created_at: datetime
    model: str
    model_version: str
    artifact_sha256: str
    audit_id: int | None
    thresholds_version: int
    approved_by: str
    justification: str
    failures: Any


def threshold_versions(session: Session) -> list[ThresholdsVersion]:
    """Every version of the fairness thresholds, oldest first."""
    return [
        ThresholdsVersion(
            version=t.version,
            created_at=t.created_at,
            author=t.author,
            reason=t.reason,
            document=json.loads(t.document),
        )
        for t in session.scalars(select(ThresholdVersion).order_by(ThresholdVersion.version))
    ]


def audits_in_period(
    session: Session, start: datetime, end: datetime, *, model: str | None = None
) -> list[StoredAudit]:
    """Audits stored in ``[start, end)`` (of one model if given), in the order they were made."""
    query = select(FairnessAudit).where(
        FairnessAudit.created_at >= start, FairnessAudit.created_at < end
    )
    if model is not None:
        query = query.where(FairnessAudit.model == model)
    return [
        StoredAudit(
            id=a.id,
            created_at=a.created_at,
            kind=a.kind,
            model=a.model,
            model_version=a.model_version,
            artifact_sha256=a.artifact_sha256,
            dataset=a.dataset,
            n_rows=a.n_rows,
            bootstrap=a.bootstrap,
            thresholds_version=a.thresholds_version,
            passed=a.passed,
            audited_by=a.audited_by,
            verdict=json.loads(a.verdict),
            result=json.loads(a.result),
        )
        for a in session.scalars(query.order_by(FairnessAudit.id))
    ]


def overrides_in_period(
    session: Session, start: datetime, end: datetime, *, model: str | None = None
) -> list[StoredOverride]:
    """Gate overrides approved in ``[start, end)`` (of one model if given), oldest first."""
    query = select(GateOverride).where(
        GateOverride.created_at >= start, GateOverride.created_at < end
    )
    if model is not None:
        query = query.where(GateOverride.model == model)
    return [
        StoredOverride(
            id=o.id,
            created_at=o.created_at,
            model=o.model,
            model_version=o.model_version,
            artifact_sha256=o.artifact_sha256,
            audit_id=o.audit_id,
            thresholds_version=o.thresholds_version,
            approved_by=o.approved_by,
            justification=o.justification,
            failures=json.loads(o.failures),
        )
        for o in session.scalars(query.order_by(GateOverride.id))
    ]
