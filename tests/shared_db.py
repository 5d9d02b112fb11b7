"""One migrated, seeded database per test worker and backend; each test in a rolled-back
transaction.

For service-level tests: the services take a session and never commit, so a test's writes can
live in one outer transaction that is rolled back at its end (SQLAlchemy's "joining a session
into an external transaction"; a session's commit only releases a savepoint). Code that opens
its own engine or sessions, or keeps state outside the database (the checkpoint signer, key
files), cannot see or undo these writes: such tests keep ``settings`` and a fresh database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from governance.config import Settings
from governance.db import make_engine
from tests.conftest import BACKENDS, AdminToken, fresh_database, make_settings, seed_admin


@dataclass(frozen=True)
class SharedDatabase:
    """The worker's database (policy v1 seeded, the first admin created) and its settings."""

    engine: Engine
    settings: Settings
    admin: AdminToken


@pytest.fixture(scope="session", params=BACKENDS)
def shared_database(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_template: str | None,
) -> Iterator[SharedDatabase]:
    folder = tmp_path_factory.mktemp("shared-db")
    with fresh_database(request.param, folder, sqlite_template, pg_template) as url:
        settings = make_settings(url, folder)
        admin = seed_admin(settings)
        engine = make_engine(url)
        try:
            yield SharedDatabase(engine, settings, admin)
        finally:
            engine.dispose()


@pytest.fixture
def db_sessions(shared_database: SharedDatabase) -> Iterator[sessionmaker[Session]]:
    """Sessions over one connection whose transaction is rolled back when the test ends;
    ``sessions.begin()`` and ``session.commit()`` work as usual, inside it."""
    with shared_database.engine.connect() as connection:
        outer = connection.begin()
        try:
            yield sessionmaker(
                bind=connection,
                expire_on_commit=False,
                autoflush=True,
                join_transaction_mode="create_savepoint",
            )
        finally:
            outer.rollback()


@pytest.fixture
def db_session(db_sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One session inside the test's rolled-back transaction."""
    with db_sessions() as session:
        yield session
