"""Every read query of the audit domain: entries, checkpoints and stored tree nodes.

Writes live in :mod:`governance.audit.log` (entries, nodes) and
:mod:`governance.audit.checkpoints` (signed heads); nothing here changes the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, create_engine, event, func, select
from sqlalchemy.orm import Session

from governance.audit import merkle
from governance.audit.checkpoints import fetch_nodes
from governance.audit.models import AuditCheckpoint, AuditEntry, AuditNode
from governance.db import make_engine


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What an auditor narrows the log to; every member is optional and they combine (AND).

    ``since`` is inclusive and ``until`` exclusive. ``resource`` matches a substring of the
    ``k=v,k=v`` resource label (``model=toy`` finds every entry about model toy).
    """

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    resource: str | None = None
    decision: str | None = None
    event_type: str | None = None
    request_id: str | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filtered_entries(
    flt: EntryFilter,
    *,
    after: int | None,
    limit: int,
    newest_first: bool = False,
    before: int | None = None,
) -> Select[Any]:
    """Entries matching ``flt``, at most ``limit``: oldest first with ``seq > after``, or
    newest first with ``seq < before``."""
    query = select(AuditEntry)
    if flt.since is not None:
        query = query.where(AuditEntry.time >= flt.since)
    if flt.until is not None:
        query = query.where(AuditEntry.time < flt.until)
    if flt.actor is not None:
        query = query.where(AuditEntry.actor == flt.actor)
    if flt.resource is not None:
        query = query.where(
            AuditEntry.resource.like(f"%{_escape_like(flt.resource)}%", escape="\\")
        )
    if flt.decision is not None:
        query = query.where(AuditEntry.decision == flt.decision)
    if flt.event_type is not None:
        query = query.where(AuditEntry.event_type == flt.event_type)
    if flt.request_id is not None:
        query = query.where(AuditEntry.request_id == flt.request_id)
    # Keyset pagination: stable under concurrent appends, O(page) at any depth.
    if newest_first:
        if before is not None:
            query = query.where(AuditEntry.seq < before)
        return query.order_by(AuditEntry.seq.desc()).limit(limit)
    if after is not None:
        query = query.where(AuditEntry.seq > after)
    return query.order_by(AuditEntry.seq).limit(limit)


def get_entry(session: Session, seq: int) -> AuditEntry | None:
    """The entry with sequence number ``seq``, if any."""
    return session.get(AuditEntry, seq)


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    """The checkpoint with the largest tree size, if any."""
    return session.scalar(
        select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
    )


def get_checkpoint(session: Session, size: int) -> AuditCheckpoint | None:
    """The checkpoint signed at exactly ``size`` entries, if any."""
    return session.get(AuditCheckpoint, size)


def first_checkpoint_covering(session: Session, seq: int) -> AuditCheckpoint | None:
    """The earliest checkpoint whose tree includes entry ``seq``."""
    return session.scalar(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.tree_size > seq)
        .order_by(AuditCheckpoint.tree_size)
        .limit(1)
    )


def list_checkpoints(session: Session, *, after: int | None, limit: int) -> list[AuditCheckpoint]:
    """Checkpoints with ``tree_size > after``, smallest first."""
    query = select(AuditCheckpoint)
    if after is not None:
        query = query.where(AuditCheckpoint.tree_size > after)
    return list(session.scalars(query.order_by(AuditCheckpoint.tree_size).limit(limit)))


def seq_at_or_after(session: Session, when: datetime) -> int | None:
    """The first seq recorded at or after ``when``."""
    return session.scalar(select(func.min(AuditEntry.seq)).where(AuditEntry.time >= when))


def seq_at_or_before(session: Session, when: datetime) -> int | None:
    """The last seq recorded at or before ``when``."""
    return session.scalar(select(func.max(AuditEntry.seq)).where(AuditEntry.time <= when))


def node_getter(session: Session, keys: Iterable[merkle.NodeKey]) -> merkle.NodeGetter:
    """A getter over the stored nodes ``keys`` (fetched now, one query per level)."""
    return merkle.getter_from_mapping(fetch_nodes(session, list(dict.fromkeys(keys))))


