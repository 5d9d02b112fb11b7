"""Impact analysis: a proposed change replayed over the audited requests of the last N days."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from governance.cli.main import app as cli
from governance.config import Settings
from tests.conftest import auth, settings_env
from tests.policy.conftest import Officers, Store

AUDITOR_POLICY_READ = ["p", "role:auditor", "api:policy", "read", "allow"]


def traffic(client: Any, warden: Any) -> None:
    ann = auth(warden.principal("ann", "auditor"))
    amy = auth(warden.principal("amy", "auditor"))
    bob = auth(warden.principal("bob", "client"))
    for _ in range(3):
        assert client.get("/v1/policy", headers=ann).status_code == 200
    assert client.get("/v1/policy", headers=amy).status_code == 200
    for _ in range(2):
        assert client.get("/v1/policy/role-timeline", headers=bob).status_code == 403
    assert client.get("/v1/policy", headers=bob).status_code == 403


def test_impact_reports_who_gains_and_loses_what(
    app_client: Any, warden: Any, officers: Officers, store: Store
) -> None:
    traffic(app_client, warden)
    head = store.head()
    changes_before = len(store.entries("policy.change"))
    r = app_client.post(
        "/v1/policy/impact",
        headers=officers.olivia,
        json={
            "add": [["g", "bob", "role:auditor"]],
            "remove": [AUDITOR_POLICY_READ],
            "days": 7,
            "examples": 3,
        },
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["current_version"] == head[0] and report["days"] == 7
    assert report["entries_scanned"] > 8 and not report["truncated"]
    assert report["diff"] == {
        "added": [["g", "bob", "role:auditor"]],
        "removed": [AUDITOR_POLICY_READ],
    }
    lost = {g["principal"]: g for g in report["lost"]}
    assert set(lost) == {"ann", "amy"}
    assert lost["ann"]["requests"] == 3 and lost["amy"]["requests"] == 1
    assert report["lost"][0]["principal"] == "ann"  # most affected first
    assert lost["ann"]["examples"][0]["object"] == "api:policy"
    assert lost["ann"]["examples"][0]["action"] == "read"
    # bob gains the role timeline (auditors may read roles); the explicit deny on
    # api:policy for clients still wins, so that is not a gain.
    assert [g["principal"] for g in report["gained"]] == ["bob"]
    assert report["gained"][0]["examples"] == [
        {
            "object": "api:roles",
            "action": "read",
            "requests": 2,
            "last_seen": report["gained"][0]["examples"][0]["last_seen"],
        }
    ]
    assert report["totals"] == {
        "principals_gaining": 1,
        "principals_losing": 2,
        "requests_gaining": 2,
        "requests_losing": 4,
    }
    # A dry run writes nothing.
    assert store.head() == head
    assert len(store.entries("policy.change")) == changes_before


def test_impact_of_a_rollback_and_of_invalid_changes(
    app_client: Any, warden: Any, officers: Officers, store: Store
) -> None:
    traffic(app_client, warden)
    before_grant = store.head()[0]
    r = app_client.post(
        "/v1/policy/changes",
        headers=officers.olivia,
        json={"add": [["g", "bob", "role:auditor"]], "reason": "bob audits now"},
    )
    # The auditor role reads the audit log: pending until a second officer approves.
    assert r.status_code == 202, r.text
    r = app_client.post(
        f"/v1/policy/proposals/{r.json()['id']}/approve",
        json={},
        headers=auth(warden.officer_token()),
    )
    assert r.status_code == 201, r.text
    r = app_client.post(
        "/v1/policy/impact", headers=officers.olivia, json={"to_version": before_grant, "days": 1}
    )
    assert r.status_code == 200, r.text
    assert [g["principal"] for g in r.json()["lost"]] == ["bob"]
    r = app_client.post(
        "/v1/policy/impact", headers=officers.olivia, json={"add": [["g", "bob", "role:wizard"]]}
    )
    assert r.status_code == 422
    r = app_client.post(
        "/v1/policy/impact",
        headers=officers.olivia,
        json={"add": [["g", "amy", "role:client"]], "to_version": 1},
    )
    assert r.status_code == 422
    # Impact analysis reads who accessed what: compliance officers only.
    r = app_client.post(
        "/v1/policy/impact", headers=officers.admin, json={"add": [["g", "amy", "role:client"]]}
    )
    assert r.status_code == 403


def test_impact_from_the_cli(
    app_client: Any, warden: Any, officers: Officers, settings: Settings
) -> None:
    traffic(app_client, warden)
    result = CliRunner().invoke(
        cli,
        ["policy", "impact", "--remove", ", ".join(AUDITOR_POLICY_READ), "--days", "3", "--json"],
        env=settings_env(settings),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {g["principal"] for g in report["lost"]} == {"ann", "amy"}
    text = CliRunner().invoke(
        cli,
        ["policy", "impact", "--remove", ", ".join(AUDITOR_POLICY_READ)],
        env=settings_env(settings),
    )
    assert text.exit_code == 0 and "would LOSE access" in text.output


def test_entries_name_their_request_both_ways() -> None:
    from governance.policy.impact import request_of

    guarded = {
        "actor": {"name": "ann"},
        "action": "GET /v1/policy",
        "resource": {"object": "api:policy", "action": "read", "path": "/v1/policy"},
    }
    served = {
        "actor": {"name": "bob"},
        "action": "predict",
        "resource": {"model": "credit", "version": "3"},
    }
    anonymous = {"actor": {"name": None}, "action": "GET /v1/policy", "resource": {}}
    assert request_of(json.dumps(guarded)) == ("ann", "api:policy", "read")
    assert request_of(json.dumps(served)) == ("bob", "model:credit", "predict")
    assert request_of(json.dumps(anonymous)) is None
    assert request_of("not json") is None
