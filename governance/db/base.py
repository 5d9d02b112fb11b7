"""The declarative base shared by every domain's ORM models, and the column-bound types.

The integer bounds and ``as_utc`` live in governance/kit/bounds.py and are re-exported here."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import annotated_types
from pydantic import AfterValidator, BeforeValidator, Strict
from sqlalchemy import DateTime, MetaData, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

from governance.kit.bounds import DB_BIGINT_MAX, DB_BIGINT_MIN, DB_INT_MAX, DB_INT_MIN, as_utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# An integer a caller sends that may reach the database (ids, versions, sizes, offsets), typed
# by the column it is compared with or stored in. Python's integers are unbounded and the
# columns are not: a larger one would fail in the driver (SQLite's OverflowError, PostgreSQL's
# "integer out of range") as a 500. As a route parameter or body field type it is refused at
# the boundary with a 422 naming the field; other bounds compose with it
# (``Annotated[DbInt, Query(ge=1)]``).
DbInt = Annotated[int, annotated_types.Interval(ge=DB_INT_MIN, le=DB_INT_MAX)]
DbBigInt = Annotated[int, annotated_types.Interval(ge=DB_BIGINT_MIN, le=DB_BIGINT_MAX)]
# A request body's integer: a JSON integer only, never a string, a boolean or ``5.0`` (pydantic's
# lax mode would coerce each). Path and query parameters arrive as text and keep DbInt.
StrictDbInt = Annotated[DbInt, Strict()]
StrictDbBigInt = Annotated[DbBigInt, Strict()]


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def not_a_number(value: object) -> object:
    """Refuse a number where a date-time is expected.

    Pydantic reads a number, or a string of digits, as seconds (or milliseconds) since 1970:
    ``until=0.5`` was the first second of 1970, and ``"1700000000"`` a day in 2023. A time a
    caller sends is an RFC 3339 / ISO 8601 string, as the OpenAPI document says.

    Raises:
        ValueError: ``value`` is a number, or a string that reads as one.
    """
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("a date-time is an ISO 8601 string such as 2026-01-31T12:00:00Z")
    return value


UtcDatetime = Annotated[datetime, BeforeValidator(not_a_number), AfterValidator(as_utc)]
"""A time a caller sends, as an aware UTC datetime (see :func:`as_utc`); a 422 if UTC cannot
hold it, or if it is a number (:func:`not_a_number`). Times are compared with and stored as
aware UTC values: a naive one failed the comparison (TypeError) and an offset one near the ends
of the calendar overflowed, both 500s.
"""


def utcnow() -> datetime:
    """Now, in UTC, at millisecond precision (what audit entries record)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no time zones; without this, values read back naive and comparisons break.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: use governance.db.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime}  # noqa: RUF012
