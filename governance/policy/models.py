"""Policy tables: immutable versions, policy test cases and change proposals.

A version row is never updated (append-only trigger): a change inserts a new version. Test cases
are a working set that compliance officers edit (every edit is audited). A proposal moves once
from ``pending`` to ``applied``, ``rejected`` or ``withdrawn``; the decision is audited.
"""

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


class PolicyTestCase(Base):
    """An expected decision that every future policy version must keep."""

    __tablename__ = "policy_tests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(128))
    object: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    expected: Mapped[str] = mapped_column(String(8))  # allow, deny
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))


class PolicyProposal(Base):
    """A change waiting for a second compliance officer (separation of duties)."""

    __tablename__ = "policy_proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    author: Mapped[str] = mapped_column(String(64))
    author_principal_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # change, rollback
    # Canonical JSON: {"add": [...], "remove": [...]} for a change, {"to_version": n} otherwise.
    changes: Mapped[str] = mapped_column(Text)
    base_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_reason: Mapped[str | None] = mapped_column(Text)
    applied_version: Mapped[int | None] = mapped_column(Integer)
