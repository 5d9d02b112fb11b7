"""Policy tests: every change must keep every stored expected decision, or nothing is written."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from governance.cli.main import app as cli
from governance.config import Settings
from tests.conftest import settings_env
from tests.policy.conftest import Officers, Store, flat

AUDITOR_EXPORT = ["p", "role:auditor", "api:audit", "export", "allow"]
CLIENT_DECRYPT_DENY = ["p", "role:client", "api:records", "decrypt", "deny"]


def add_case(
    client: Any, headers: dict[str, str], subject: str, obj: str, action: str, expected: str
) -> Any:
    return client.post(
        "/v1/policy/tests",
        headers=headers,
        json={
            "subject": subject,
            "object": obj,
            "action": action,
            "expected": expected,
            "description": f"{subject} {expected} {action} {obj}",
        },
    )


def test_a_change_that_breaks_a_test_is_refused_with_the_failing_cases(
    app_client: Any, warden: Any, officers: Officers, store: Store
) -> None:
    warden.principal("ann", "auditor")
    assert (
        add_case(
            app_client, officers.olivia, "role:auditor", "api:audit", "export", "allow"
        ).status_code
        == 201
    )
    assert (
        add_case(app_client, officers.olivia, "ann", "api:audit", "export", "allow").status_code
        == 201
    )
    assert (
        add_case(
            app_client, officers.olivia, "role:client", "api:records", "decrypt", "deny"
        ).status_code
        == 201
    )
    cases = app_client.get("/v1/policy/tests", headers=officers.oscar).json()
    assert [c["subject"] for c in cases] == ["role:auditor", "ann", "role:client"]
    assert cases[0]["created_by"] == "olivia"

    head = store.head()
    r = app_client.post(
        "/v1/policy/changes",
        headers=officers.oscar,
        json={"remove": [AUDITOR_EXPORT, CLIENT_DECRYPT_DENY], "reason": "tidy up"},
    )
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"].endswith("/policy-tests-failed")
    # Without the deny nothing allows clients to decrypt: that case still passes.
    assert problem["detail"].startswith("2 of 3 policy tests fail")
    failing = {(f["subject"], f["expected"], f["actual"]) for f in problem["failing"]}
    assert failing == {("role:auditor", "allow", "deny"), ("ann", "allow", "deny")}
    assert store.head() == head

    # A role grant is a policy change too: revoking ann's role breaks the "ann" case.
    r = app_client.post(
        "/v1/roles/revoke",
        headers=officers.admin,
        json={"principal": "ann", "role": "auditor", "reason": "left"},
    )
    assert r.status_code == 409 and r.json()["failing"][0]["subject"] == "ann"
    assert store.head() == head

    # After removing the case, the revocation goes through.
    ann_case = cases[1]["id"]
    r = app_client.delete(
        f"/v1/policy/tests/{ann_case}", params={"reason": "ann left"}, headers=officers.olivia
    )
    assert r.status_code == 200
    r = app_client.post(
        "/v1/roles/revoke",
        headers=officers.admin,
        json={"principal": "ann", "role": "auditor", "reason": "left"},
    )
    assert r.status_code == 200, r.text

    # The run endpoint: everything passes on the current version.
    run = app_client.post("/v1/policy/tests/run", headers=officers.oscar).json()
    assert run["total"] == 2 and run["failed"] == 0 and run["policy_version"] == store.head()[0]


def test_client_removal_of_a_deny_fails_the_deny_case(
    app_client: Any, officers: Officers, store: Store
) -> None:
    # Removing the explicit deny alone does not make clients able to decrypt (nothing allows
    # it), so the case still passes; adding an allow for clients does break it.
    assert (
        add_case(
            app_client, officers.olivia, "role:client", "api:records", "decrypt", "deny"
        ).status_code
        == 201
    )
    head = store.head()
    r = app_client.post(
        "/v1/policy/changes",
        headers=officers.olivia,
        json={
            "add": [["p", "role:client", "api:records", "decrypt", "allow"]],
            "remove": [CLIENT_DECRYPT_DENY],
            "reason": "let clients decrypt",
        },
    )
    assert r.status_code == 409
    assert r.json()["failing"] == [
        {
            "id": 1,
            "subject": "role:client",
            "object": "api:records",
            "action": "decrypt",
            "expected": "deny",
            "actual": "allow",
            "reason": "allowed by rule [p, role:client, api:records, decrypt, allow]",
            "description": "role:client deny decrypt api:records",
        }
    ]
    assert store.head() == head


def test_cases_are_validated_and_must_hold_today(
    app_client: Any, officers: Officers, store: Store
) -> None:
    r = add_case(app_client, officers.olivia, "role:wizard", "api:audit", "read", "allow")
    assert r.status_code == 422 and "unknown role" in r.json()["detail"]
    r = add_case(app_client, officers.olivia, "ann", "api:audit", "teleport", "allow")
    assert r.status_code == 422 and "unknown action" in r.json()["detail"]
    r = add_case(app_client, officers.olivia, "ann,x", "api:audit", "read", "allow")
    assert r.status_code == 422
    r = add_case(app_client, officers.olivia, "ann", "api:audit", "read", "maybe")
    assert r.status_code == 422
    # Fails under the current policy: refused, listing why.
    r = add_case(app_client, officers.olivia, "role:client", "api:audit", "read", "allow")
    assert r.status_code == 409 and r.json()["failing"][0]["actual"] == "deny"
    assert (
        add_case(
            app_client, officers.olivia, "role:client", "api:audit", "read", "deny"
        ).status_code
        == 201
    )
    r = add_case(app_client, officers.olivia, "role:client", "api:audit", "read", "deny")
    assert r.status_code == 409 and "already covers" in r.json()["detail"]
    assert (
        app_client.delete(
            "/v1/policy/tests/99", params={"reason": "x"}, headers=officers.olivia
        ).status_code
        == 404
    )
    # Auditors may read the policy but not edit its tests.
    assert app_client.get("/v1/policy/tests", headers=officers.admin).status_code == 200
    assert (
        add_case(app_client, officers.admin, "role:client", "api:keys", "read", "deny").status_code
        == 403
    )


def test_cli_manages_and_runs_cases(
    app_client: Any, officers: Officers, settings: Settings, store: Store
) -> None:
    env = settings_env(settings)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["policy", *args], env=env)

    r = run(
        "test",
        "add",
        "role:auditor",
        "api:audit",
        "export",
        "allow",
        "--description",
        "auditors export",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(run("test", "list", "--json").output)[0]["expected"] == "allow"
    assert run("test", "run").exit_code == 0
    head = store.head()
    ran = run("test", "run", "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output) == {"version": head[0], "total": 1, "passed": 1, "failing": []}
    r = run("apply", "--remove", ", ".join(AUDITOR_EXPORT), "--reason", "oops")
    assert r.exit_code == 3  # refused by the policy tests
    assert "policy tests fail" in flat(r.output) and "expected allow, got deny" in flat(r.output)
    assert store.head() == head
    r = run("test", "remove", "1", "--reason", "no longer required")
    assert r.exit_code == 0, r.output
    assert json.loads(run("test", "list", "--json").output) == []
