"""ORM rows of the vault: wrapped data keys (DEKs) and the history of key rotations.

The tables are created by migration 0003 only; 0010 allows one active key per subject, 0012
binds wrapped keys to their subject and adds the lease of scheduled vault jobs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, text
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
    A subject has at most one ``active`` key: replicas racing its first use converge on one.
    """

    __tablename__ = "data_keys"
    __table_args__ = (
        Index(
            "uq_data_keys_one_active",
            "subject_ref",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)
    # Whose subject ids the key's subject is one of: "client:<principal>" or
    # "shared:<namespace>" (migration 0010); NULL for keys made before subjects were scoped.
    scope: Mapped[str | None] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), index=True)
    kek_id: Mapped[str | None] = mapped_column(String(32), index=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    # What the wrap's associated data binds (governance/vault/envelope.py): 1 the id only
    # (keys made before migration 0012), 2 the id, subject reference and version.
    wrap_format: Mapped[int] = mapped_column(Integer, default=2)
    # Seals reserved by server processes (governance/records/recorder.py), counted here so
    # that no process can seal past the limit on another's stale count.
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


class VaultLease(Base):
    """Who runs a scheduled vault job (the KEK rotation) until when: one server among replicas."""

    __tablename__ = "vault_leases"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime] = mapped_column()
