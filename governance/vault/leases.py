"""A lease in the database: one server among replicas runs a scheduled vault job at a time.

The lease row names its holder and when it lapses; a holder that dies loses it at expiry.
Each call is one short transaction of its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from governance.vault.models import VaultLease

__all__ = ["acquire", "release"]


def acquire(
    sessions: sessionmaker[Session], name: str, holder: str, *, now: datetime, ttl: timedelta
) -> bool:
    """Take (or renew) the lease ``name`` for ``holder`` until ``now + ttl``.

    Returns:
        Whether ``holder`` holds it now; False while another holder's lease runs.
    """
    try:
        with sessions.begin() as session:
            row = session.get(VaultLease, name, with_for_update=True)
            if row is None:
                session.add(VaultLease(name=name, holder=holder, expires_at=now + ttl))
                return True
            if row.holder != holder and row.expires_at > now:
                return False
            row.holder, row.expires_at = holder, now + ttl
            return True
    except IntegrityError:
        return False  # another replica created the row first: it holds the lease


def release(sessions: sessionmaker[Session], name: str, holder: str, *, now: datetime) -> None:
    """Give the lease up at once, if ``holder`` still holds it."""
    with sessions.begin() as session:
        session.execute(
            update(VaultLease)
            .where(VaultLease.name == name, VaultLease.holder == holder)
            .values(expires_at=now)
        )
