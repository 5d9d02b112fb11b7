"""Change notifications on PostgreSQL: delivered at commit and only then, to a listener that
comes back by itself after its connection is cut, and whose failures leak no credentials."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from governance.db import make_engine, make_sessionmaker, state
from governance.db.notify import APPLICATION_NAME, ChangeListener, connect_args
from tests.conftest import POSTGRES_URL


@pytest.fixture
def pg_url(db_url: str) -> str:
    if db_url.startswith("sqlite"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    return db_url


class Heard:
    """Counts the listener's callbacks; waits for the next one."""

    def __init__(self) -> None:
        self.count = 0
        self._event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self._event.set()

    def wait(self, timeout: float) -> bool:
        heard = self._event.wait(timeout)
        self._event.clear()
        return heard


@pytest.fixture
def listening(pg_url: str) -> Iterator[tuple[ChangeListener, Heard]]:
    heard = Heard()
    listener = ChangeListener(pg_url, heard, max_pause=0.2)
    listener.start()
    try:
        # The first callback comes when it is connected and listening.
        assert heard.wait(10), "the listener did not connect"
        yield listener, heard
    finally:
        listener.close()


def test_connect_args_keep_every_part_of_the_url() -> None:
    params = connect_args("postgresql+psycopg://ann:p%40ss@db.example:5433/warden?sslmode=require")
    assert params == {
        "user": "ann",
        "password": "p@ss",
        "host": "db.example",
        "port": 5433,
        "dbname": "warden",
        "sslmode": "require",
    }


def test_a_bump_is_heard_at_commit_and_not_before(
    pg_url: str, listening: tuple[ChangeListener, Heard]
) -> None:
    _, heard = listening
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as session:
            state.bump(session, state.POLICY)
            session.flush()
            assert not heard.wait(0.3), "a notification before the commit"
            session.commit()
        assert heard.wait(5)
        with sessions() as session:
            state.bump(session, state.IDENTITY)
            session.rollback()
        assert not heard.wait(0.3), "a rolled-back change was announced"
    finally:
        engine.dispose()


def test_the_listener_reconnects_after_its_connection_is_killed(
    pg_url: str, listening: tuple[ChangeListener, Heard]
) -> None:
    listener, heard = listening
    assert POSTGRES_URL
    admin = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :app AND datname = :db"
                ),
                {"app": APPLICATION_NAME, "db": make_url(pg_url).database},
            ).scalar_one()
        assert killed == 1
        # Back by itself, and it calls back on reconnecting for what it may have missed.
        assert heard.wait(10), "the listener did not come back"
        assert listener.connections == 2
        engine = make_engine(pg_url)
        try:
            with make_sessionmaker(engine).begin() as session:
                state.bump(session, state.MODELS)
            assert heard.wait(5)
        finally:
            engine.dispose()
    finally:
        admin.dispose()


def test_a_listener_that_cannot_connect_logs_no_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard = Heard()
    # Port 1 refuses at once: every attempt fails.
    listener = ChangeListener(
        "postgresql+psycopg://listener-user:hunter2-secret@127.0.0.1:1/warden",
        heard,
        max_pause=0.05,
    )
    with caplog.at_level(logging.WARNING, logger="governance.db.notify"):
        listener.start()
        deadline = time.monotonic() + 5
        while len(caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        listener.close()
    assert len(caplog.records) >= 2, "it stopped trying"
    assert heard.count == 0
    assert "hunter2" not in caplog.text and "listener-user" not in caplog.text
    assert "OperationalError" in caplog.text
