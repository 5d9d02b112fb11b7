"""Engines and sessions. SQLite runs in WAL mode with foreign keys and full fsync."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on disk before the response that depends on it leaves.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN, so two writers queue instead of failing with SQLITE_BUSY on
    # lock upgrade (which busy_timeout cannot retry).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(conn: Any) -> None:
    # Readers in WAL mode see a consistent snapshot and never block the writer.
    conn.exec_driver_sql("BEGIN")


def make_engine(url: str, *, pool_size: int = 10, read_only: bool = False) -> Engine:
    """Create an engine configured for Warden.

    Args:
        url: a SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).
        pool_size: connections kept open (PostgreSQL).
        read_only: for sessions that only read. On SQLite their transactions start deferred,
            so they never hold the write lock (a reader that held it while waiting for the GIL
            would stall every group commit behind it).

    Returns:
        The engine.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10, "isolation_level": None},
            pool_size=pool_size,
            max_overflow=20,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(
            engine, "begin", _sqlite_begin_deferred if read_only else _sqlite_begin_immediate
        )
        return engine
    return create_engine(
        url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True, pool_timeout=10
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that never expire objects on commit (responses are built after commit)."""
    return sessionmaker(engine, expire_on_commit=False, autoflush=True)
