"""Checkpointer.tick: the timer that signs the last entries of a quiet log."""

from __future__ import annotations

from governance.audit.checkpoints import Checkpointer
from tests.audit.conftest import FilledLog, fill
from tests.clock import SteppedClock


def test_tick_signs_only_when_due_and_something_is_new(audit_db: FilledLog) -> None:
    clock = SteppedClock()
    timer = Checkpointer(
        audit_db.checkpointer.origin, audit_db.checkpointer.key,
        memory=audit_db.checkpointer.memory, every_entries=10**6, every_seconds=1.0,
        clock=clock.monotonic, now=clock.now,
    )  # fmt: skip
    assert timer.tick(audit_db.sessions) is None  # nothing due yet, not even a read
    fill(audit_db, 3, checkpoint_every=10**6)
    assert timer.tick(audit_db.sessions) is None  # entries, but the period has not passed
    clock.advance(1.1)
    signed = timer.tick(audit_db.sessions)
    assert signed is not None and signed.tree_size == 3
    clock.advance(1.1)
    assert timer.tick(audit_db.sessions) is None  # nothing new since
    fill(audit_db, 2, checkpoint_every=10**6)
    clock.advance(1.1)
    signed = timer.tick(audit_db.sessions)
    assert signed is not None and signed.tree_size == 5
