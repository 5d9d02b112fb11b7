"""Counts of ``api.call`` entries in a sequence range, aggregated in SQL, for the reports.

Every query is a GROUP BY over the entries of a range selected by sequence number (the primary
key: entries are appended in time order), so a report over millions of entries reads each row
a few times inside the database and never loads them into Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Numeric,
    and_,
    cast,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON

from governance.audit.models import AuditEntry

API_CALL = "api.call"


@dataclass(frozen=True)
class CallRange:
    """The ``api.call`` entries with ``first_seq <= seq <= last_seq``, optionally only those
    whose resource label is one of ``resources``."""

    first_seq: int
    last_seq: int
    resources: tuple[str, ...] | None = None

    def where(self) -> ColumnElement[bool]:
        scope = and_(
            AuditEntry.seq >= self.first_seq,
            AuditEntry.seq <= self.last_seq,
            AuditEntry.event_type == API_CALL,
        )
        if self.resources is not None:
            scope = and_(scope, AuditEntry.resource.in_(self.resources))
        return scope


def _sqlite_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _bucket_expr(session: Session, start: datetime, width: int) -> ColumnElement[Any]:
    """The index of an entry's time bucket, counted from ``start``, on either database."""
    if session.get_bind().dialect.name == "sqlite":
        # Times are stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC; julianday parses them.
        offset = func.julianday(AuditEntry.time) - func.julianday(literal(_sqlite_time(start)))
        seconds = offset * 86400.0
        # Rounding to the millisecond first keeps julianday's float error off bucket edges.
        return cast(func.floor(func.round(cast(seconds, Float), 3) / width), Integer)
    # PostgreSQL's interval epoch is exact (numeric); its round() takes numeric, not double.
    seconds = func.extract("epoch", AuditEntry.time - literal(start))
    return cast(func.floor(cast(seconds, Numeric) / width), Integer)


def _reason_expr(session: Session) -> ColumnElement[Any]:
    """The entry's ``reason`` field, read from its canonical JSON inside the database."""
    if session.get_bind().dialect.name == "sqlite":
        return func.json_extract(AuditEntry.canonical, "$.reason")
    return type_coerce(cast(AuditEntry.canonical, JSON), JSON)["reason"].as_string()


def by_actor_resource_decision(
    session: Session, calls: CallRange
) -> list[tuple[str | None, str | None, str, int]]:
    """(actor, resource, decision, count): as many rows as distinct callers times resources."""
    return [
        row._tuple()
        for row in session.execute(
            select(AuditEntry.actor, AuditEntry.resource, AuditEntry.decision, func.count())
            .where(calls.where())
            .group_by(AuditEntry.actor, AuditEntry.resource, AuditEntry.decision)
        )
    ]


def denial_reasons(session: Session, calls: CallRange) -> list[tuple[str | None, int]]:
    """(reason, count) of the denials."""
    reason = _reason_expr(session)
    return [
        row._tuple()
        for row in session.execute(
            select(reason, func.count())
            .where(calls.where(), AuditEntry.decision == "deny")
            .group_by(reason)
        )
    ]


def decision_timeline(
    session: Session, calls: CallRange, *, start: datetime, width: int
) -> list[tuple[int, str, int]]:
    """(bucket index from ``start``, decision, count) in buckets of ``width`` seconds."""
    bucket = _bucket_expr(session, start, width)
    return [
        row._tuple()
        for row in session.execute(
            select(bucket, AuditEntry.decision, func.count())
            .where(calls.where())
            .group_by(bucket, AuditEntry.decision)
        )
    ]


def denial_bursts(
    session: Session, calls: CallRange, *, start: datetime, window: int, threshold: int
) -> list[tuple[str | None, int, int]]:
    """(actor, window index from ``start``, denials) where one actor has at least
    ``threshold`` denials inside one fixed window of ``window`` seconds."""
    burst = _bucket_expr(session, start, window)
    return [
        row._tuple()
        for row in session.execute(
            select(AuditEntry.actor, burst, func.count())
            .where(calls.where(), AuditEntry.decision == "deny")
            .group_by(AuditEntry.actor, burst)
            .having(func.count() >= threshold)
        )
    ]
