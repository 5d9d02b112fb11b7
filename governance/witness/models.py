"""The table of witness cosignatures, one row per checkpoint and witness key (migration 0011).

Checkpoint notes are append-only and signed once; cosignatures arrive later and are stored
beside them, to be appended to the note when it is read back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base


class AuditCosignature(Base):
    __tablename__ = "audit_cosignatures"

    tree_size: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("audit_checkpoints.tree_size"), primary_key=True
    )
    witness: Mapped[str] = mapped_column(String(255), primary_key=True)
    key_id: Mapped[bytes] = mapped_column(LargeBinary(4), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column()
