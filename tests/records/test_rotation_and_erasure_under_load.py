"""Key rotation and erasure while predictions run: nothing lost, a destroyed key never used."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from governance.api.app import create_app
from governance.config import Settings
from governance.kit.context import cli_context
from governance.records.models import Record
from governance.records.recorder import RecordStore
from governance.records.service import records
from governance.runtime import Runtime
from governance.vault.models import DataKey
from tests.conftest import ArtifactBuilder, auth
from tests.records.conftest import Setup, serve_toy


@pytest.fixture(params=["thread", "process"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Each test with the journal in a thread and in its own writer process: in the latter,
    the stale keys found at storage time travel back to this process's cache."""
    return settings.model_copy(update={"audit_writer": request.param})


@pytest.fixture
def small_keys(
    settings: Settings, admin_token: str, make_artifact: ArtifactBuilder
) -> Iterator[tuple[Setup, Runtime]]:
    """The app with data keys rotating every 7 records."""
    cfg = settings.model_copy(update={"dek_max_uses": 7})
    with TestClient(create_app(cfg), raise_server_exceptions=False) as client:
        yield (
            serve_toy(client, admin_token, make_artifact),
            client.app.state.runtime,
        )


def test_rotation_under_concurrent_load_loses_nothing(small_keys: tuple[Setup, Runtime]) -> None:
    served, runtime = small_keys
    subjects = ["s-a", "s-b", "s-c"]
    results: list[Any] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(12):
            r = served.predict(subject_id=subjects[(n + i) % 3], i=i)
            with lock:
                results.append((r.status_code, r.json().get("record_id")))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    reason = {"reason": "drill under load"}
    # On-demand rotations of data keys and of the KEK while the workers run.
    r1 = served.http.post("/v1/vault/deks/rotate", json=reason, headers=auth(served.admin))
    r2 = served.http.post("/v1/vault/kek/rotate", json=reason, headers=auth(served.admin))
    r3 = served.http.post("/v1/vault/deks/rotate", json=reason, headers=auth(served.admin))
    for t in threads:
        t.join()
    assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 200), r2.text
    assert r2.json()["to_kek"] == "kek-2"

    assert len(results) == 72 and {s for s, _ in results} == {200}
    ids = {rid for _, rid in results}
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Record)) == 72
        keys = list(session.scalars(select(DataKey)))
        stored = set(session.scalars(select(Record.id)))
        uses = {k.id: k.uses for k in keys}
        per_key = dict(
            session.execute(select(Record.dek_id, func.count()).group_by(Record.dek_id)).all()
        )
    assert stored == ids
    # Use-count rotation: 72 records over 3 subjects with 7 uses per key needs many keys.
    assert len(keys) >= 3 * (24 // 7)
    assert {k.kek_id for k in keys} == {"kek-2"}  # every key rewrapped or created under kek-2
    # Seals are counted in the database when reserved, before sealing: never fewer than the
    # records stored, never past dek_max_uses, whichever process sealed them.
    assert all(per_key[k] <= uses[k] <= 7 for k in per_key)
    assert max(uses.values()) <= 7
    # Everything decrypts: the caching, rotations and rewrap lost nothing.
    with runtime.sessions.begin() as session:
        for record_id in ids:
            records.decrypt(
                session,
                cli_context(),
                runtime.keys,
                record_id=record_id,
                purpose="test: check every record opens",
            )


def test_a_record_sealed_under_a_key_erased_elsewhere_is_sealed_again_not_refused(
    served: Setup, runtime_of: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    first = served.predict(subject_id="shared")
    assert first.status_code == 200
    recorder = runtime_of.recorder
    assert isinstance(recorder, RecordStore)
    ref = recorder.subject_ref("shared", principal="app")
    cached = recorder.cache.get(ref)
    assert cached is not None

    # Another process erases the subject: its change counter makes this process drop the key.
    with runtime_of.sessions.begin() as session:
        receipt = records.erase(
            session, cli_context("other-replica"), runtime_of.keys, subject_id="shared"
        )
    assert receipt.records_affected == 1
    deadline = time.monotonic() + 10
    while recorder.cache.get(ref) is not None:
        assert time.monotonic() < deadline, "the erased key was never dropped from the cache"
        time.sleep(0.02)
    # A replica that has not heard yet (the key put back) seals under the destroyed key; the
    # storing transaction refuses the record.
    recorder.cache.put(cached)

    # The server seals it again under the subject's fresh key: the caller sees a 200.
    with caplog.at_level(logging.INFO):
        again = served.predict(subject_id="shared")
    assert again.status_code == 200, again.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    if runtime_of.settings.audit_writer == "thread":  # the writer process logs on its own
        assert any("stale item" in r.getMessage() for r in caplog.records)
    assert recorder.cache.get(ref) is not cached
    with runtime_of.sessions() as session:
        under_destroyed = session.scalar(
            select(func.count()).select_from(Record).where(Record.dek_id == cached.dek_id)
        )
        new_key = session.get(Record, again.json()["record_id"]).dek_id  # type: ignore[union-attr]
    assert under_destroyed == 1 and new_key != cached.dek_id
