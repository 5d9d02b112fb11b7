"""Every query on the shared counters (``rate_counters``): upserts, reads, a purge.

The upsert adds a process's count to a window's row and returns the row's new total in the
same statement (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, on PostgreSQL and on
SQLite), so concurrent processes each see a total that includes every other's committed counts.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from governance.limits.models import RateCounter


def add(session: Session, key: str, window_start: int, delta: int, expires: int) -> int:
    """Add ``delta`` to the window's count and return the total."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(RateCounter).values(
        key=key, window_start=window_start, count=delta, expires=expires
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[RateCounter.key, RateCounter.window_start],
        set_={"count": RateCounter.count + stmt.excluded.count},
    ).returning(RateCounter.count)
    total: int = session.execute(upsert).scalar_one()
    return total


def count(session: Session, key: str, window_start: int) -> int:
    """The window's total (0 if no process counted in it)."""
    found = session.scalar(
        select(RateCounter.count).where(
            RateCounter.key == key, RateCounter.window_start == window_start
        )
    )
    return int(found or 0)


def counts(
    session: Session, keys: list[str], window_starts: tuple[int, ...]
) -> dict[tuple[str, int], int]:
    """The totals of many keys in some windows, in one query per 500 keys."""
    found: dict[tuple[str, int], int] = {}
    for at in range(0, len(keys), 500):
        rows = session.execute(
            select(RateCounter.key, RateCounter.window_start, RateCounter.count).where(
                RateCounter.key.in_(keys[at : at + 500]),
                RateCounter.window_start.in_(window_starts),
            )
        )
        for key, start, total in rows:
            found[(key, start)] = int(total)
    return found


def purge(session: Session, now: int) -> None:
    """Delete the rows no process reads any more."""
    session.execute(delete(RateCounter).where(RateCounter.expires < now))
