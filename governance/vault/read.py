"""What the vault publishes for other domains to read: data key counts and KEK rotations.

Metadata only: no key material, wrapped or not, leaves through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from governance.vault.models import DataKey, KeyRotation


@dataclass(frozen=True, slots=True)
class DataKeyCounts:
    by_state: dict[str, int]
    max_version: int
    kek_ids: list[str]


@dataclass(frozen=True, slots=True)
class Rotation:
    id: int
    kind: str
    rotated_at: datetime
    rotated_by: str
    reason: str
    from_kek: str | None
    to_kek: str | None
    keys_affected: int


def data_key_counts(session: Session) -> DataKeyCounts:
    """Data keys by state, the highest key version, and the KEKs that wrap them (sorted)."""
    by_state = {
        str(state): int(count)
        for state, count in session.execute(
            select(DataKey.state, func.count()).group_by(DataKey.state)
        )
    }
    max_version = session.scalar(select(func.max(DataKey.version))) or 0
    keks = sorted(k for k in session.scalars(select(DataKey.kek_id).distinct()) if k is not None)
    return DataKeyCounts(by_state=by_state, max_version=int(max_version), kek_ids=keks)


def rotations_in_period(session: Session, start: datetime, end: datetime) -> list[Rotation]:
    """Rotations done in ``[start, end)``, in order."""
    return [
        Rotation(
            id=r.id,
            kind=r.kind,
            rotated_at=r.rotated_at,
            rotated_by=r.rotated_by,
            reason=r.reason,
            from_kek=r.from_kek,
            to_kek=r.to_kek,
            keys_affected=r.keys_affected,
        )
        for r in session.scalars(
            select(KeyRotation)
            .where(KeyRotation.rotated_at >= start, KeyRotation.rotated_at < end)
            .order_by(KeyRotation.id)
        )
    ]
