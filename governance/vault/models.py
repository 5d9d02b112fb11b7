"""ORM rows of the vault: wrapped data keys (DEKs) and the history of key rotations.

The tables are created by migration 0003 only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base, utcnow

ACTIVE = "active"
DECRYPT_ONLY = "decrypt_only"
DESTROYED = "destroyed"
DEK_STATES = (ACTIVE, DECRYPT_ONLY, DESTROYED)


class DataKey(Base):
    """A data subject's data key, stored only wrapped by a KEK.

    ``active`` keys seal new records, ``decrypt_only`` keys (rotated) only open old ones, and
    ``destroyed`` keys have no wrapped copy left: their records are unreadable for good.
    """

    __tablename__ = "data_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), index=True)
    kek_id: Mapped[str | None] = mapped_column(String(32), index=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    uses: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))
    rotated_at: Mapped[datetime | None] = mapped_column()
    destroyed_at: Mapped[datetime | None] = mapped_column()
    destroyed_by: Mapped[str | None] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"DataKey(id={self.id!r}, version={self.version}, state={self.state!r})"


class KeyRotation(Base):
    """One rotation: of data keys (``dek``) or of the key-encryption key (``kek``)."""

    __tablename__ = "key_rotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    rotated_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200))
    from_kek: Mapped[str | None] = mapped_column(String(32))
    to_kek: Mapped[str | None] = mapped_column(String(32))
    keys_affected: Mapped[int] = mapped_column(BigInteger)
