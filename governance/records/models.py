"""ORM rows of stored records and erasure receipts (migration 0003), and of the scrubs that
follow erasures (migration 0012)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base, utcnow
from governance.vault.record_format import RecordFields


class Record(Base):
    """One governed predict call: request and response sealed together in ``blob``.

    ``blob`` follows :mod:`governance.vault.record_format`; its associated data binds ``id``,
    ``subject_ref``, ``model``, ``model_version``, ``principal``, ``request_id``, ``dek_id``
    and ``dek_version`` (format 2), so changing any of them, or copying the blob to another
    row, makes it fail to open. ``audit_seq`` is bound through the log (the entry there
    carries ``request_id``).
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

    def sealed_fields(self) -> RecordFields:
        """What the blob must be bound to, as this row says now."""
        return RecordFields(
            record_id=self.id,
            subject_ref=self.subject_ref,
            model=self.model,
            model_version=self.model_version,
            principal=self.principal,
            request_id=self.request_id,
            dek_id=self.dek_id,
            dek_version=int(self.dek_version),
        )


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


SCRUB_DONE = "done"
SCRUB_PENDING = "pending"
SCRUB_RESIDUAL = "residual"


class ErasureScrub(Base):
    """Where the destroyed keys' bytes of one erasure stand (receipts themselves are append-only).

    ``done``: they left the database files at ``removed_at`` (SQLite, after a truncating WAL
    checkpoint succeeded). ``pending``: a reader kept the checkpoint busy; it is retried.
    ``residual``: the database keeps old row versions it does not let us erase (PostgreSQL,
    until VACUUM reuses their space). Either way copies in backups, and any left behind, stop
    opening once the KEK is retired, due by ``kek_retire_by``.
    """

    __tablename__ = "erasure_scrubs"

    receipt_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("erasure_receipts.id"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_try_at: Mapped[datetime | None] = mapped_column()
    removed_at: Mapped[datetime | None] = mapped_column()
    kek_retire_by: Mapped[datetime | None] = mapped_column()
