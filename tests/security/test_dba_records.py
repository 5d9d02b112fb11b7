"""The database administrator's attacks on keys, records and erasure (issue 27, items 5, 6).

Whoever can write the database, without the key file, tries to:

- relabel a data key's subject, so that the subject's erasure misses the key, or so that the
  key opens under another subject's name;
- relabel a record's principal, model, request id or audit sequence, so that a decryption
  vouches for (and the audit log repeats) what they wrote;
- read the wrapped key back out of SQLite's files after an erasure, by holding a read
  transaction open so that the log cannot be checkpointed;
- seal past ``dek_max_uses`` by sharing a key between processes that each count alone.

Each runs on SQLite and on PostgreSQL (the ``db_url`` fixture) against the in-process app with
its runtime running.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from governance.audit.models import AuditEntry
from governance.config import Settings, load_settings
from governance.db import make_engine, make_sessionmaker
from governance.errors import ConfigurationError
from governance.records.models import Record
from governance.vault.errors import DecryptionError
from governance.vault.keys import data_keys
from governance.vault.models import DESTROYED, DataKey
from governance.vault.providers import load_provider
from tests.conftest import ArtifactBuilder, auth, settings_env
from tests.records.conftest import Setup, serve_toy


@pytest.fixture
def served(app_client: Any, admin_token: str, make_artifact: ArtifactBuilder) -> Setup:
    return serve_toy(app_client, admin_token, make_artifact)


@pytest.fixture
def dba(settings: Settings) -> Iterator[Engine]:
    """The administrator's own connection to the service's database."""
    engine = make_engine(settings.resolved_database_url)
    yield engine
    engine.dispose()


def _record(dba: Engine, record_id: str) -> Record:
    with make_sessionmaker(dba)() as session:
        row = session.get(Record, record_id)
        assert row is not None
        session.expunge(row)
        return row


def _audit_after(dba: Engine, seq: int) -> list[str]:
    with dba.connect() as connection:
        return list(
            connection.scalars(
                select(AuditEntry.canonical).where(AuditEntry.seq > seq).order_by(AuditEntry.seq)
            )
        )


def _head(dba: Engine) -> int:
    with dba.connect() as connection:
        return int(connection.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())) or 0)


def _erase(served: Setup, subject_id: str) -> dict[str, Any]:
    r = served.http.delete(
        f"/v1/subjects/{subject_id}", params={"client": "app"}, headers=auth(served.admin)
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_relabelled_key_is_still_erased_and_opens_under_no_other_label(
    served: Setup, dba: Engine, settings: Settings
) -> None:
    made = served.predict(subject_id="alice")
    assert made.status_code == 200, made.text
    record = _record(dba, made.json()["record_id"])
    other = served.predict(subject_id="bob")
    # The key row now names another subject (one active key per subject: one without keys).
    with dba.begin() as connection:
        connection.execute(
            update(DataKey).where(DataKey.id == record.dek_id).values(subject_ref="f" * 64)
        )
    keys = load_provider(settings.key_provider, path=settings.resolved_key_file)
    with make_sessionmaker(dba)() as session:
        relabelled = session.get(DataKey, record.dek_id)
        assert relabelled is not None
        with pytest.raises(DecryptionError):
            data_keys.unwrap(keys, relabelled)  # the wrap binds the subject it was made for
    r = served.decrypt(record.id)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")

    # Alice's erasure finds the key through her records, whatever the row says.
    receipt = _erase(served, "alice")
    assert record.dek_id in receipt["dek_ids"] and receipt["records_affected"] == 1
    # Relabelling it back brings nothing back.
    with dba.begin() as connection:
        connection.execute(
            update(DataKey)
            .where(DataKey.id == record.dek_id)
            .values(subject_ref=record.subject_ref)
        )
        state, wrapped = connection.execute(
            select(DataKey.state, DataKey.wrapped).where(DataKey.id == record.dek_id)
        ).one()
    assert (state, wrapped) == (DESTROYED, None)
    assert served.decrypt(record.id).status_code == 410
    # Bob's own key was not touched.
    assert served.decrypt(other.json()["record_id"]).status_code == 200


@pytest.mark.parametrize("field", ["principal", "model", "request_id", "audit_seq"])
def test_a_relabelled_record_is_refused_and_its_altered_values_are_not_repeated(
    served: Setup, dba: Engine, field: str
) -> None:
    first = served.predict(subject_id="carol", i=1)
    target = served.predict(subject_id="carol", i=2)
    assert first.status_code == target.status_code == 200
    record = _record(dba, target.json()["record_id"])
    forged: dict[str, Any] = {
        "principal": "mallory-principal",
        "model": "mallory-model",
        "request_id": "mallory-request-0000",
        # The audit entry of another of carol's predictions: a real entry, the wrong one.
        "audit_seq": first.json()["audit_seq"],
    }
    with dba.begin() as connection:
        connection.execute(
            update(Record).where(Record.id == record.id).values({field: forged[field]})
        )
    before = _head(dba)
    r = served.decrypt(record.id)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    entries = _audit_after(dba, before)
    assert entries, "the refused decryption was not audited"
    assert not [e for e in entries if '"records.decrypt"' in e], "a decryption was logged"
    if field != "audit_seq":  # a number: it may occur in any id
        assert str(forged[field]) not in r.text
        assert not [e for e in entries if str(forged[field]) in e]

    # Nothing is lost: the administrator's change undone, the record opens as it was sealed.
    with dba.begin() as connection:
        connection.execute(
            update(Record).where(Record.id == record.id).values({field: getattr(record, field)})
        )
    opened = served.decrypt(record.id)
    assert opened.status_code == 200, opened.text
    assert opened.json()["record"]["principal"] == record.principal


def _raw_files(settings: Settings) -> bytes:
    database = Path(str(make_engine(settings.resolved_database_url).url.database))
    found = b""
    for path in (database, Path(f"{database}-wal")):
        if path.exists():
            found += path.read_bytes()
    return found


def test_erasure_under_a_concurrent_reader_is_retried_until_the_key_bytes_are_gone(
    served: Setup, dba: Engine, settings: Settings
) -> None:
    made = served.predict(subject_id="dave")
    assert made.status_code == 200
    record = _record(dba, made.json()["record_id"])
    with dba.connect() as connection:
        wrapped = connection.scalar(select(DataKey.wrapped).where(DataKey.id == record.dek_id))
    assert wrapped is not None and len(wrapped) >= 44
    if dba.dialect.name != "sqlite":
        receipt = _erase(served, "dave")
        # PostgreSQL keeps the old row version until VACUUM: said so, with the end date.
        assert receipt["key_bytes"]["status"] == "residual"
        assert receipt["exposure_ends_by"] is not None
        assert any("VACUUM" in line for line in receipt["residual_exposure"])
        return

    database = str(make_engine(settings.resolved_database_url).url.database)
    reader = sqlite3.connect(database, isolation_level=None)
    try:
        # A read transaction that outlives the erasure pins the log's old frames.
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM data_keys").fetchone()
        started = time.monotonic()
        receipt = _erase(served, "dave")
        took = time.monotonic() - started
        assert took < 5, f"the erasure waited {took:.1f} s for the reader"
        assert receipt["dek_ids"] == [record.dek_id]
        assert receipt["key_bytes"]["status"] == "pending", receipt
        assert receipt["key_bytes"]["removed_at"] is None
        assert receipt["key_bytes"]["attempts"] >= 1
        assert receipt["exposure_ends_by"] is not None
        assert any("write-ahead log busy" in line for line in receipt["residual_exposure"])
        # The exposure the receipt reports is real: the wrapped key is still in the files.
        assert bytes(wrapped) in _raw_files(settings)
    finally:
        reader.execute("COMMIT")
        reader.close()

    deadline = time.monotonic() + 30
    while True:
        listed = served.http.get("/v1/erasures", headers=auth(served.admin))
        assert listed.status_code == 200, listed.text
        mine = next(r for r in listed.json() if r["receipt_id"] == receipt["receipt_id"])
        if mine["key_bytes"]["status"] == "done":
            break
        assert time.monotonic() < deadline, f"the scrub was never retried: {mine}"
        time.sleep(0.1)
    assert mine["key_bytes"]["removed_at"] is not None
    assert mine["key_bytes"]["attempts"] >= 2
    assert bytes(wrapped) not in _raw_files(settings)


_RESERVE = """
import pathlib, sys, time
from governance.db import make_engine, make_sessionmaker
from governance.vault.keys import data_keys

