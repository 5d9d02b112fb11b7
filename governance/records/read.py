"""What the records domain publishes for other domains to read: erasures and record counts.

Subjects appear only as their blind index; no payload leaves through here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from governance.records.models import ErasureReceipt, Record


@dataclass(frozen=True, slots=True)
class Erasure:
    id: str
    subject_ref: str
    erased_at: datetime
    erased_by: str
    dek_ids: list[str]
    records_affected: int
    audit_seq: int | None


def erasures_in_period(session: Session, start: datetime, end: datetime) -> list[Erasure]:
    """Erasure receipts issued in ``[start, end)``, oldest first."""
    return [
        Erasure(
            id=e.id,
            subject_ref=e.subject_ref,
            erased_at=e.erased_at,
            erased_by=e.erased_by,
            dek_ids=json.loads(e.dek_ids),
            records_affected=e.records_affected,
            audit_seq=e.audit_seq,
        )
        for e in session.scalars(
            select(ErasureReceipt)
            .where(ErasureReceipt.erased_at >= start, ErasureReceipt.erased_at < end)
            .order_by(ErasureReceipt.erased_at)
        )
    ]


def count_records(session: Session) -> int:
    """How many records are stored (erased ones included: their ciphertext stays)."""
    return int(session.scalar(select(func.count()).select_from(Record)) or 0)
