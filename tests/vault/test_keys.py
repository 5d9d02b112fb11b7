"""Data-key rows: create, unwrap, use counting, rotation, destruction and KEK rewrap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from governance.audit import log as audit_log
from governance.db import make_engine, make_sessionmaker
from governance.kit.context import cli_context
from governance.vault.errors import DecryptionError, KeyDestroyed
from governance.vault.keys import data_keys
from governance.vault.models import DataKey
from governance.vault.providers import LocalKeyFileProvider
from governance.vault.rotation import rotate_kek
from governance.vault.wal import checkpoint_wal


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


def test_create_unwrap_and_versions(
    sessions: sessionmaker[Session], keys: LocalKeyFileProvider
) -> None:
    with sessions.begin() as session:
        row1, dek1 = data_keys.create(session, keys, subject_ref="a" * 64, created_by="t")
        assert data_keys.retire(session, row1.id) and not data_keys.retire(session, row1.id)
        row2, dek2 = data_keys.create(session, keys, subject_ref="a" * 64, created_by="t")
    assert (row1.version, row2.version) == (1, 2) and dek1 != dek2
    assert "wrapped" not in repr(row1) and dek1.hex() not in repr(row1)
    with sessions() as session:
        active = data_keys.active(session, "a" * 64)
        assert active is not None and active.id == row2.id
        assert data_keys.unwrap(keys, active) == dek2
        assert data_keys.unwrap(keys, data_keys.get(session, row1.id)) == dek1  # type: ignore[arg-type]


def test_a_wrapped_key_moved_to_another_row_or_altered_fails(
    sessions: sessionmaker[Session], keys: LocalKeyFileProvider
) -> None:
    with sessions.begin() as session:
        a, _ = data_keys.create(session, keys, subject_ref="a" * 64, created_by="t")
        b, _ = data_keys.create(session, keys, subject_ref="b" * 64, created_by="t")
        session.execute(update(DataKey).where(DataKey.id == b.id).values(wrapped=a.wrapped))
    with sessions() as session, pytest.raises(DecryptionError, match="wrapped data key"):
        data_keys.unwrap(keys, data_keys.get(session, b.id))  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 9])
def test_lock_states_reads_any_number_of_keys_missing_and_repeated_ones_included(
    sessions: sessionmaker[Session], keys: LocalKeyFileProvider, count: int
) -> None:
    # The statement's IN list is padded to a power of two: every length reads the same way.
    with sessions.begin() as session:
        made = [
            data_keys.create(session, keys, subject_ref=f"{i:064x}", created_by="t")[0].id
            for i in range(count)
        ]
        data_keys.rotate(session, cli_context(), subject_ref=f"{0:064x}", reason="test")
    asked = [*made, "dek_missing", made[-1]]
    with sessions.begin() as session:
        states = data_keys.lock_states(session.connection(), asked)
    assert states == {dek: "decrypt_only" if i == 0 else "active" for i, dek in enumerate(made)}


def test_use_reservations_stop_at_the_limit_and_follow_the_state(
    sessions: sessionmaker[Session], keys: LocalKeyFileProvider
) -> None:
    with sessions.begin() as session:
        row, _ = data_keys.create(session, keys, subject_ref="c" * 64, created_by="t")
        assert data_keys.reserve_uses(session, row.id, want=3, limit=4) == range(0, 3)
        # Only what is left under the limit, then nothing.
        assert data_keys.reserve_uses(session, row.id, want=3, limit=4) == range(3, 4)
        assert data_keys.reserve_uses(session, row.id, want=1, limit=4) == range(0)
        assert data_keys.lock_states(session.connection(), [row.id, "dek_missing"]) == {
            row.id: "active"
        }
        assert data_keys.rotate(session, cli_context(), subject_ref="c" * 64, reason="test") == 1
        # A rotated key seals nothing more.
        assert data_keys.reserve_uses(session, row.id, want=1, limit=10) == range(0)
        assert data_keys.lock_states(session.connection(), [row.id]) == {row.id: "decrypt_only"}
    with sessions.begin() as session:
        destroyed = data_keys.destroy_subject(session, subject_ref="c" * 64, by="t")
        assert [d.id for d in destroyed] == [row.id]
        assert data_keys.lock_states(session.connection(), [row.id]) == {row.id: "destroyed"}
        assert data_keys.destroy_subject(session, subject_ref="c" * 64, by="t") == []
    with sessions() as session:
        gone = data_keys.get(session, row.id)
        assert gone is not None and gone.uses == 4 and gone.wrapped is None
        with pytest.raises(KeyDestroyed):
            data_keys.unwrap(keys, gone)


def test_kek_rotation_rewraps_without_changing_keys_and_never_resurrects(
    engine: Engine, sessions: sessionmaker[Session], keys: LocalKeyFileProvider
) -> None:
    plain = {}
    with sessions.begin() as session:
        for i in range(7):
            row, dek = data_keys.create(session, keys, subject_ref=f"{i:064d}", created_by="t")
            plain[row.id] = dek
        data_keys.destroy_subject(session, subject_ref=f"{0:064d}", by="t")
    done = rotate_kek(sessions=sessions, keys=keys, ctx=cli_context(), reason="t", batch_size=2)
    assert (done.from_kek, done.to_kek, done.rewrapped) == ("kek-1", "kek-2", 6)
    assert done.batches == 5  # three full, one short, and the last pass under the head lock
    with sessions() as session:
        assert data_keys.kek_usage(session) == {"kek-2": 6}
        assert data_keys.count_under_kek(session, "kek-1") == 0
        for row in data_keys.list(session, limit=100):
            if row.state == "destroyed":
                assert row.wrapped is None and row.kek_id is None
            else:
                assert data_keys.unwrap(keys, row) == plain[row.id]
        assert [r.kind for r in data_keys.rotations(session)] == ["kek"]
    # The old KEK can go; the keys still open under the new one.
    keys.retire("kek-1")
    assert keys.available_kek_ids() == ("kek-2",)
    # A second pass has nothing left to do.
    again = rotate_kek(
        sessions=sessions, keys=keys, ctx=cli_context(), reason="t", rotate_provider=False
    )
    assert again.rewrapped == 0 and again.to_kek == "kek-2"
    # Nothing else holds the database: the log is checkpointed and emptied.
    assert checkpoint_wal(engine) is not False
    if engine.dialect.name == "sqlite":
        wal = Path(f"{engine.url.database}-wal")
        assert not wal.exists() or wal.stat().st_size == 0


def test_a_key_wrapped_under_the_old_kek_while_the_rotation_runs_is_rewrapped(
    sessions: sessionmaker[Session], keys: LocalKeyFileProvider
) -> None:
    """A key created as the serving path does (head lock, then wrap) under the old KEK, whose
    transaction commits only after the rotation's batches have looked, still ends up under the
    new KEK: on PostgreSQL the batches cannot see it, and the rotation's last pass waits for it."""
    with sessions.begin() as session:
        data_keys.create(session, keys, subject_ref="a" * 64, created_by="t")
    creating = sessions()
    creating.begin()
    audit_log.lock_head(creating)
    late, _ = data_keys.create(creating, keys, subject_ref="b" * 64, created_by="t")
    assert late.kek_id == "kek-1"

    outcome: list[object] = []
    rotation = threading.Thread(
        target=lambda: outcome.append(
            rotate_kek(sessions=sessions, keys=keys, ctx=cli_context(), reason="t")
        )
    )
    rotation.start()
    deadline = time.monotonic() + 10
    while keys.key_id != "kek-2" and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the rotation's batches run (on PostgreSQL) or wait (SQLite) meanwhile
    assert rotation.is_alive()  # it cannot finish before the key being created is committed
    creating.commit()
    creating.close()
    rotation.join(timeout=30)
    assert not rotation.is_alive() and len(outcome) == 1
    with sessions() as session:
        assert data_keys.kek_usage(session) == {"kek-2": 2}
