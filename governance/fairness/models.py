"""ORM rows of the fairness domain (tables made by migration 0006).

Threshold versions, audits and overrides are append-only evidence (database triggers refuse
UPDATE and DELETE). JSON columns hold aggregates only: metrics per group, disparities, diffs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base, utcnow

DATASET = "dataset"
LIVE = "live"


class ThresholdVersion(Base):
    """One immutable version of the fairness thresholds (a ``policies/fairness.yaml`` document)."""

    __tablename__ = "fairness_threshold_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    author: Mapped[str] = mapped_column(String(64))
    author_principal_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    document: Mapped[str] = mapped_column(Text)  # canonical JSON
    diff: Mapped[str] = mapped_column(Text)  # JSON: {"added", "removed", "changed"}


class FairnessAudit(Base):
    """An audit result: of a dataset's evaluation split (gates promotion) or of live traffic."""

    __tablename__ = "fairness_audits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(8))
    model: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[str | None] = mapped_column(String(64))
    artifact_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    dataset: Mapped[str | None] = mapped_column(String(64))
    dataset_hash: Mapped[str | None] = mapped_column(String(64))
    split: Mapped[str | None] = mapped_column(String(16))
    window_start: Mapped[datetime | None] = mapped_column()
    window_end: Mapped[datetime | None] = mapped_column()
    sensitive: Mapped[str] = mapped_column(Text)  # JSON list of feature names
    n_rows: Mapped[int] = mapped_column(BigInteger)
    engine: Mapped[str] = mapped_column(String(16))
    bootstrap: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    thresholds_version: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    verdict: Mapped[str] = mapped_column(Text)  # GateVerdict.to_dict() as JSON
    result: Mapped[str] = mapped_column(Text)  # FairnessResult.to_dict() as JSON
    audited_by: Mapped[str] = mapped_column(String(64))


class GateOverride(Base):
    """A compliance officer's written approval of a version that does not pass the gate."""

    __tablename__ = "fairness_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    artifact_sha256: Mapped[str] = mapped_column(String(64), index=True)
    audit_id: Mapped[int | None] = mapped_column(Integer)
    thresholds_version: Mapped[int] = mapped_column(Integer)
    failures: Mapped[str] = mapped_column(Text)  # JSON: what was overridden
    justification: Mapped[str] = mapped_column(Text)
    approved_by: Mapped[str] = mapped_column(String(64))
    approved_by_principal_id: Mapped[int | None] = mapped_column(Integer)


class Outcome(Base):
    """A served prediction joined with its true outcome, for live monitoring.

    No request id, record id or subject is stored: ``ref`` is a keyed digest that only
    prevents a second outcome for the same prediction.
    """

    __tablename__ = "fairness_outcomes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    predicted_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    y_pred: Mapped[int] = mapped_column(SmallInteger)
    y_true: Mapped[int] = mapped_column(SmallInteger)
    group_key: Mapped[str] = mapped_column(Text)
    submitted_by: Mapped[str] = mapped_column(String(64))
