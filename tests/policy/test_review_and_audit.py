"""Access review from policy history, and every policy change audited with its reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from governance.cli.main import app as cli
from governance.config import Settings
from tests.conftest import auth, settings_env
from tests.policy.conftest import Officers, Store


def grant(
    client: Any,
    headers: dict[str, str],
    who: str,
    role: str,
    reason: str,
    revoke: bool = False,
    approver: dict[str, str] | None = None,
) -> None:
    r = client.post(
        f"/v1/roles/{'revoke' if revoke else 'grant'}",
        headers=headers,
        json={"principal": who, "role": role, "reason": reason},
    )
    if r.status_code == 202:  # a privileged role: a compliance officer approves the grant
        assert approver is not None, r.text
        r = client.post(
            f"/v1/policy/proposals/{r.json()['proposal']}/approve", json={}, headers=approver
        )
        assert r.status_code == 201, r.text
        return
    assert r.status_code == 200, r.text


def test_role_timeline_from_history(
    app_client: Any, warden: Any, officers: Officers, settings: Settings
) -> None:
    warden.principal("ann")
    first_officer = auth(warden.officer_token())
    grant(app_client, officers.admin, "ann", "auditor", "Q1 audit", approver=first_officer)
    grant(app_client, officers.admin, "ann", "auditor", "audit over", revoke=True)
    grant(app_client, officers.admin, "ann", "auditor", "Q2 audit", approver=first_officer)
    grant(app_client, officers.admin, "ann", "ml_engineer", "project x")
    # A role hierarchy edge is listed only on request. (An officer cannot make her own role
    # inherit another; this edge widens the clients' power over the audit log, so a second
    # officer approves it.)
    r = app_client.post(
        "/v1/policy/changes",
        headers=officers.olivia,
        json={"add": [["g", "role:client", "role:auditor"]], "reason": "clients audit"},
    )
    assert r.status_code == 202, r.text
    r = app_client.post(
        f"/v1/policy/proposals/{r.json()['id']}/approve", json={}, headers=officers.oscar
    )
    assert r.status_code == 201, r.text

    r = app_client.get(
        "/v1/policy/role-timeline", params={"principal": "ann"}, headers=officers.olivia
    )
    assert r.status_code == 200, r.text
    periods = r.json()
    assert [(p["role"], p["revoked_at"] is None) for p in periods] == [
        ("auditor", False),
        ("auditor", True),
        ("ml_engineer", True),
    ]
    first, second, third = periods
    assert first["granted_by"] == "admin" and first["grant_reason"] == "Q1 audit"
    assert first["revoked_by"] == "admin" and first["revoke_reason"] == "audit over"
    assert first["revoked_in_version"] == first["granted_in_version"] + 1
    assert first["granted_at"] <= first["revoked_at"] <= second["granted_at"]
    assert second["grant_reason"] == "Q2 audit" and third["member_kind"] == "principal"

    auditors = app_client.get(
        "/v1/policy/role-timeline", params={"role": "auditor"}, headers=officers.admin
    ).json()
    assert {p["member"] for p in auditors} == {"ann"}
    with_roles = app_client.get(
        "/v1/policy/role-timeline",
        params={"role": "auditor", "include_roles": True},
        headers=officers.admin,
    ).json()
    assert {p["member"] for p in with_roles} == {"ann", "role:client"}
    everyone = app_client.get("/v1/policy/role-timeline", headers=officers.admin).json()
    assert {"admin", "olivia", "oscar", "ann"} <= {p["member"] for p in everyone}
    # Needs api:roles read: ml engineers do not have it.
    engineer = auth(warden.principal("eve", "ml_engineer"))
    assert app_client.get("/v1/policy/role-timeline", headers=engineer).status_code == 403

    out = CliRunner().invoke(
        cli, ["policy", "timeline", "--principal", "ann", "--json"], env=settings_env(settings)
    )
    assert out.exit_code == 0, out.output
    assert [p["role"] for p in json.loads(out.output)] == ["auditor", "auditor", "ml_engineer"]


def test_every_change_is_audited_with_its_reason(
    app_client: Any, warden: Any, officers: Officers, store: Store
) -> None:
    rule = ["p", "role:auditor", "api:datasets", "read", "allow"]
    r = app_client.post(
        "/v1/policy/changes", headers=officers.olivia, json={"add": [rule], "reason": "ticket 42"}
    )
    added = r.json()
    r = app_client.post(
        "/v1/policy/rollback",
        headers=officers.oscar,
        json={"to_version": added["parent"], "reason": "ticket 43"},
    )
    rolled = r.json()
    r = app_client.post(
        "/v1/policy/proposals", headers=officers.olivia, json={"add": [rule], "reason": "ticket 44"}
    )
    proposal = r.json()
    r = app_client.post(
        f"/v1/policy/proposals/{proposal['id']}/approve",
        json={"reason": "checked"},
        headers=officers.oscar,
    )
    approved = r.json()
    app_client.post(
        "/v1/policy/tests",
        headers=officers.olivia,
        json={
            "subject": "role:auditor",
            "object": "api:datasets",
            "action": "read",
            "expected": "allow",
        },
    )
    app_client.delete("/v1/policy/tests/1", params={"reason": "ticket 45"}, headers=officers.olivia)

    changes = {e["policy_version"]: e for e in store.entries("policy.change")}
    with store.sessions() as session:
        from governance.policy.service import policy

        versions = policy.history(session)
    # Every version, the seed and role grants included, has its audit entry with its reason.
    assert set(changes) == {v.version for v in versions}
    for v in versions:
        entry = changes[v.version]
        assert entry["reason"] == v.reason[:500]
        assert entry["details"]["sha256"] == v.sha256
        assert entry["action"] == v.kind
    assert changes[added["version"]]["actor"]["name"] == "olivia"
    assert changes[added["version"]]["details"]["diff"]["added"] == [rule]
    assert changes[rolled["version"]]["reason"] == "ticket 43"
    assert changes[rolled["version"]]["details"]["rollback_to"] == added["parent"]
    approval = changes[approved["version"]]
    assert approval["actor"]["name"] == "oscar"
    assert approval["details"]["author"] == "olivia"
    assert approval["details"]["approved_by"] == "oscar"
    assert approval["reason"] == "ticket 44"

    # The test's own proposal (the officers' role grants were proposals of the admin's).
    proposals = [
        e
        for e in store.entries("policy.proposal")
        if e["resource"] == {"policy_proposal": proposal["id"]}
    ]
    assert [(e["action"], e["actor"]["name"]) for e in proposals] == [
        ("propose", "olivia"),
        ("approve", "oscar"),
    ]
    assert proposals[0]["reason"] == "ticket 44" and proposals[1]["reason"] == "checked"
    tests = store.entries("policy.test")
    assert [e["action"] for e in tests] == ["add", "remove"]
    assert tests[1]["reason"] == "ticket 45"


@pytest.mark.parametrize("bad", ["tests", "invalid", "approval"])
def test_a_refused_change_is_not_audited_as_a_change(
    app_client: Any, officers: Officers, store: Store, bad: str
) -> None:
    app_client.post(
        "/v1/policy/tests",
        headers=officers.olivia,
        json={
            "subject": "role:auditor",
            "object": "api:audit",
            "action": "export",
            "expected": "allow",
        },
    )
    before = (store.head(), len(store.entries("policy.change")))
    if bad == "tests":
        body = {"remove": [["p", "role:auditor", "api:audit", "export", "allow"]]}
        url, who, status = "/v1/policy/changes", officers.olivia, 409
    elif bad == "invalid":
        body = {"add": [["g", "x", "role:nope"]]}
        url, who, status = "/v1/policy/changes", officers.olivia, 422
    else:
        proposal = app_client.post(
            "/v1/policy/proposals",
            headers=officers.olivia,
            json={"add": [["g", "x", "role:auditor"]], "reason": "r"},
        ).json()
        body = {}
        url, who, status = f"/v1/policy/proposals/{proposal['id']}/approve", officers.olivia, 409
    r = app_client.post(url, headers=who, json={**body, "reason": "r"} if body else {})
    assert r.status_code == status, r.text
    assert (store.head(), len(store.entries("policy.change"))) == before
    # The refused call itself is in the log (as an api.call with its outcome).
    calls = [e for e in store.entries("api.call") if e["outcome"] == status]
    assert calls and calls[-1]["actor"]["name"] == "olivia"
