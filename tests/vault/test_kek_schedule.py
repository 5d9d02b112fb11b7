"""The KEK rotation schedule, on an injected clock: a KEK past its period is rotated out and
retired, every live key is rewrapped, and no saved copy of a destroyed key opens after."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.models import AuditEntry
from governance.db import make_engine, make_sessionmaker
from governance.vault import leases
from governance.vault.envelope import unwrap_dek
from governance.vault.errors import KeyProviderError
from governance.vault.kek_schedule import LEASE, KekSchedule
from governance.vault.keys import binding_of, data_keys
from governance.vault.models import DataKey
from governance.vault.providers import LocalKeyFileProvider, WrappedKey

PERIOD = timedelta(days=30)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def keys(tmp_path: Path) -> LocalKeyFileProvider:
    return LocalKeyFileProvider.create(tmp_path / "keys.json")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_due_kek_is_rotated_out_and_retired_and_destroyed_copies_stop_opening(
    sessions: sessionmaker[Session], keys: LocalKeyFileProvider
) -> None:
    with sessions.begin() as session:
        live, live_dek = data_keys.create(session, keys, subject_ref="a" * 64, created_by="t")
        gone, _ = data_keys.create(session, keys, subject_ref="b" * 64, created_by="t")
        # What a backup taken before the erasure holds.
        backup = (WrappedKey(kek_id=str(gone.kek_id), blob=bytes(gone.wrapped or b"")), gone)
        backup_binding = binding_of(gone)
        data_keys.destroy_subject(session, subject_ref="b" * 64, by="t")
    born = keys.kek_created("kek-1")
    assert born is not None
    clock = Clock(born + PERIOD - timedelta(seconds=10))
    schedule = KekSchedule(
        sessions=sessions, keys=keys, period=PERIOD, holder="replica-a", now=clock
    )
    assert schedule.retire_by() == born + PERIOD
    # The backup still opens under the current KEK: that is the exposure the schedule ends.
    assert len(unwrap_dek(keys, backup[0], binding=backup_binding)) == 32

    assert schedule.tick() is None and keys.key_id == "kek-1"  # not due yet
    clock.now = born + PERIOD + timedelta(seconds=20)
    assert schedule.tick() is None and keys.key_id == "kek-1"  # checked 30 s ago: not yet
    clock.now += timedelta(minutes=2)
    done = schedule.tick()
    assert done is not None and (done.from_kek, done.to_kek, done.rewrapped) == (
        "kek-1",
        "kek-2",
        1,
    )
    assert keys.available_kek_ids() == ("kek-2",)
    assert schedule.retire_by() == clock.now.replace(microsecond=0) + PERIOD
    with sessions() as session:
        row = session.get(DataKey, live.id)
        assert row is not None and row.kek_id == "kek-2" and row.wrap_format == 2
        assert data_keys.unwrap(keys, row) == live_dek
        retired = session.scalars(
            select(AuditEntry.canonical).where(AuditEntry.event_type == "key.retire")
        ).all()
    assert len(retired) == 1 and '"kek-1"' in retired[0]
    # No copy of the destroyed key opens any more: its KEK is gone from the key file.
    with pytest.raises(KeyProviderError):
        unwrap_dek(keys, backup[0], binding=backup_binding)
    # Not due again until the new KEK has aged a period.
    clock.now += timedelta(days=1)
    assert schedule.run_if_due() is None and keys.key_id == "kek-2"


def test_only_the_lease_holder_rotates(
    sessions: sessionmaker[Session], keys: LocalKeyFileProvider
) -> None:
    born = keys.kek_created("kek-1")
    assert born is not None
    clock = Clock(born + PERIOD + timedelta(days=1))
    a = KekSchedule(sessions=sessions, keys=keys, period=PERIOD, holder="replica-a", now=clock)
    b = KekSchedule(sessions=sessions, keys=keys, period=PERIOD, holder="replica-b", now=clock)
    assert leases.acquire(sessions, LEASE, "replica-b", now=clock.now, ttl=timedelta(minutes=5))
    assert a.run_if_due() is None and keys.key_id == "kek-1"  # B holds the lease
    leases.release(sessions, LEASE, "replica-b", now=clock.now)
    assert a.run_if_due() is not None and keys.key_id == "kek-2"
    # B, late, finds nothing due once it re-reads the key file.
    assert b.run_if_due() is None and keys.available_kek_ids() == ("kek-2",)
    # A lease whose holder died lapses.
    assert leases.acquire(sessions, LEASE, "replica-b", now=clock.now, ttl=timedelta(minutes=5))
    later = clock.now + timedelta(minutes=6)
    assert leases.acquire(sessions, LEASE, "replica-a", now=later, ttl=timedelta(minutes=5))
