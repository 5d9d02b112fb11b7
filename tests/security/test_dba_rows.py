"""Rows that grant power, written by a database administrator around the service (issue 27,
item 4): each is refused by the live server that loads it and named by ``warden audit verify``.

The administrator can write every table but holds neither the signing key nor a key of an
officer: they insert a policy version (an allow rule, a role grant) and bump the change counter,
insert an API key row, flip a model's serving stage, edit the fairness thresholds. Each runs on
SQLite and on PostgreSQL (the ``db_url`` fixture), against a real ``warden serve``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from governance.audit import log as audit_log
from governance.audit.cli import app as audit_app
from governance.config import Settings
from governance.db import make_engine, state
from governance.fairness.models import ThresholdVersion
from governance.identity.models import ApiKey, Principal
from governance.identity.tokens import new_token, token_hash
from governance.kit.context import cli_context
from governance.kit.http import client as http_client
from governance.policy.models import PolicyVersion
from governance.policy.rules import Rule, canonical, digest, load_rules
from governance.registry.models import REGISTERED, SERVING, ModelVersion
from tests.conftest import ArtifactBuilder, LiveServer, WardenFactory, auth, settings_env
from tests.factories import upload_body
from tests.records.conftest import Setup, serve_toy

runner = CliRunner()
# Longer than a poll period and a NOTIFY: a server that would follow the row has followed it.
SETTLE = 1.5


# Fresh per test: each tampers with rows by hand, which the database keeps and verify reports.
@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with http_client(base_url=live_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def dba(settings: Settings) -> Iterator[Engine]:
    """The database administrator's own connection: every table, no keys."""
    engine = make_engine(settings.resolved_database_url)
    yield engine
    engine.dispose()


def as_dba(engine: Engine, work: Callable[[Session], Any]) -> Any:
    with Session(engine) as session, session.begin():
        return work(session)


def verify(settings: Settings) -> tuple[int, str]:
    """``warden audit verify``: exit 4 when verification fails (docs/cli.md)."""
    result = runner.invoke(audit_app, ["verify"], env=settings_env(settings))
    return result.exit_code, result.output


def verifies_once_signed(settings: Settings) -> bool:
    """``verify`` passes once the server has signed its quiet tail (every second in tests)."""
    deadline = time.monotonic() + 15
    while (result := verify(settings))[0] != 0:
        assert time.monotonic() < deadline, result[1]
        time.sleep(0.1)
    return True


def readiness(http: httpx.Client) -> httpx.Response:
    return http.get("/readyz")


def wait_not_ready(http: httpx.Client, words: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        r = readiness(http)
        if r.status_code == 503 and words in r.text:
            return dict(r.json())
        assert time.monotonic() < deadline, f"still {r.status_code}: {r.text}"
        time.sleep(0.05)


def insert_policy_version(engine: Engine, *extra: list[str]) -> int:
    """A new version with ``extra`` rules, as the service would write it, and the counter."""

    def work(session: Session) -> int:
        current = session.scalars(
            select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1)
        ).one()
        rules = load_rules(current.rules) + [Rule(r[0], tuple(r[1:])) for r in extra]
        body = canonical(rules)
        session.execute(
            insert(PolicyVersion).values(
                version=current.version + 1,
                parent=current.version,
                created_at=datetime.now(UTC),
                author="officer-fixture",
                approved_by="officer-second",
                reason="routine change",
                kind="change",
                rules=body,
                sha256=digest(body),
                diff="{}",
            )
        )
        state.bump(session, state.POLICY)
        return current.version + 1

    return int(as_dba(engine, work))


def test_a_policy_version_inserted_by_hand_is_not_installed(
    settings: Settings, admin_token: str, http: httpx.Client, dba: Engine
) -> None:
    factory = WardenFactory(http, admin_token)
    stranger = factory.principal("nobody", kind="service")
    assert http.get("/v1/principals", headers=auth(stranger)).status_code == 403
    assert verifies_once_signed(settings)

    version = insert_policy_version(dba, ["p", "nobody", "api:principals", "read", "allow"])
    body = wait_not_ready(http, f"policy version {version} is not anchored")
    assert "allow" not in body["detail"]  # names the row, never its content
    time.sleep(SETTLE)
    assert http.get("/v1/principals", headers=auth(stranger)).status_code == 403
    # The last good version goes on deciding everything else.
    assert http.get("/v1/principals", headers=auth(admin_token)).status_code == 200

    code, out = verify(settings)
    assert code == 4 and f"policy version {version} is not anchored" in out, out


