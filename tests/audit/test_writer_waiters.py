"""How the group-commit writer answers the requests waiting on it, from threads and event loops."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from governance.audit.models import AuditEntry
from governance.audit.writer import AuditUnavailable, AuditWriter, next_wait
from governance.config import Settings
from tests.audit.conftest import FilledLog, sample_event


def _stored_seqs(audit_db: FilledLog) -> list[int]:
    with audit_db.sessions() as session:
        return list(
            session.scalars(AuditEntry.__table__.select().with_only_columns(AuditEntry.seq))
        )


# 0 is the server's default window: appends that arrive during a commit form the next batch.
@pytest.mark.parametrize("window_ms", [Settings.model_fields["audit_batch_wait_ms"].default, 2])
def test_concurrent_async_appends_each_get_their_own_durable_seqs(
    audit_db: FilledLog, window_ms: float
) -> None:
    writer = AuditWriter(audit_db.engine, max_wait_ms=window_ms)
    writer.start()
    before = len(_stored_seqs(audit_db))

    async def run() -> list[list[int]]:
        return await asyncio.gather(
            *(writer.append([sample_event(i), sample_event(i + 1000)]) for i in range(200))
        )

    try:
        results = asyncio.run(run())
    finally:
        writer.close()
    seqs = [s for pair in results for s in pair]
    assert all(b == a + 1 for a, b in results)  # an item's events stay together, in order
    assert sorted(seqs) == list(range(before, before + 400))  # gap-free, none given twice
    assert writer.batches < 200  # they really were grouped
    assert sorted(_stored_seqs(audit_db))[before:] == sorted(seqs)


def test_one_failing_item_fails_alone_and_its_batch_mates_commit(audit_db: FilledLog) -> None:
    writer = AuditWriter(audit_db.engine, max_wait_ms=20)
    writer.start()

    def boom(*_: object) -> None:
        raise RuntimeError("this record could not be stored")

    async def run() -> list[list[int] | BaseException]:
        calls = [writer.append([sample_event(i)]) for i in range(5)]
        calls.insert(2, writer.append([sample_event(99)], write=boom))
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        outcomes = asyncio.run(run())
    finally:
        writer.close()
    assert isinstance(outcomes[2], AuditUnavailable)
    ok = [o for i, o in enumerate(outcomes) if i != 2]
    assert all(isinstance(o, list) and len(o) == 1 for o in ok)


def test_a_cancelled_waiter_does_not_disturb_the_others(audit_db: FilledLog) -> None:
    writer = AuditWriter(audit_db.engine, max_wait_ms=20)
    writer.start()

    async def run() -> tuple[list[int], list[int]]:
        first = asyncio.ensure_future(writer.append([sample_event(1)]))
        gone = asyncio.ensure_future(writer.append([sample_event(2)]))
        last = asyncio.ensure_future(writer.append([sample_event(3)]))
        await asyncio.sleep(0)
        gone.cancel()  # the client went away; its entry is still written
        return await first, await last

    before = len(_stored_seqs(audit_db))
    try:
        first, last = asyncio.run(run())
    finally:
        writer.close()
    assert len(_stored_seqs(audit_db)) == before + 3
    assert first[0] < last[0]


def test_a_broken_connection_costs_one_retry_not_an_entry(
    audit_db: FilledLog, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer keeps one connection between batches; once it breaks, the next batch fails
    over to a fresh one (its items retried alone) and nothing is lost or written twice."""
    writer = AuditWriter(audit_db.engine)
    writer.start()
    before = len(_stored_seqs(audit_db))
    try:
        (first,) = writer.append_sync([sample_event(0)])
        held = writer._connection
        assert held is not None
        # What a database restart or a dropped socket leaves behind: a dead DBAPI connection.
        held.connection.dbapi_connection.close()  # type: ignore[union-attr]
        with caplog.at_level(logging.WARNING, logger="governance.audit.writer"):
            (second,) = writer.append_sync([sample_event(1)])
        assert "retrying 1 items alone" in caplog.text  # it did fail once, then recovered
        (third,) = writer.append_sync([sample_event(2)])
    finally:
        writer.close()
    assert writer._connection is None  # closed with the writer
    assert [first, second, third] == [before, before + 1, before + 2]
    assert sorted(_stored_seqs(audit_db))[before:] == [first, second, third]


def test_appends_after_close_are_refused(audit_db: FilledLog) -> None:
    writer = AuditWriter(audit_db.engine)
    writer.start()
    writer.close()
    with pytest.raises(AuditUnavailable):
        asyncio.run(writer.append([sample_event(0)]))
    with pytest.raises(AuditUnavailable):
        writer.append_sync([sample_event(0)])


def test_next_wait_is_the_window_capped_by_the_idle_limit() -> None:
    now = time.monotonic()
    assert 0.9 < next_wait(now + 1.0, None) <= 1.0
    assert next_wait(now + 1.0, 0.001) == 0.001
    assert next_wait(now - 0.5, 0.001) < 0  # the window is over: close the batch


def test_a_lone_append_is_committed_after_a_quiet_spell_not_the_whole_window(
    audit_db: FilledLog,
) -> None:
    # A 60 s window would hold a lone request for a minute; the idle limit closes the batch
    # once nothing else has arrived for 5 ms.
    writer = AuditWriter(audit_db.engine, max_wait_ms=60_000, max_idle_ms=5)
    writer.start()
    try:
        started = time.monotonic()
        seqs = writer.append_sync([sample_event(1)], timeout=30)
        waited = time.monotonic() - started
    finally:
        writer.close()
    assert seqs == [max(_stored_seqs(audit_db))]
    assert waited < 30  # answered by the idle limit (append_sync would have timed out)
