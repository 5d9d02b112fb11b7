"""Audit-log fixtures: a migrated database filled with entries and signed checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from governance.audit import log as audit_log
from governance.audit.checkpoints import Checkpointer
from governance.audit.signing import public_vkey
from governance.config import Settings
from governance.db import make_engine, make_sessionmaker
from governance.kit.events import Actor, AuditEvent

# The end-to-end audit tests serve the toy model exactly as the predict tests do.
from tests.predict.conftest import served  # noqa: F401


@dataclass
class FilledLog:
    engine: Engine
    sessions: sessionmaker[Session]
    checkpointer: Checkpointer
    vkey: str
    size: int
    checkpoint_sizes: list[int]


def sample_event(i: int) -> AuditEvent:
    """Entries that differ in every indexed column, so filters have something to select."""
    return AuditEvent(
        event_type="api.call" if i % 3 else "policy.change",
        action="GET /v1/models" if i % 3 else "apply",
        actor=Actor(principal_id=i % 4, name=f"user{i % 4}", roles=("auditor",)),
        resource={"model": f"m{i % 5}", "version": "1"},
        decision="deny" if i % 7 == 0 else "allow",
        reason="test",
        outcome=403 if i % 7 == 0 else 200,
        request_id=f"req-{i}",
        details={"i": i},
    )


def fill(log: FilledLog, count: int, *, batch: int = 5, checkpoint_every: int = 8) -> None:
    """Append ``count`` entries in group-commit batches, signing every ``checkpoint_every``."""
    done = 0
    while done < count:
        step = min(batch, count - done)
        with log.sessions.begin() as session:
            audit_log.append(session, [sample_event(log.size + k) for k in range(step)])
        done += step
        log.size += step
        if log.size // checkpoint_every > (log.size - step) // checkpoint_every:
            with log.sessions.begin() as session:
                row = log.checkpointer.checkpoint(session, force=True)
                assert row is not None
                log.checkpoint_sizes.append(row.tree_size)


def empty_log(settings: Settings) -> Iterator[FilledLog]:
    engine = make_engine(settings.resolved_database_url)
    checkpointer = Checkpointer.from_settings(settings)
    vkey = public_vkey(checkpointer.origin, checkpointer.key)
    yield FilledLog(engine, make_sessionmaker(engine), checkpointer, vkey, 0, [])
    engine.dispose()


@pytest.fixture
def audit_db(settings: Settings) -> Iterator[FilledLog]:
    """An empty, migrated log with its signing key (every backend in ``db_url``)."""
    yield from empty_log(settings)


def fill_53(log: FilledLog) -> FilledLog:
    """53 entries (an odd size, not a power of two) and checkpoints every 8 or so."""
    fill(log, 53)
    with log.sessions.begin() as session:
        row = log.checkpointer.checkpoint(session, force=True)
        assert row is not None
        log.checkpoint_sizes.append(row.tree_size)
    return log


@pytest.fixture
def filled(audit_db: FilledLog) -> FilledLog:
    """53 entries (an odd size, not a power of two) and checkpoints every 8 or so."""
    return fill_53(audit_db)