def test_a_role_grant_inserted_by_hand_gives_no_power(
    settings: Settings, admin_token: str, http: httpx.Client, dba: Engine
) -> None:
    factory = WardenFactory(http, admin_token)
    stranger = factory.principal("nobody", kind="service")

    version = insert_policy_version(dba, ["g", "nobody", "role:admin"])
    wait_not_ready(http, f"policy version {version} is not anchored")
    time.sleep(SETTLE)
    assert http.get("/v1/principals", headers=auth(stranger)).status_code == 403
    r = http.post("/v1/keys", json={"principal": "nobody"}, headers=auth(stranger))
    assert r.status_code == 403

    code, out = verify(settings)
    assert code == 4 and f"policy version {version}" in out, out


def test_an_api_key_row_inserted_by_hand_does_not_authenticate(
    settings: Settings, admin_token: str, http: httpx.Client, dba: Engine
) -> None:
    assert http.get("/v1/principals", headers=auth(admin_token)).status_code == 200
    key_id, token = new_token()

    def work(session: Session) -> None:
        admin_id = session.scalars(select(Principal.id).where(Principal.name == "admin")).one()
        session.execute(
            insert(ApiKey).values(
                key_id=key_id,
                token_hash=token_hash(token),
                principal_id=admin_id,
                created_at=datetime.now(UTC),
                created_by="admin",
            )
        )
        state.bump(session, state.IDENTITY)

    as_dba(dba, work)
    time.sleep(SETTLE)
    r = http.get("/v1/principals", headers=auth(token))
    assert r.status_code == 401, r.text
    wait_not_ready(http, f"API key {key_id} is not anchored")
    # The admin's own key, issued through the service, still opens the same doors.
    assert http.get("/v1/principals", headers=auth(admin_token)).status_code == 200

    code, out = verify(settings)
    assert code == 4 and f"API key {key_id} is not anchored" in out, out
    assert token not in out


def test_a_revocation_undone_by_hand_stays_revoked(
    settings: Settings, admin_token: str, http: httpx.Client, dba: Engine
) -> None:
    factory = WardenFactory(http, admin_token)
    service = factory.principal("svc", kind="service")
    keys = http.get("/v1/keys", headers=auth(admin_token)).json()
    key_id = next(k["key_id"] for k in keys if k["principal"] == "svc")
    assert http.post(f"/v1/keys/{key_id}/revoke", headers=auth(admin_token)).status_code == 200

    def work(session: Session) -> None:
        session.execute(
            update(ApiKey).where(ApiKey.key_id == key_id).values(revoked_at=None, revoked_by=None)
        )

    as_dba(dba, work)
    time.sleep(SETTLE)
    assert http.get("/v1/models", headers=auth(service)).status_code == 401
    code, out = verify(settings)
    assert code == 4 and f"API key {key_id} is not anchored" in out, out


@pytest.fixture
def served(http: httpx.Client, admin_token: str, make_artifact: ArtifactBuilder) -> Setup:
    return serve_toy(http, admin_token, make_artifact)


def test_a_serving_stage_flipped_by_hand_changes_nothing(
    settings: Settings,
    served: Setup,
    http: httpx.Client,
    dba: Engine,
    make_artifact: ArtifactBuilder,
) -> None:
    engineer = served.factory.principal("eng2", "ml_engineer")
    r = http.post("/v1/models", json=upload_body(make_artifact("toy", "2")), headers=auth(engineer))
    assert r.status_code == 201, r.text
    first = served.predict()
    assert first.status_code == 200 and first.json()["model_version"] == "1", first.text
    assert verifies_once_signed(settings)

    def serve(version: str) -> Callable[[Session], None]:
        def work(session: Session) -> None:
            toy = update(ModelVersion).where(ModelVersion.name == "toy")
            session.execute(toy.values(stage=REGISTERED))
            session.execute(toy.where(ModelVersion.version == version).values(stage=SERVING))
            state.bump(session, state.MODELS)

        return work

    as_dba(dba, serve("2"))
    wait_not_ready(http, "the serving stage of model toy is not anchored")
    time.sleep(SETTLE)
    for i in range(3):
        r = served.predict(i=i)
        assert r.status_code == 200 and r.json()["model_version"] == "1", r.text

    code, out = verify(settings)
    assert code == 4 and "the serving stage of model toy is not anchored" in out, out

    # Put back as it was, the stage is anchored again and the server is ready.
    as_dba(dba, serve("1"))
    deadline = time.monotonic() + 15
    while readiness(http).status_code != 200:
        assert time.monotonic() < deadline, readiness(http).text
        time.sleep(0.05)
    assert verifies_once_signed(settings)


