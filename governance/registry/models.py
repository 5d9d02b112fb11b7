"""Registered model versions and their lifecycle stage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base, utcnow

REGISTERED = "registered"
SERVING = "serving"
RETIRED = "retired"
STAGES = (REGISTERED, SERVING, RETIRED)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16), default=REGISTERED)
    artifact_dir: Mapped[str] = mapped_column(Text)
    # sha256 of manifest.json: the manifest pins every other file's hash, so this names the
    # exact artifact (what fairness audits and approvals are bound to).
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[str] = mapped_column(Text)
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    trained_by: Mapped[str | None] = mapped_column(String(64))
    stage_changed_by: Mapped[str | None] = mapped_column(String(64))
    stage_changed_at: Mapped[datetime | None] = mapped_column()
