"""What an erasure receipt says: the keys destroyed, where their bytes stand, and until when
copies left elsewhere (backups, old row versions) can still be unwrapped."""

from __future__ import annotations

import json
from datetime import datetime

from governance.records.models import SCRUB_PENDING, SCRUB_RESIDUAL, ErasureReceipt, ErasureScrub
from governance.records.schemas import ErasureReceiptOut, KeyBytesOut

__all__ = ["receipt_out", "residual_exposure"]


def residual_exposure(
    scrub: ErasureScrub | None, *, dialect: str, retire_by: datetime | None
) -> list[str]:
    """Where copies of an erasure's destroyed keys may still be, in sentences for the receipt."""
    until = (
        f"the current KEK is due to be retired by {retire_by.isoformat()}"
        if retire_by is not None
        else "the KEK that wrapped them is rotated and retired (no date: the key provider "
        "does not say when its KEK was made)"
    )
    lines = [
        "Database backups taken before the erasure hold the destroyed keys, wrapped by a KEK; "
        f"they can be unwrapped until {until}, and never after."
    ]
    status = scrub.status if scrub is not None else None
    if status == SCRUB_PENDING:
        lines.append(
            "A reader kept SQLite's write-ahead log busy: the wrapped keys' old page images "
            "are still in the database files. The checkpoint is retried with backoff; "
            "key_bytes.removed_at is set when it succeeds."
        )
    elif status == SCRUB_RESIDUAL or (status is None and dialect != "sqlite"):
        lines.append(
            "PostgreSQL keeps old row versions, with the wrapped keys, until VACUUM reuses "
            f"their space; they stop opening when {until}."
        )
    return lines


def receipt_out(
    row: ErasureReceipt, scrub: ErasureScrub | None, *, dialect: str
) -> ErasureReceiptOut:
    """A receipt with where its keys' bytes stand (``scrub``: None for receipts made before
    scrubs were tracked)."""
    retire_by = scrub.kek_retire_by if scrub is not None else None
    return ErasureReceiptOut(
        receipt_id=row.id,
        subject_ref=row.subject_ref,
        erased_at=row.erased_at,
        erased_by=row.erased_by,
        dek_ids=json.loads(row.dek_ids),
        records_affected=row.records_affected,
        audit_seq=row.audit_seq,
        key_bytes=KeyBytesOut(
            status=scrub.status if scrub is not None else "unknown",  # type: ignore[arg-type]
            removed_at=scrub.removed_at if scrub is not None else None,
            attempts=scrub.attempts if scrub is not None else 0,
            last_try_at=scrub.last_try_at if scrub is not None else None,
        ),
        residual_exposure=residual_exposure(scrub, dialect=dialect, retire_by=retire_by),
        exposure_ends_by=retire_by,
    )