engine = make_engine(sys.argv[1])
sessions = make_sessionmaker(engine)
go = pathlib.Path(sys.argv[4])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
granted = 0
while True:
    time.sleep(0.002)
    with sessions.begin() as session:
        block = data_keys.reserve_uses(session, sys.argv[2], want=7, limit=int(sys.argv[3]))
    if not block:
        break
    granted += len(block)
print(granted)
"""


def test_dek_uses_are_counted_in_the_database_across_two_processes(
    dba: Engine, settings: Settings, tmp_path: Path
) -> None:
    keys = load_provider(settings.key_provider, path=settings.resolved_key_file)
    with make_sessionmaker(dba).begin() as session:
        row, _ = data_keys.create(session, keys, subject_ref="e" * 64, created_by="test")
        dek_id = row.id
    limit = 400
    script = tmp_path / "reserve.py"
    script.write_text(_RESERVE, encoding="utf-8")
    env = settings_env(settings)
    url = settings.resolved_database_url
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, dek_id, str(limit), str(tmp_path / "go")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(2)
    ]
    for proc in procs:  # both connected before either reserves
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    (tmp_path / "go").touch()
    granted = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode(errors="replace")
        granted.append(int(out))
    # Both sealed (each saw the other's reservations), and together exactly the limit.
    assert sum(granted) == limit and min(granted) > 0, granted
    with dba.connect() as connection:
        assert connection.scalar(select(DataKey.uses).where(DataKey.id == dek_id)) == limit


def test_a_dek_max_uses_near_the_nonce_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_DEK_MAX_USES", str(2**31 + 1))
    with pytest.raises(ConfigurationError, match="WARDEN_DEK_MAX_USES"):
        load_settings()
    monkeypatch.setenv("WARDEN_DEK_MAX_USES", str(2**31))
    assert load_settings().dek_max_uses == 2**31


def test_a_receipt_never_names_the_subject_id(served: Setup) -> None:
    assert served.predict(subject_id="erin-secret-id").status_code == 200
    receipt = _erase(served, "erin-secret-id")
    assert len(receipt["dek_ids"]) == 1
    assert "erin-secret-id" not in json.dumps(receipt)
