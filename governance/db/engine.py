"""Engines and sessions. SQLite runs in WAL mode with foreign keys and full fsync."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from governance.private_files import create_private_file


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on disk before the response that depends on it leaves.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Freed cells are zeroed, so a wrapped data key left by a rewrap, a use-count update or an
    # erasure does not linger in the file's free space.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _create_private_database(url: str) -> None:
    # SQLite creates the -wal, -shm and journal files with the database file's mode: creating
    # that file 0600 before SQLite opens it keeps all of them private, whatever the umask.
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        create_private_file(Path(path))
    except FileNotFoundError:
        return  # no such folder: SQLite's own error says so when it opens


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN, so two writers queue instead of failing with SQLITE_BUSY on
    # lock upgrade (which busy_timeout cannot retry).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(conn: Any) -> None:
    # Readers in WAL mode see a consistent snapshot and never block the writer.
    conn.exec_driver_sql("BEGIN")


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a PostgreSQL connection may take to open, run a statement, or stay silent.

    A frozen or unreachable server must be an error the caller can answer 503 with, never a
    request that hangs (the server process's settings fill these; see governance/config.py).
    """

    connect_timeout_s: int = 2
    statement_timeout_ms: int = 0  # 0: none (the CLI's long jobs); the server sets its own
    keepalives_idle_s: int = 10
    keepalives_interval_s: int = 5
    keepalives_count: int = 3

    @classmethod
    def from_settings(cls, settings: Any) -> ConnectionLimits:
        return cls(
            connect_timeout_s=settings.db_connect_timeout_seconds,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            keepalives_idle_s=settings.db_keepalives_idle_seconds,
            keepalives_interval_s=settings.db_keepalives_interval_seconds,
            keepalives_count=settings.db_keepalives_count,
        )

    def connect_args(self) -> dict[str, Any]:
        """libpq connection parameters (psycopg passes them through)."""
        args: dict[str, Any] = {
            "connect_timeout": self.connect_timeout_s,
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle_s,
            "keepalives_interval": self.keepalives_interval_s,
            "keepalives_count": self.keepalives_count,
        }
        if self.statement_timeout_ms:
            args["options"] = f"-c statement_timeout={self.statement_timeout_ms}"
        return args


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    read_only: bool = False,
    limits: ConnectionLimits | None = None,
) -> Engine:
    """Create an engine configured for Warden.

    Args:
        url: a SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).
        pool_size: connections kept open (PostgreSQL).
        read_only: for sessions that only read. On SQLite their transactions start deferred,
            so they never hold the write lock (a reader that held it while waiting for the GIL
            would stall every group commit behind it).
        limits: PostgreSQL timeouts and keepalives (default: :class:`ConnectionLimits`()).

    Returns:
        The engine.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        _create_private_database(url)
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
    limits = limits or ConnectionLimits()
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=20,
        pool_pre_ping=True,
        # A pool emptied by stuck connections answers as soon as a connect would have failed.
        pool_timeout=limits.connect_timeout_s,
        connect_args=limits.connect_args(),
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that never expire objects on commit (responses are built after commit)."""
    return sessionmaker(engine, expire_on_commit=False, autoflush=True)
