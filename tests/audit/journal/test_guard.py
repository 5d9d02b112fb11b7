"""GuardedJournal: a deadline on every durable audit write and a breaker in front of the
journal, on a real group commit stalled by a real lock (every backend in ``db_url``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, select, text

from governance.audit.journal import Journal
from governance.audit.journal.guard import GuardedJournal
from governance.audit.journal.local import LocalJournal
from governance.audit.journal.remote import ProcessJournal
from governance.audit.models import AuditEntry
from governance.audit.verify import verify_log
from governance.audit.writer import AuditUnavailable, AuditWriter
from governance.kit.events import AuditEvent
from tests.audit.conftest import FilledLog
from tests.audit_faults import refusing_audit_writes


def _event(request_id: str) -> AuditEvent:
    return AuditEvent(event_type="api.call", action="predict", outcome=200, request_id=request_id)


@contextmanager
def held_log(engine: Engine) -> Iterator[None]:
    """Hold the audit head's row lock (PostgreSQL) or the write lock (SQLite) until exit."""
    ready, release = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_head SET tree_size = tree_size WHERE id = 1"))
            ready.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert ready.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join(10)


def _evict(_dek: str, _ref: str) -> None:
    return None


@pytest.fixture(params=["thread", "process"])
def inner(
    request: pytest.FixtureRequest, audit_db: FilledLog, settings: object
) -> Iterator[Journal]:
    journal: Journal
    if request.param == "thread":
        journal = LocalJournal(AuditWriter(audit_db.engine, max_wait_ms=0), evict=_evict)
    else:
        journal = ProcessJournal(
            database_url=settings.resolved_database_url,  # type: ignore[attr-defined]
            max_batch=64,
            max_wait_ms=0,
            on_commit=None,
            evict=_evict,
        )
    yield journal


def _logged(engine: Engine) -> list[AuditEntry]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def _until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_stalled_log_refuses_after_the_deadline_then_at_once_and_recovers(
    inner: Journal, audit_db: FilledLog
) -> None:
    guard = GuardedJournal(inner, deadline=0.4, retry_every=0.2)

    async def scenario() -> None:
        guard.start()
        try:
            assert await guard.append([_event("before")]) == [0]
            with held_log(audit_db.engine):
                started = time.monotonic()
                first = asyncio.ensure_future(guard.append([_event("late-a")]))
                await asyncio.sleep(0.1)  # late-b queues behind late-a's stalled commit
                second = asyncio.ensure_future(guard.append([_event("late-b")]))
                for waited in (first, second):
                    with pytest.raises(AuditUnavailable, match="did not commit within 400 ms"):
                        await waited
                assert time.monotonic() - started < 2.0
                # The breaker is open: refused at once, not after another deadline.
                started = time.monotonic()
                with pytest.raises(AuditUnavailable) as refused:
                    await guard.append([_event("refused-at-once")])
                assert time.monotonic() - started < 0.05
                assert refused.value.status_code == 503
                assert refused.value.retry_after == 1
                assert guard.problem() is not None
            # The lock is gone: a probe through the journal closes the breaker.
            assert await asyncio.to_thread(_until, lambda: guard.problem(probe=True) is None)
            assert len(await guard.append([_event("after")])) == 1
        finally:
            await asyncio.to_thread(guard.close)

    asyncio.run(scenario())

    def noted() -> set[str]:
        ids: set[str] = set()
        for entry in _logged(audit_db.engine):
            if entry.event_type == "audit.deadline":
                import json

                ids.update(json.loads(entry.canonical)["details"]["request_ids"])
        return ids

    assert _until(lambda: {"late-a", "late-b"} <= noted())
    entries = _logged(audit_db.engine)
    ids = {e.request_id for e in entries}
    assert "before" in ids and "after" in ids
    assert "refused-at-once" not in ids  # never left this process
    # Handed to the writer before their deadline: committed late, and named by the note.
    assert {"late-a", "late-b"} <= ids
    assert any(e.event_type == "audit.probe" for e in entries)
    with audit_db.sessions() as session:
        assert verify_log(session, audit_db.vkey).tree_size == len(entries)


def test_a_failing_write_makes_the_path_unready_until_one_commits(audit_db: FilledLog) -> None:
    writer = AuditWriter(audit_db.engine, max_wait_ms=0)
    guard = GuardedJournal(LocalJournal(writer, evict=_evict), deadline=2.0, retry_every=0.1)

    async def scenario() -> None:
        guard.start()
        try:
            assert guard.problem() is None
            with refusing_audit_writes(audit_db.engine):
                with pytest.raises(AuditUnavailable, match="could not be written"):
                    await guard.append([_event("refused")])
                assert guard.problem() == "the audit entry could not be written"
                # A failure is not a stall: appends are still attempted, and fail.
                with pytest.raises(AuditUnavailable, match="could not be written"):
                    await guard.append([_event("refused-again")])
                # Readiness probes the path; the probe fails too while the trigger stands.
                guard.problem(probe=True)
                await asyncio.sleep(0.3)
                assert guard.problem(probe=True) is not None
            # Fixed: the next probe commits and the path is ready again.
            assert await asyncio.to_thread(_until, lambda: guard.problem(probe=True) is None)
        finally:
            await asyncio.to_thread(guard.close)

    asyncio.run(scenario())
    ids = {e.request_id for e in _logged(audit_db.engine)}
    assert not {"refused", "refused-again"} & ids
