"""ORM rows of stored records and erasure receipts (tables made by migration 0003)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base, utcnow


class Record(Base):
    """One governed predict call: request and response sealed together in ``blob``.

    ``blob`` follows :mod:`governance.vault.record_format`; its associated data binds ``id``,
    ``subject_ref``, ``model_version``, ``dek_id`` and ``dek_version``, so changing any of them,
    or copying the blob to another row, makes it fail to open.
    """

    __tablename__ = "records"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    principal: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)
    dek_id: Mapped[str] = mapped_column(String(40), ForeignKey("data_keys.id"), index=True)
    dek_version: Mapped[int] = mapped_column(BigInteger)
    format_version: Mapped[int] = mapped_column(Integer)
    row_count: Mapped[int] = mapped_column(Integer)
    audit_seq: Mapped[int | None] = mapped_column(BigInteger)
    blob: Mapped[bytes] = mapped_column(LargeBinary)

    def __repr__(self) -> str:
        return f"Record(id={self.id!r}, model={self.model!r}, dek_id={self.dek_id!r})"


class ErasureReceipt(Base):
    """Evidence of an erasure: which keys were destroyed, when, by whom, how many records."""

    __tablename__ = "erasure_receipts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
    erased_by: Mapped[str] = mapped_column(String(64))
    dek_ids: Mapped[str] = mapped_column(Text)  # JSON list
    records_affected: Mapped[int] = mapped_column(BigInteger)
    audit_seq: Mapped[int | None] = mapped_column(BigInteger)
