"""Audit tables: entries, the stored Merkle nodes, signed checkpoints, and the log head.

Entries, nodes and checkpoints are append-only (triggers in migration 0002). The head row holds
the tree size; appenders lock it, which is what gives one gap-free sequence across processes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(index=True)
    event_type: Mapped[str] = mapped_column(String(48), index=True)
    action: Mapped[str] = mapped_column(String(48))
    actor: Mapped[str | None] = mapped_column(String(64), index=True)
    resource: Mapped[str | None] = mapped_column(String(160), index=True)
    decision: Mapped[str] = mapped_column(String(8), index=True)
    outcome: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # The exact canonical bytes that were hashed (UTF-8 JSON text).
    canonical: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditNode(Base):
    """A perfect, aligned Merkle subtree: level k, index i covers leaves [i*2^k, (i+1)*2^k)."""

    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column()
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(BigInteger)
