"""The ranges of the database's integer columns, and times read as UTC, without SQLAlchemy: the
remote CLI checks its options with them and never opens a database."""

from __future__ import annotations

from datetime import UTC, datetime

# The ranges of the two integer column types (SQLite stores both as 64-bit INTEGER).
DB_INT_MIN, DB_INT_MAX = -(2**31), 2**31 - 1  # Integer: PostgreSQL's INTEGER
DB_BIGINT_MIN, DB_BIGINT_MAX = -(2**63), 2**63 - 1  # BigInteger: PostgreSQL's BIGINT


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; one without an offset is read as UTC.

    Raises:
        ValueError: UTC cannot hold it (a time with an offset within hours of year 1 or 9999).
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is outside what UTC can represent (years 1 to 9999)") from None
