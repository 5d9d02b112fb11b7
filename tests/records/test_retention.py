"""Retention: the policy file, the audited purge, and audit entries that outlive the records."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from governance.api.app import create_app
from governance.audit.models import AuditEntry
from governance.config import REPO_ROOT, Settings
from governance.db.base import utcnow
from governance.kit.context import cli_context
from governance.records.errors import RetentionPolicyError
from governance.records.models import Record
from governance.records.retention import RetentionPolicy, load_retention
from governance.records.service import records
from governance.runtime import Runtime
from tests.conftest import auth
from tests.factories import policies_copy
from tests.records.conftest import Setup


def test_shipped_policy_keeps_audit_entries_at_least_183_days() -> None:
    policy = load_retention(REPO_ROOT / "policies")
    assert policy.audit_min_days >= 183
    assert policy.default_days is not None and policy.default_days >= 1
    assert policy.as_dict()["audit"]["purged_with_records"] is False


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        (
            "records: {default_days: 0}\naudit: {min_days: 30}\n",
            ["'format'", "records.default_days", "at least 183"],
        ),
        (
            "format: warden.retention/1\nrecords: {default_days: 30, models: {toy: -1}}\n",
            ["records.models.toy"],
        ),
        ("format: warden.retention/1\nrecords: []\n", ["'records' must be a mapping"]),
        (": : :\n", ["not valid YAML"]),
    ],
)
def test_invalid_policy_lists_every_problem(tmp_path: Path, body: str, problems: list[str]) -> None:
    (tmp_path / "retention.yaml").write_text(body)
    with pytest.raises(RetentionPolicyError) as info:
        load_retention(tmp_path)
    for problem in problems:
        assert problem in info.value.message


def test_missing_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RetentionPolicyError, match="cannot read"):
        load_retention(tmp_path)


def test_purge_deletes_expired_records_per_model_and_is_audited(
    served: Setup, runtime_of: Runtime
) -> None:
    ids = [served.predict(subject_id=f"p-{i}", i=i).json()["record_id"] for i in range(4)]
    now = utcnow()
    with runtime_of.sessions.begin() as session:
        for record_id, age in zip(ids, (200, 40, 10, 0), strict=True):
            session.execute(
                update(Record)
                .where(Record.id == record_id)
                .values(created_at=now - timedelta(days=age))
            )
        audit_before = session.scalar(select(func.count()).select_from(AuditEntry))

    policy = RetentionPolicy(default_days=90, model_days={"toy": 30})
    with runtime_of.sessions.begin() as session:
        dry = records.purge(session, cli_context(), policy, now=now, dry_run=True)
    assert dry.deleted == {"toy": 2} and dry.dry_run
    with runtime_of.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Record)) == 4

    with runtime_of.sessions.begin() as session:
        done = records.purge(session, cli_context(), policy, now=now)
    assert done.deleted == {"toy": 2} and done.total == 2
    with runtime_of.sessions() as session:
        left = set(session.scalars(select(Record.id)))
        assert left == set(ids[2:])
        # Audit entries are never purged: the two purges added entries, none went away.
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == audit_before + 2
        (entry,) = [
            json.loads(c)
            for c in session.scalars(
                select(AuditEntry.canonical)
                .where(AuditEntry.event_type == "records.purge")
                .order_by(AuditEntry.seq.desc())
                .limit(1)
            )
        ]
    assert entry["details"]["deleted"] == {"toy": 2} and entry["details"]["dry_run"] is False
    assert entry["details"]["retention"]["audit"]["purged_with_records"] is False

    # A model kept until erased is never purged.
    with runtime_of.sessions.begin() as session:
        kept = records.purge(
            session,
            cli_context(),
            RetentionPolicy(default_days=None),
            now=now + timedelta(days=3650),
        )
    assert kept.total == 0

    # Through the API: the shipped 90-day default removes nothing left here; client refused.
    r = served.http.post("/v1/records/purge", json={}, headers=auth(served.admin))
    assert r.status_code == 200 and r.json()["total"] == 0 and r.json()["audit_min_days"] >= 183
    assert (
        served.http.post("/v1/records/purge", json={}, headers=auth(served.client)).status_code
        == 403
    )


def test_a_retention_policy_broken_while_serving_fails_closed_with_503(
    settings: Settings, admin_token: str, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    policies = policies_copy(tmp_path)
    app = create_app(settings.model_copy(update={"policies_dir": policies}))
    with TestClient(app, raise_server_exceptions=False) as http:
        runtime: Runtime = app.state.runtime
        (policies / "retention.yaml").write_text(": : :\n")
        r = http.post("/v1/records/purge", json={}, headers=auth(admin_token))
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert (
            problem["type"].endswith("/retention-policy") and "not valid YAML" in problem["detail"]
        )
        # Refused before anything was purged, and the refusal is in the log.
        with runtime.sessions() as session:
            purges = session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.event_type == "records.purge")
            )
            last_call = json.loads(
                session.scalars(
                    select(AuditEntry.canonical)
                    .where(AuditEntry.event_type == "api.call")
                    .order_by(AuditEntry.seq.desc())
                    .limit(1)
                ).one()
            )
        assert purges == 0
        assert last_call["action"] == "POST /v1/records/purge" and last_call["outcome"] == 503