def stream_canonical(
    session: Session, from_seq: int, to_seq: int, *, chunk: int = 2000
) -> Iterator[tuple[int, bytes]]:
    """``(seq, canonical bytes)`` of entries ``from_seq..to_seq`` (inclusive), in order.

    Reads by keyset chunks, so memory stays O(chunk) however long the range.
    """
    start = from_seq
    while start <= to_seq:
        end = min(to_seq, start + chunk - 1)
        rows = session.execute(
            select(AuditEntry.seq, AuditEntry.canonical)
            .where(AuditEntry.seq >= start, AuditEntry.seq <= end)
            .order_by(AuditEntry.seq)
        ).all()
        for seq, canonical in rows:
            yield seq, canonical.encode("utf-8")
        if len(rows) < end - start + 1:
            return  # a gap: the consumer sees the sequence break and reports it
        start = end + 1


def count_nodes(session: Session) -> int:
    """How many tree nodes are stored."""
    return int(session.scalar(select(func.count()).select_from(AuditNode)) or 0)


def _sqlite_reader_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=1")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin_deferred(conn: Any) -> None:
    # A deferred transaction in WAL mode reads one snapshot and never takes the write lock,
    # so a long verification or export does not stall the appenders.
    conn.exec_driver_sql("BEGIN")


@contextmanager
def snapshot_session(url: str) -> Iterator[Session]:
    """A read-only session on one consistent snapshot of the database, for long reads.

    The service's sessions take SQLite's write lock at BEGIN; holding one for a full verify
    would block every request for its duration. On PostgreSQL the transaction is REPEATABLE
    READ, so a checkpoint signed mid-verification is not seen beyond the head read at start.

    Args:
        url: the database URL.

    Yields:
        A session; its transaction is rolled back at the end.
    """
    if url.startswith("sqlite"):
        engine: Engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10, "isolation_level": None}
        )
        event.listen(engine, "connect", _sqlite_reader_connect)
        event.listen(engine, "begin", _sqlite_begin_deferred)
    else:
        engine = make_engine(url, pool_size=1)
    bind = engine
    if not url.startswith("sqlite"):
        bind = engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    try:
        with Session(bind) as session:
            yield session
            session.rollback()
    finally:
        engine.dispose()


@dataclass(frozen=True, slots=True)
class EntryDocument:
    """One entry's position, time, actor and canonical document, parsed."""

    seq: int
    time: datetime
    actor: str | None
    document: dict[str, Any]


def entries_of_type(
    session: Session, event_type: str, start: datetime, end: datetime
) -> list[EntryDocument]:
    """Entries of one event type recorded in ``[start, end)``, in log order."""
    rows = session.execute(
        select(AuditEntry.seq, AuditEntry.time, AuditEntry.actor, AuditEntry.canonical)
        .where(AuditEntry.event_type == event_type, AuditEntry.time >= start, AuditEntry.time < end)
        .order_by(AuditEntry.seq)
    )
    return [EntryDocument(seq, time, actor, json.loads(text)) for seq, time, actor, text in rows]


def count_by_type(session: Session, first_seq: int, last_seq: int) -> list[tuple[str, int]]:
    """``(event type, count)`` of entries ``first_seq..last_seq`` (inclusive), by type name."""
    rows = session.execute(
        select(AuditEntry.event_type, func.count())
        .where(AuditEntry.seq >= first_seq, AuditEntry.seq <= last_seq)
        .group_by(AuditEntry.event_type)
        .order_by(AuditEntry.event_type)
    )
    return [(event_type, int(count)) for event_type, count in rows]


def count_checkpoints(session: Session) -> int:
    """How many signed checkpoints are stored."""
    return int(session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0)


def seq_range(session: Session, start: datetime, end: datetime) -> tuple[int | None, int | None]:
    """The first and last seq recorded in ``[start, end)`` (both None when none was)."""
    first, last = session.execute(
        select(func.min(AuditEntry.seq), func.max(AuditEntry.seq)).where(
            AuditEntry.time >= start, AuditEntry.time < end
        )
    ).one()
    return first, last
