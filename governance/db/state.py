"""Change counters that let every server process notice policy, identity and model changes.

Each process polls this small table (a single indexed read) and, when a counter moved, rebuilds
what depends on it. A writer bumps the counter in the same transaction as the change, so a
process can never see the counter before the change itself.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from governance.db.base import Base

POLICY = "policy"
IDENTITY = "identity"
MODELS = "models"
THRESHOLDS = "thresholds"


class StateCounter(Base):
    __tablename__ = "state_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


def bump(session: Session, name: str) -> None:
    """Advance a counter inside the caller's transaction."""
    session.execute(
        update(StateCounter).where(StateCounter.name == name).values(value=StateCounter.value + 1)
    )


def read_all(session: Session) -> dict[str, int]:
    """Every counter's current value."""
    return {row.name: row.value for row in session.scalars(select(StateCounter))}