def test_fairness_thresholds_edited_by_hand_are_not_used(
    settings: Settings, admin_token: str, http: httpx.Client, dba: Engine
) -> None:
    factory = WardenFactory(http, admin_token)
    officer = factory.officer_token()
    r = http.get("/v1/fairness/thresholds", headers=auth(officer))
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    assert verifies_once_signed(settings)

    def work(session: Session) -> None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text(
                    "DROP TRIGGER IF EXISTS fairness_threshold_versions_append_only"
                    " ON fairness_threshold_versions"
                )
            )
        else:
            session.execute(text("DROP TRIGGER IF EXISTS fairness_threshold_versions_no_update"))
        lax = '{"defaults":{},"min_group_size":1,"models":{}}'
        session.execute(
            update(ThresholdVersion).where(ThresholdVersion.version == version).values(document=lax)
        )

    as_dba(dba, work)
    r = http.get("/v1/fairness/thresholds", headers=auth(officer))
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert f"fairness thresholds version {version} is not anchored" in r.json()["detail"]

    code, out = verify(settings)
    assert code == 4 and f"fairness thresholds version {version} is not anchored" in out, out


def test_rows_from_before_anchoring_are_anchored_once_by_the_operator(
    settings: Settings, admin_token: str, dba: Engine
) -> None:
    """An upgraded database: a version whose entry predates content hashes is anchored by
    ``warden audit anchor`` (itself audited); a row with no entry at all is not."""

    def legacy(session: Session) -> int:
        current = session.scalars(
            select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1)
        ).one()
        rules = [
            *load_rules(current.rules),
            Rule("p", ("role:auditor", "api:models", "list", "allow")),
        ]
        body = canonical(rules)
        version = current.version + 1
        session.add(
            PolicyVersion(
                version=version,
                parent=current.version,
                author="officer",
                approved_by=None,
                reason="before the upgrade",
                kind="change",
                rules=body,
                sha256=digest(body),
                diff="{}",
            )
        )
        # What the service wrote before entries named content hashes.
        audit_log.append(
            session,
            [
                cli_context("officer").event(
                    "policy.change",
                    "change",
                    resource={"policy_version": version},
                    policy_version=version,
                    details={"parent": current.version, "sha256": digest(body)},
                )
            ],
        )
        return version

    version = int(as_dba(dba, legacy))
    key_id, token = new_token()

    def stray_key(session: Session) -> None:
        admin_id = session.scalars(select(Principal.id).where(Principal.name == "admin")).one()
        session.add(ApiKey(key_id=key_id, token_hash=token_hash(token), principal_id=admin_id))

    as_dba(dba, stray_key)
    code, out = verify(settings)
    assert code == 4 and f"policy version {version} is not anchored" in out, out

    result = runner.invoke(audit_app, ["anchor"], env=settings_env(settings))
    assert result.exit_code == 1, result.output
    assert f"anchored: policy version {version}" in result.output
    assert f"API key {key_id} is not anchored" in result.output
    assert "1 rows anchored, 1 left unanchored" in result.output

    code, out = verify(settings)
    assert code == 4 and f"policy version {version}" not in out and key_id in out, out
    with Session(dba) as session:
        last = session.execute(
            text("SELECT canonical FROM audit_entries ORDER BY seq DESC LIMIT 1")
        ).scalar_one()
    assert '"event_type":"audit.anchor"' in last and f'"policy_version":{version}' in last
