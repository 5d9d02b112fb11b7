"""The group commit signs the checkpoints that fall due, in the transaction of the entries.

Both journals do (the writer thread and the writer process); a checkpoint rolls back with
its batch; and the server's timer, which signs the tail of a quiet log, measures from the
newest checkpoint whoever signed it, so it does not sign again behind the group commit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from sqlalchemy import select

from governance.audit.checkpoints import Checkpointer, CheckpointPolicy
from governance.audit.journal.local import LocalJournal
from governance.audit.journal.remote import ProcessJournal
from governance.audit.models import AuditCheckpoint
from governance.audit.verify import verify_log
from governance.audit.writer import AuditUnavailable, AuditWriter, GroupCommit
from governance.config import Settings
from tests.audit.conftest import FilledLog, sample_event
from tests.clock import SteppedClock


def _no_eviction(dek_id: str, subject_ref: str) -> None:
    return None


def _policy(settings: Settings, *, every_entries: int, every_seconds: float) -> CheckpointPolicy:
    return dataclasses.replace(
        CheckpointPolicy.from_settings(settings),
        every_entries=every_entries,
        every_seconds=every_seconds,
    )


def _checkpoint_sizes(log: FilledLog) -> list[int]:
    with log.sessions() as session:
        return list(session.scalars(select(AuditCheckpoint.tree_size).order_by("tree_size")))


@pytest.mark.parametrize("where", ["thread", "process"])
def test_the_group_commit_signs_a_checkpoint_each_time_one_falls_due(
    where: str, settings: Settings, audit_db: FilledLog
) -> None:
    policy = _policy(settings, every_entries=10, every_seconds=3600)
    journal: LocalJournal | ProcessJournal
    if where == "thread":
        writer = AuditWriter(audit_db.engine, max_batch=64)
        journal = LocalJournal(writer, evict=_no_eviction, checkpoint=policy)
    else:
        journal = ProcessJournal(
            database_url=settings.resolved_database_url,
            max_batch=64,
            max_wait_ms=0.0,
            on_commit=None,
            evict=_no_eviction,
            checkpoint=policy,
        )
    journal.start()
    try:
        for batch in range(9):  # nine commits of four entries
            journal.append_sync([sample_event(4 * batch + k) for k in range(4)])
    finally:
        journal.close()
    # Due once ten entries were added since the last: at 12, 24 and 36.
    assert _checkpoint_sizes(audit_db) == [12, 24, 36]
    with audit_db.sessions() as session:
        report = verify_log(session, audit_db.vkey)  # signatures, and roots of the real tree
    assert report.checkpoints_checked == 3 and report.latest_checkpoint == 36


def test_a_checkpoint_rolls_back_with_its_batch(settings: Settings, audit_db: FilledLog) -> None:
    checkpointer = Checkpointer.from_policy(_policy(settings, every_entries=1, every_seconds=3600))
    writer = AuditWriter(audit_db.engine, max_batch=64, checkpointer=checkpointer)

    def fails(tx: GroupCommit, seqs: list[int]) -> None:
        raise RuntimeError("the record's insert failed")

    events: Sequence = [sample_event(0), sample_event(1)]
    outcomes, size = writer.write([(events, fails)])
    assert isinstance(outcomes[0], AuditUnavailable) and size is None
    assert _checkpoint_sizes(audit_db) == []  # nothing appended, nothing signed
    outcomes, size = writer.write([(events, None)])
    assert outcomes == [[0, 1]] and size == 2
    assert _checkpoint_sizes(audit_db) == [2]
    writer.close()


def test_the_timer_signs_a_quiet_tail_but_not_behind_the_group_commit(
    settings: Settings, audit_db: FilledLog
) -> None:
    policy = _policy(settings, every_entries=10, every_seconds=1.0)
    clock = SteppedClock()
    writer = AuditWriter(
        audit_db.engine,
        max_batch=64,
        checkpointer=Checkpointer.from_policy(policy, clock=clock.monotonic, now=clock.now),
    )
    # The server's timer: it sees none of those commits.
    timer = Checkpointer.from_policy(policy, clock=clock.monotonic, now=clock.now)
    writer.write([([sample_event(k) for k in range(12)], None)])  # due: signed at 12
    writer.write([([sample_event(12), sample_event(13)], None)])  # not due yet
    assert _checkpoint_sizes(audit_db) == [12]
    clock.advance(1.1)
    signed = timer.tick(audit_db.sessions)  # the log went quiet: the tail is the timer's
    assert signed is not None and signed.tree_size == 14
    clock.advance(1.1)
    assert timer.tick(audit_db.sessions) is None  # nothing new
    writer.write([([sample_event(14 + k) for k in range(10)], None)])  # 10 since 12: signed
    assert _checkpoint_sizes(audit_db) == [12, 14, 24]
    clock.advance(1.1)
    # The head is signed already; the timer learns it from the log, not from its own memory.
    assert timer.tick(audit_db.sessions) is None
    assert _checkpoint_sizes(audit_db) == [12, 14, 24]
    writer.close()
