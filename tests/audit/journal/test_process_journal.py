"""ProcessJournal: appends made durable by a writer process of its own, on every backend."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop
from sqlalchemy import func, select

from governance.audit.journal.remote import ProcessJournal
from governance.audit.models import AuditEntry
from governance.audit.verify import verify_log
from governance.audit.writer import AuditUnavailable
from governance.config import Settings
from tests.audit.conftest import FilledLog, sample_event


class Commits:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, size: int) -> None:
        self.sizes.append(size)


@pytest.fixture(params=["thread", "loop"])
def answers_on(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop | None]:
    """Who reads the writer process's answers: a thread of the journal's own (None), or an
    event loop running in a thread of its own, as a server's is (uvloop, as uvicorn runs)."""
    if request.param == "thread":
        yield None
        return
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="server-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def started(
    settings: Settings,
    on_commit: Commits | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    max_batch: int = 64,
    max_wait_ms: float | None = None,
    max_idle_ms: float | None = None,
) -> ProcessJournal:
    # The server's window unless a test sets its own.
    journal = ProcessJournal(
        database_url=settings.resolved_database_url,
        max_batch=max_batch,
        max_wait_ms=settings.audit_batch_wait_ms if max_wait_ms is None else max_wait_ms,
        max_idle_ms=max_idle_ms,
        on_commit=on_commit,
        evict=lambda dek_id, subject_ref: None,
    )
    if loop is None:
        journal.start()
    else:

        async def start() -> None:
            journal.start()  # on the loop, as the server's lifespan starts it

        asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    return journal


@pytest.fixture
def journal(
    settings: Settings, audit_db: FilledLog, answers_on: asyncio.AbstractEventLoop | None
) -> Iterator[tuple[ProcessJournal, Commits]]:
    commits = Commits()
    journal = started(settings, commits, loop=answers_on)
    yield journal, commits
    journal.close()


def test_concurrent_appends_are_durable_and_gap_free(
    journal: tuple[ProcessJournal, Commits], audit_db: FilledLog
) -> None:
    writer, commits = journal

    async def burst() -> list[list[int]]:
        return await asyncio.gather(*(writer.append([sample_event(i)]) for i in range(200)))

    seqs = asyncio.run(burst())
    seqs.append(writer.append_sync([sample_event(200), sample_event(201)]))
    flat = sorted(s for batch in seqs for s in batch)
    assert flat == list(range(202))
    with audit_db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 202
        # An answered append is committed: another connection reads it back.
        report = verify_log(session, audit_db.vkey)
    assert report.tree_size == report.entries_checked == 202
    assert commits.sizes and commits.sizes[-1] == 202 and commits.sizes == sorted(commits.sizes)


def test_batches_larger_than_max_batch_commit_in_several_transactions(
    settings: Settings, audit_db: FilledLog, answers_on: asyncio.AbstractEventLoop | None
) -> None:
    # One loop turn's appends can reach the writer process in a single frame larger than
    # max_batch: they are committed in transactions of at most max_batch, in order.
    commits = Commits()
    journal = started(settings, commits, loop=answers_on, max_batch=3)
    try:

        async def burst() -> list[list[int]]:
            return await asyncio.gather(*(journal.append([sample_event(i)]) for i in range(20)))

        seqs = asyncio.run(burst())
    finally:
        journal.close()
    assert sorted(s for batch in seqs for s in batch) == list(range(20))
    assert commits.sizes == sorted(commits.sizes) and commits.sizes[-1] == 20
    with audit_db.sessions() as session:
        assert verify_log(session, audit_db.vkey).tree_size == 20
    # How many transactions that took is counted in tests/audit/test_writer_frontier.py, on
    # AuditWriter.write, which the writer process runs: the entries' times (milliseconds) can
    # no longer tell, since transactions run back to back within one.


def test_the_writer_process_closes_a_batch_after_a_quiet_spell(
    settings: Settings, audit_db: FilledLog, answers_on: asyncio.AbstractEventLoop | None
) -> None:
    # With a 60 s window and no idle limit, a lone append would wait a minute.
    journal = started(settings, loop=answers_on, max_wait_ms=60_000, max_idle_ms=5)
    try:
        assert journal.append_sync([sample_event(1)], timeout=30) == [0]
    finally:
        journal.close()


def test_a_closed_journal_refuses(
    settings: Settings, audit_db: FilledLog, answers_on: asyncio.AbstractEventLoop | None
) -> None:
    journal = started(settings, loop=answers_on)
    assert journal.append_sync([sample_event(0)]) == [0]
    journal.close()
    with pytest.raises(AuditUnavailable):
        journal.append_sync([sample_event(1)])
    with pytest.raises(AuditUnavailable):
        asyncio.run(journal.append([sample_event(1)]))


def test_a_dead_writer_process_refuses_then_is_replaced(
    journal: tuple[ProcessJournal, Commits], audit_db: FilledLog
) -> None:
    writer, _ = journal
    assert writer.append_sync([sample_event(0)]) == [0]
    proc = writer._proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Fail closed while no writer process runs: a refusal, never an unaudited answer.
    deadline = time.monotonic() + 30
    refused = 0
    while time.monotonic() < deadline:
        try:
            seqs = writer.append_sync([sample_event(1)], timeout=10)
        except AuditUnavailable:
            refused += 1
            time.sleep(0.05)
            continue
        break
    else:
        pytest.fail("the writer process was not replaced")
    assert refused >= 1 and writer.restarts == 1
    assert seqs == [1]  # the log goes on where it was: nothing lost, nothing renumbered
    with audit_db.sessions() as session:
        assert verify_log(session, audit_db.vkey).entries_checked == 2


def test_the_writer_process_is_not_a_listening_service(
    journal: tuple[ProcessJournal, Commits],
) -> None:
    """It talks only over the inherited socketpair: no port, and no URL in its argv."""
    writer, _ = journal
    proc = writer._proc
    assert proc is not None
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1:3] == [b"-m", b"governance.audit.journal.sidecar"]
    assert not any(b"sqlite" in part or b"postgresql" in part for part in cmdline)


def test_answers_are_read_on_the_loop_that_started_the_journal(
    settings: Settings, audit_db: FilledLog
) -> None:
    """As in a server: started in the lifespan, appended to and closed on the same loop."""

    async def scenario() -> tuple[list[list[int]], list[str]]:
        journal = started(settings)  # on this running loop: it reads the answers
        threads = [t.name for t in threading.enumerate()]
        first = await asyncio.gather(*(journal.append([sample_event(i)]) for i in range(20)))
        # Appends still in flight when the journal closes (a server shutting down) are
        # answered by the close itself, which reads the last answers on this thread.
        late = [asyncio.ensure_future(journal.append([sample_event(i)])) for i in range(20, 50)]
        await asyncio.sleep(0)
        journal.close()
        # Answered, not refused: a refusal would raise AuditUnavailable here.
        rest = await asyncio.wait_for(asyncio.gather(*late), 5)
        return [*first, *rest], threads

    seqs, threads = uvloop.run(scenario())
    assert "journal-receive" not in threads
    assert sorted(s for batch in seqs for s in batch) == list(range(50))
    with audit_db.sessions() as session:
        assert verify_log(session, audit_db.vkey).entries_checked == 50
