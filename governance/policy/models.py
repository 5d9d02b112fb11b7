"""Policy versions. Each row is immutable: a change inserts a new version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base, utcnow


class PolicyVersion(Base):
    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    parent: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    author: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # seed, change, rollback
    # The full rule set as canonical JSON, and its sha256: a version is self-contained.
    rules: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    diff: Mapped[str] = mapped_column(Text)
