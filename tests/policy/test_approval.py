"""Separation of duties: with a second approval required, a change waits for another officer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from governance.cli.main import app as cli
from governance.config import Settings
from tests.conftest import settings_env
from tests.policy.conftest import Officers, Store, flat

AUDITOR_DATASETS = ["p", "role:auditor", "api:datasets", "read", "allow"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"require_second_approval": True})


def propose(
    client: Any, headers: dict[str, str], add: list[Any], remove: list[Any] | None = None
) -> Any:
    return client.post(
        "/v1/policy/changes",
        headers=headers,
        json={"add": add, "remove": remove or [], "reason": "needs four eyes"},
    )


def test_a_change_waits_for_a_different_officer(
    app_client: Any, officers: Officers, store: Store
) -> None:
    head = store.head()
    r = propose(app_client, officers.olivia, [AUDITOR_DATASETS])
    assert r.status_code == 202, r.text
    proposal = r.json()
    assert proposal["status"] == "pending" and proposal["author"] == "olivia"
    assert proposal["changes"] == {"add": [AUDITOR_DATASETS], "remove": []}
    assert store.head() == head  # nothing applied yet

    # The author cannot approve their own change: refused, policy exactly as it was.
    r = app_client.post(
        f"/v1/policy/proposals/{proposal['id']}/approve", json={}, headers=officers.olivia
    )
    assert r.status_code == 409 and "different compliance officer" in r.json()["detail"]
    assert store.head() == head
    # Admins cannot approve at all (no api:policy approve).
    r = app_client.post(
        f"/v1/policy/proposals/{proposal['id']}/approve", json={}, headers=officers.admin
    )
    assert r.status_code == 403
    assert store.head() == head

    r = app_client.post(
        f"/v1/policy/proposals/{proposal['id']}/approve",
        json={"reason": "looks right"},
        headers=officers.oscar,
    )
    assert r.status_code == 201, r.text
    version = r.json()
    assert version["version"] == head[0] + 1
    assert version["author"] == "olivia" and version["approved_by"] == "oscar"
    assert version["reason"] == "needs four eyes"
    assert AUDITOR_DATASETS in version["rules"]

    done = app_client.get(f"/v1/policy/proposals/{proposal['id']}", headers=officers.olivia)
    assert done.json()["status"] == "applied"
    assert done.json()["applied_version"] == version["version"]
    # Approving twice is refused.
    r = app_client.post(
        f"/v1/policy/proposals/{proposal['id']}/approve", json={}, headers=officers.oscar
    )
    assert r.status_code == 409 and "already applied" in r.json()["detail"]


def test_approval_revalidates_against_the_then_current_version(
    app_client: Any, officers: Officers, store: Store
) -> None:
    first = propose(app_client, officers.olivia, [AUDITOR_DATASETS]).json()
    second = propose(app_client, officers.olivia, [], [AUDITOR_DATASETS])
    # Removing a rule that is not there yet is refused at proposal time.
    assert second.status_code == 422
    twin = propose(app_client, officers.oscar, [AUDITOR_DATASETS]).json()
    assert (
        app_client.post(
            f"/v1/policy/proposals/{first['id']}/approve", json={}, headers=officers.oscar
        ).status_code
        == 201
    )
    head = store.head()
    # The twin was valid when proposed, but the rule now exists: approval re-validates.
    r = app_client.post(
        f"/v1/policy/proposals/{twin['id']}/approve", json={}, headers=officers.olivia
    )
    assert r.status_code == 422 and "already has the rule" in r.json()["detail"]
    assert store.head() == head
    pending = app_client.get(
        "/v1/policy/proposals", params={"status": "pending"}, headers=officers.olivia
    ).json()
    assert [p["id"] for p in pending] == [twin["id"]]
    r = app_client.post(
        f"/v1/policy/proposals/{twin['id']}/reject",
        json={"reason": "superseded"},
        headers=officers.olivia,
    )
    assert r.json()["status"] == "rejected" and r.json()["decided_by"] == "olivia"


def test_approval_reruns_the_policy_tests(
    app_client: Any, officers: Officers, store: Store
) -> None:
    export = ["p", "role:auditor", "api:audit", "export", "allow"]
    proposal = propose(app_client, officers.olivia, [], [export]).json()
    # A test added after the proposal was made...
    r = app_client.post(
        "/v1/policy/tests",
        headers=officers.oscar,
        json={
            "subject": "role:auditor",
            "object": "api:audit",
            "action": "export",
            "expected": "allow",
        },
    )
    assert r.status_code == 201
    head = store.head()
    # ...stops its approval.
    r = app_client.post(
        f"/v1/policy/proposals/{proposal['id']}/approve", json={}, headers=officers.oscar
    )
    assert r.status_code == 409 and r.json()["failing"][0]["action"] == "export"
    assert store.head() == head
    assert (
        app_client.get(f"/v1/policy/proposals/{proposal['id']}", headers=officers.oscar).json()[
            "status"
        ]
        == "pending"
    )


def test_nobody_grants_a_role_to_themselves(
    app_client: Any, officers: Officers, store: Store
) -> None:
    head = store.head()
    # Proposing one's own grant is refused at once.
    r = propose(app_client, officers.olivia, [["g", "olivia", "role:auditor"]])
    assert r.status_code == 409 and "themselves" in r.json()["detail"]
    r = propose(app_client, officers.olivia, [["p", "olivia", "api:keys", "issue", "allow"]])
    assert r.status_code == 409 and "themselves" in r.json()["detail"]
    # Nor can the approver approve a grant to themselves.
    proposal = propose(app_client, officers.olivia, [["g", "oscar", "role:auditor"]]).json()
    r = app_client.post(
        f"/v1/policy/proposals/{proposal['id']}/approve", json={}, headers=officers.oscar
    )
    assert r.status_code == 409 and "themselves" in r.json()["detail"]
    assert store.head() == head
    # The author withdraws it; others could only reject it.
    r = app_client.post(
        f"/v1/policy/proposals/{proposal['id']}/withdraw",
        json={"reason": "wrong person"},
        headers=officers.oscar,
    )
    assert r.status_code == 409
    r = app_client.post(
        f"/v1/policy/proposals/{proposal['id']}/withdraw",
        json={"reason": "wrong person"},
        headers=officers.olivia,
    )
    assert r.json()["status"] == "withdrawn"


def test_rollbacks_need_approval_too(
    app_client: Any, officers: Officers, store: Store, settings: Settings
) -> None:
    start = store.head()
    applied = propose(app_client, officers.olivia, [AUDITOR_DATASETS]).json()
    app_client.post(
        f"/v1/policy/proposals/{applied['id']}/approve", json={}, headers=officers.oscar
    )
    r = app_client.post(
        "/v1/policy/rollback",
        headers=officers.oscar,
        json={"to_version": start[0], "reason": "undo"},
    )
    assert r.status_code == 202 and r.json()["changes"] == {"to_version": start[0]}
    rollback_id = str(r.json()["id"])
    head = store.head()

    # Through the CLI: the same rule, a different operator approves.
    env = settings_env(settings)
    env["WARDEN_REQUIRE_SECOND_APPROVAL"] = "true"
    runner = CliRunner()
    listed = runner.invoke(cli, ["policy", "proposals", "list", "--json"], env=env)
    assert json.loads(listed.output)[0]["kind"] == "rollback"
    r = runner.invoke(
        cli, ["policy", "proposals", "approve", rollback_id, "--operator", "oscar"], env=env
    )
    assert r.exit_code == 1 and "different compliance officer" in flat(r.output)
    assert store.head() == head
    r = runner.invoke(
        cli, ["policy", "proposals", "approve", rollback_id, "--operator", "olivia"], env=env
    )
    assert r.exit_code == 0, r.output
    version, sha = store.head()
    assert version == head[0] + 1 and sha == start[1]

    r = runner.invoke(
        cli,
        [
            "policy",
            "apply",
            "--add",
            ", ".join(AUDITOR_DATASETS),
            "--reason",
            "cli four eyes",
            "--operator",
            "carol",
        ],
        env=env,
    )
    assert r.exit_code == 0 and "pending" in flat(r.output)
    assert store.head()[0] == version
    r = runner.invoke(
        cli,
        ["policy", "rollback", str(head[0]), "--reason", "redo", "--json"],
        env=env,
    )
    assert r.exit_code == 0, r.output
    pending = json.loads(r.output)
    assert pending["status"] == "pending" and store.head()[0] == version
    listed = runner.invoke(cli, ["policy", "proposals", "list", "--json"], env=env)
    assert pending["proposal_id"] in [p["id"] for p in json.loads(listed.output)]
