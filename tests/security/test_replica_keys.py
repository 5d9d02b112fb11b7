"""Data keys across replicas and clients, attacked on live servers (issue 25, items 7, 9, 10).

- Racing the first predictions for new subjects on two replicas at once: one active key and
  one "first use" audit entry per subject, and the database itself refuses a second active key.
- Erasing a subject through one replica, then predicting for it on the other: a 200 under a
  fresh key, not a 503, and nothing logged at ERROR.
- Two client services sending the same subject id: two subjects (two keys), and one client's
  erasure does not erase the other's records, unless an officer put both in one namespace.

Each runs on SQLite and on PostgreSQL (the ``db_url`` fixture).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from governance.audit.models import AuditEntry
from governance.cli.server_process import ServerProcess
from governance.config import Settings
from governance.db import make_engine
from governance.kit.http import client as http_client
from governance.vault.blind_index import subject_index
from governance.vault.models import ACTIVE, DataKey
from governance.vault.providers import load_provider
from tests.conftest import (
    BACKENDS,
    ArtifactBuilder,
    LiveServer,
    auth,
    fresh_database,
    make_settings,
    seed_admin,
    settings_env,
)
from tests.factories import build_artifact
from tests.records.conftest import Setup, serve_toy

SUBJECTS = [f"racer-{i}" for i in range(10)]


@dataclass
class Replicas:
    """Two replicas on one database serving ``toy`` to the client ``app``."""

    servers: list[LiveServer]
    through: tuple[Setup, Setup]
    settings: Settings
    admin: str


@pytest.fixture(scope="module", params=BACKENDS)
def replicas(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_template: str | None,
) -> Iterator[Replicas]:
    """Shared by the module's replica tests, each with subjects of its own. Started one after
    the other (a loaded test machine takes long to start two at once)."""
    folder = tmp_path_factory.mktemp("replicas")
    with fresh_database(request.param, folder, sqlite_template, pg_template) as url:
        settings = make_settings(url, folder)
        admin = seed_admin(settings)
        pair = [LiveServer(settings, folder / f"server-{i}.log") for i in range(2)]
        try:
            for server in pair:
                server.start(timeout=180)
            with (
                http_client(base_url=pair[0].url, timeout=60) as a,
                http_client(base_url=pair[1].url, timeout=60) as b,
            ):

                def artifact(name: str, version: str) -> Path:
                    return build_artifact(folder / f"{name}-{version}", name=name, version=version)

                yield Replicas(pair, _toy_on_both(a, b, admin, artifact), settings, admin)
        finally:
            for server in pair:
                server.stop()


@pytest.fixture
def engine(replicas: Replicas) -> Iterator[Engine]:
    engine = make_engine(replicas.settings.resolved_database_url, read_only=True)
    yield engine
    engine.dispose()


def _ref(settings: Settings, scope: str, subject_id: str) -> str:
    keys = load_provider(settings.key_provider, path=settings.resolved_key_file)
    return subject_index(keys.blind_index_key(), scope, subject_id)


def _toy_on_both(
    a: httpx.Client, b: httpx.Client, admin_token: str, make_artifact: ArtifactBuilder
) -> tuple[Setup, Setup]:
    through_a = serve_toy(a, admin_token, make_artifact)
    through_b = Setup(b, through_a.factory, through_a.client, through_a.auditor, admin_token)
    deadline = time.monotonic() + 15
    # B follows the promotion and the policy change within its poll (or at once by NOTIFY).
    while through_b.predict().status_code != 200:
        assert time.monotonic() < deadline, "server B never served the toy model to the client"
        time.sleep(0.05)
    return through_a, through_b


def _errors_in(server: ServerProcess) -> list[str]:
    """ERROR lines and tracebacks in a server's log, but the database monitor's: its probe
    has a deadline that a loaded test machine can miss, whatever the keys do."""
    text = server.log_path.read_text(encoding="utf-8", errors="replace")
    return [
        line
        for line in text.splitlines()
        if (" ERROR " in line or "Traceback" in line) and "governance.db.health" not in line
    ]


def test_racing_first_uses_on_two_replicas_make_one_key_per_subject(
    replicas: Replicas, engine: Engine
) -> None:
    a_srv, b_srv = replicas.servers
    settings = replicas.settings
    through_a, through_b = replicas.through
    # The attack: the first predictions for each new subject sent to both replicas at once.
    barrier = threading.Barrier(len(SUBJECTS) * 4)
    statuses: list[int] = []

    def fire(setup: Setup, subject: str, i: int) -> None:
        barrier.wait()
        statuses.append(setup.predict(subject_id=subject, i=i).status_code)

    threads = [
        threading.Thread(target=fire, args=(setup, subject, i))
        for subject in SUBJECTS
        for i, setup in enumerate((through_a, through_b, through_a, through_b))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * len(threads)

    refs = {_ref(settings, "client:app", s) for s in SUBJECTS}
    with engine.connect() as db:
        keys = db.execute(
            select(DataKey.subject_ref, DataKey.state).where(DataKey.subject_ref.in_(refs))
        ).all()
        first_uses = [
            json.loads(c)
            for c in db.scalars(
                select(AuditEntry.canonical).where(AuditEntry.event_type == "key.create")
            )
        ]
    assert sorted(ref for ref, _ in keys) == sorted(refs)  # one key each, none left over
    assert {state for _, state in keys} == {ACTIVE}
    created = [
        e["resource"]["subject_ref"]
        for e in first_uses
        if e["details"]["reason"] == "first use" and e["resource"]["subject_ref"] in refs
    ]
    assert sorted(created) == sorted(refs)  # one "first use" entry per subject
    assert _errors_in(a_srv) == [] and _errors_in(b_srv) == []


def test_the_database_refuses_a_second_active_key_for_a_subject(
    settings: Settings, admin_token: str
) -> None:
    # The attack from inside: a replica (an older one, or a script) inserts its own active key
    # beside the subject's active key, as the racing replicas did.
    engine = make_engine(settings.resolved_database_url)
    try:
        row = {
            "subject_ref": "e" * 64,
            "scope": "client:app",
            "version": 1,
            "state": ACTIVE,
            "kek_id": "kek-1",
            "wrapped": b"\x00" * 60,
            "uses": 0,
        }
        with engine.begin() as db:
            db.execute(insert(DataKey).values(id="dek_first", **row))
        with pytest.raises(IntegrityError), engine.begin() as db:
            db.execute(insert(DataKey).values(id="dek_second", **{**row, "version": 2}))
        with engine.begin() as db:  # a retired key beside it is fine: one active at a time
            db.execute(
                insert(DataKey).values(
                    id="dek_old", **{**row, "version": 0, "state": "decrypt_only"}
                )
            )
            active = db.scalar(
                select(func.count())
                .select_from(DataKey)
                .where(DataKey.subject_ref == "e" * 64, DataKey.state == ACTIVE)
            )
        assert active == 1
    finally:
        engine.dispose()


def test_an_erasure_through_one_replica_costs_the_other_no_503(replicas: Replicas) -> None:
    _, b_srv = replicas.servers
    (through_a, through_b), admin_token = replicas.through, replicas.admin
    a = through_a.http
    before = through_b.predict(subject_id="leaver")  # B caches the subject's key
    assert before.status_code == 200, before.text

    erased = a.delete("/v1/subjects/leaver", headers=auth(admin_token))
    assert erased.status_code == 200, erased.text
    assert erased.json()["records_affected"] == 1

    # At once, and again: B answers under a fresh key; the old record stays erased.
    for i in range(3):
        after = through_b.predict(subject_id="leaver", i=i)
        assert after.status_code == 200, after.text
        assert through_b.decrypt(after.json()["record_id"]).status_code == 200
    assert through_b.decrypt(before.json()["record_id"]).status_code == 410
    assert _errors_in(b_srv) == []


# A fresh server: the record listing it reads holds only this test's records.
def test_two_clients_sending_one_subject_id_get_two_subjects(
    live_server: LiveServer, admin_token: str, make_artifact: ArtifactBuilder
) -> None:
    with http_client(base_url=live_server.url, timeout=60) as http:
        setup = serve_toy(http, admin_token, make_artifact)
        other = setup.factory.principal("app2", "client", kind="service")
        mine = setup.predict(subject_id="same-person")
        theirs = setup.predict(subject_id="same-person", token=other)
        assert (mine.status_code, theirs.status_code) == (200, 200)
        listed = {r["id"]: r for r in http.get("/v1/records", headers=auth(setup.auditor)).json()}
        my_row, their_row = listed[mine.json()["record_id"]], listed[theirs.json()["record_id"]]
        assert my_row["subject_ref"] != their_row["subject_ref"]
        assert my_row["dek_id"] != their_row["dek_id"]

        # Whose subject? Both clients hold the id: an erasure that does not say is refused.
        ambiguous = http.delete("/v1/subjects/same-person", headers=auth(admin_token))
        assert ambiguous.status_code == 409, ambiguous.text
        assert ambiguous.headers["content-type"].startswith("application/problem+json")
        assert ambiguous.json()["scopes"] == ["client:app", "client:app2"]
        for query in ("client=nobody", "namespace=nowhere"):
            unknown = http.delete(f"/v1/subjects/same-person?{query}", headers=auth(admin_token))
            assert unknown.status_code == 422, unknown.text
        both = http.delete(
            "/v1/subjects/same-person?client=app&all_clients=true", headers=auth(admin_token)
        )
        assert both.status_code == 400, both.text
        assert (
            http.delete(
                "/v1/subjects/same-person?all_clients=yes", headers=auth(admin_token)
            ).status_code
            == 422
        )

        # App's erasure erases app's subject only.
        erased = http.delete("/v1/subjects/same-person?client=app", headers=auth(admin_token))
        assert erased.status_code == 200, erased.text
        assert erased.json()["dek_ids"] == [my_row["dek_id"]]
        assert setup.decrypt(mine.json()["record_id"]).status_code == 410
        assert setup.decrypt(theirs.json()["record_id"]).status_code == 200
        # Now only app2 holds the id: naming nobody is enough.
        rest = http.delete("/v1/subjects/same-person", headers=auth(admin_token))
        assert rest.status_code == 200 and rest.json()["dek_ids"] == [their_row["dek_id"]]


# A server of its own: the namespace is configured when it starts.
@pytest.fixture
def shared_server(settings: Settings, admin_token: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A live server whose officer put the clients ``app`` and ``app2`` in one namespace."""
    policies = tmp_path / "policies"
    shutil.copytree(settings.policies_dir, policies)
    (policies / "subjects.yaml").write_text(
        "format: warden.subjects/1\nshared:\n  patients:\n    clients: [app, app2]\n",
        encoding="utf-8",
    )
    env: dict[str, Any] = {**settings_env(settings), "WARDEN_POLICIES_DIR": str(policies)}
    server = ServerProcess(env, tmp_path / "shared.log")
    server.start(timeout=180)
    yield server
    server.stop()


def test_clients_in_a_shared_namespace_share_their_subjects(
    shared_server: ServerProcess, admin_token: str, make_artifact: ArtifactBuilder
) -> None:
    with http_client(base_url=shared_server.url, timeout=60) as http:
        setup = serve_toy(http, admin_token, make_artifact)
        other = setup.factory.principal("app2", "client", kind="service")
        mine = setup.predict(subject_id="same-person")
        theirs = setup.predict(subject_id="same-person", token=other)
        assert (mine.status_code, theirs.status_code) == (200, 200)
        listed = {r["id"]: r for r in http.get("/v1/records", headers=auth(setup.auditor)).json()}
        my_row, their_row = listed[mine.json()["record_id"]], listed[theirs.json()["record_id"]]
        assert my_row["dek_id"] == their_row["dek_id"]  # one subject, one key

        erased = http.delete(
            "/v1/subjects/same-person?namespace=patients", headers=auth(admin_token)
        )
        assert erased.status_code == 200, erased.text
        assert erased.json()["records_affected"] == 2
        for record in (mine, theirs):
            assert setup.decrypt(record.json()["record_id"]).status_code == 410
