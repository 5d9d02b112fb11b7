"""Migration 0010 on a database that already holds racing replicas' duplicate active keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import IntegrityError

from governance.db import make_engine
from governance.db.migrate import upgrade
from governance.vault.models import DataKey
from tests.conftest import BACKENDS, _pg_exec, _pg_url


@pytest.fixture(params=BACKENDS)
def at_0003(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database migrated up to 0003 only (data keys, before one active key)."""
    name = f"warden_m_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        _pg_exec(f'CREATE DATABASE "{name}"')
        url = _pg_url(name)
    engine = make_engine(url)
    try:
        upgrade(engine, "0003")
        yield engine
    finally:
        engine.dispose()
        if request.param != "sqlite":
            _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _key(
    dek_id: str, ref: str, version: int, age_s: int, state: str = "active"
) -> dict[str, object]:
    return {
        "id": dek_id,
        "subject_ref": ref,
        "version": version,
        "state": state,
        "kek_id": "kek-1",
        "wrapped": b"\x01" * 60,
        "uses": 3,
        "created_at": datetime.now(UTC) - timedelta(seconds=age_s),
        "created_by": "replica",
    }


def test_duplicates_keep_the_newest_active_and_retire_the_rest_readable(
    at_0003: Engine,
) -> None:
    raced, lone = "a" * 64, "b" * 64
    # The columns as of 0003: later migrations add others, with server-side defaults.
    table = sa.table("data_keys", *(sa.column(name) for name in _key("x", raced, 1, 0)))
    with at_0003.begin() as db:
        # Three replicas raced one subject's first use (same version, different times).
        db.execute(
            insert(table).values(
                [
                    _key("dek_r1", raced, 1, 30),
                    _key("dek_r2", raced, 1, 10),
                    _key("dek_r3", raced, 1, 20),
                    _key("dek_l1", lone, 1, 50, "decrypt_only"),
                    _key("dek_l2", lone, 2, 40),
                ]
            )
        )
    upgrade(at_0003, "heads")
    with at_0003.connect() as db:
        states = dict(db.execute(text("SELECT id, state FROM data_keys")).all())
        wrapped = dict(db.execute(text("SELECT id, wrapped FROM data_keys")).all())
        counter = db.scalar(text("SELECT value FROM state_counters WHERE name = 'data_keys'"))
        formats = set(db.scalars(text("SELECT wrap_format FROM data_keys")))
    # The newest of the racers stays active; the others still hold their wrapped key, so what
    # they sealed still opens (decrypt_only is a use-count rotation's state).
    assert states == {
        "dek_r1": "decrypt_only",
        "dek_r2": "active",
        "dek_r3": "decrypt_only",
        "dek_l1": "decrypt_only",
        "dek_l2": "active",
    }
    assert all(wrapped[k] == b"\x01" * 60 for k in states)
    assert counter == 0
    assert formats == {1}  # wrapped before 0012: bound to their id only, until rewrapped
    # From now on the database refuses a second active key for a subject.
    with pytest.raises(IntegrityError), at_0003.begin() as db:
        db.execute(insert(table).values(**_key("dek_r4", raced, 2, 0)))
    with at_0003.connect() as db:
        assert db.scalar(select(DataKey.id).where(DataKey.id == "dek_r4")) is None
