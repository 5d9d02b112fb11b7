"""Change counters that let every server process notice policy, identity and model changes.

Each process polls this small table (a single indexed read) and, when a counter moved, rebuilds
what depends on it. A writer bumps the counter in the same transaction as the change, so a
process can never see the counter before the change itself. On PostgreSQL the bump also sends a
notification, delivered at commit, that wakes the other processes' polls at once
(:mod:`governance.db.notify`); the poll period is then only the bound when notifications fail.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, String, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from governance.db.base import Base

POLICY = "policy"
IDENTITY = "identity"
MODELS = "models"
THRESHOLDS = "thresholds"
# Data keys erased or rotated: each process drops the cached keys that are no longer active,
# rather than finding out when a record sealed under one is refused (migration 0010).
DATA_KEYS = "data_keys"
# The PostgreSQL notification channel of counter bumps (payload: the counter's name).
CHANNEL = "warden_state"


class StateCounter(Base):
    __tablename__ = "state_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


def bump(session: Session, name: str) -> None:
    """Advance a counter inside the caller's transaction (and notify listeners at its commit)."""
    session.execute(
        update(StateCounter).where(StateCounter.name == name).values(value=StateCounter.value + 1)
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, name)))


def read_all(session: Session) -> dict[str, int]:
    """Every counter's current value."""
    return {row.name: row.value for row in session.scalars(select(StateCounter))}
