"""Reading and editing the policy through the API and the CLI: versions, history, diff, rollback."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from governance.cli.main import app as cli
from governance.config import Settings
from governance.policy.rules import canonical, digest, load_rules
from tests.conftest import auth, settings_env
from tests.policy.conftest import Officers, Store, flat

AUDITOR_DATASETS = ["p", "role:auditor", "api:datasets", "read", "allow"]


def change(
    client: Any,
    headers: dict[str, str],
    add: list[Any],
    remove: list[Any] | None = None,
    reason: str = "test",
) -> Any:
    return client.post(
        "/v1/policy/changes",
        headers=headers,
        json={"add": add, "remove": remove or [], "reason": reason},
    )


def test_show_apply_history_diff_and_rollback(
    app_client: Any, officers: Officers, store: Store
) -> None:
    r = app_client.get("/v1/policy", headers=officers.olivia)
    assert r.status_code == 200
    start = r.json()
    # The first officer, appointed by the local operator, approved the others' grants.
    assert start["view"]["roles"]["compliance_officer"] == ["officer-fixture", "olivia", "oscar"]
    assert ["role:client", "api:records", "decrypt"] in start["view"]["denies"]
    assert ["role:auditor", "api:audit", "export"] in start["view"]["grants"]
    assert start["view"]["groups"] == {}
    # What a rule may name, so that an officer need not read the server's files.
    vocabulary = start["vocabulary"]
    assert {"admin", "auditor", "client", "compliance_officer", "ml_engineer"} <= set(
        vocabulary["roles"]
    )
    assert {"predict", "read", "export", "decrypt"} <= set(vocabulary["actions"])
    assert vocabulary["roles"] == sorted(vocabulary["roles"])

    r = change(
        app_client,
        officers.olivia,
        [AUDITOR_DATASETS, ["g2", "model:m1", "group:g"]],
        reason="auditors review dataset cards",
    )
    assert r.status_code == 201, r.text
    v_added = r.json()
    assert v_added["version"] == start["version"] + 1
    assert v_added["parent"] == start["version"]
    assert v_added["author"] == "olivia" and v_added["kind"] == "change"
    assert v_added["reason"] == "auditors review dataset cards"
    assert v_added["diff"] == {
        "added": [["g2", "model:m1", "group:g"], AUDITOR_DATASETS],
        "removed": [],
    }
    # The hash is the sha256 of the canonical rule set: anyone can recompute it.
    assert v_added["sha256"] == digest(canonical(load_rules(json.dumps(v_added["rules"]))))

    r = change(app_client, officers.olivia, [], [AUDITOR_DATASETS], reason="not needed after all")
    assert r.status_code == 201
    v_removed = r.json()["version"]

    r = app_client.get("/v1/policy/versions", headers=officers.olivia)
    history = r.json()
    assert [v["version"] for v in history] == list(range(1, v_removed + 1))
    assert history[-1]["reason"] == "not needed after all"
    assert history[0]["kind"] == "seed"

    r = app_client.get(
        "/v1/policy/diff",
        params={"from": start["version"], "to": v_removed},
        headers=officers.olivia,
    )
    assert r.json() == {
        "from_version": start["version"],
        "to_version": v_removed,
        "added": [["g2", "model:m1", "group:g"]],
        "removed": [],
    }
    r = app_client.get(
        "/v1/policy/diff",
        params={"from": v_removed, "to": start["version"]},
        headers=officers.olivia,
    )
    assert r.json()["removed"] == [["g2", "model:m1", "group:g"]]
    assert (
        app_client.get("/v1/policy/diff", params={"from": 999}, headers=officers.olivia).status_code
        == 404
    )

    # Roll back to the version that had the auditor grant: a new version, kind rollback.
    r = app_client.post(
        "/v1/policy/rollback",
        headers=officers.oscar,
        json={"to_version": v_added["version"], "reason": "needed after all"},
    )
    assert r.status_code == 201, r.text
    rolled = r.json()
    assert rolled["kind"] == "rollback" and rolled["version"] == v_removed + 1
    assert rolled["rules"] == v_added["rules"] and rolled["sha256"] == v_added["sha256"]
    assert rolled["diff"] == {"added": [AUDITOR_DATASETS], "removed": []}
    assert (
        app_client.get(f"/v1/policy/versions/{v_added['version']}", headers=officers.olivia).json()[
            "rules"
        ]
        == rolled["rules"]
    )

    # Rolling back to identical rules, or forward, is refused and writes nothing.
    head = store.head()
    r = app_client.post(
        "/v1/policy/rollback",
        headers=officers.oscar,
        json={"to_version": v_added["version"], "reason": "again"},
    )
    assert r.status_code == 409 and "same rules" in r.json()["detail"]
    r = app_client.post(
        "/v1/policy/rollback",
        headers=officers.oscar,
        json={"to_version": rolled["version"], "reason": "forward"},
    )
    assert r.status_code == 422
    r = app_client.post(
        "/v1/policy/rollback",
        headers=officers.oscar,
        json={"to_version": 9999, "reason": "nowhere"},
    )
    assert r.status_code == 422
    assert store.head() == head


def test_stale_base_version_is_refused(app_client: Any, officers: Officers, store: Store) -> None:
    version, _ = store.head()
    r = app_client.post(
        "/v1/policy/changes",
        headers=officers.olivia,
        json={"add": [AUDITOR_DATASETS], "reason": "x", "base_version": version},
    )
    assert r.status_code == 201
    head = store.head()
    r = app_client.post(
        "/v1/policy/changes",
        headers=officers.oscar,
        json={"remove": [AUDITOR_DATASETS], "reason": "y", "base_version": version},
    )
    assert r.status_code == 409 and "prepared against version" in r.json()["detail"]
    assert store.head() == head


def test_only_compliance_officers_change_the_policy(
    app_client: Any, warden: Any, officers: Officers, store: Store
) -> None:
    client_key = auth(warden.principal("cli-ent", "client"))
    head = store.head()
    assert change(app_client, officers.admin, [AUDITOR_DATASETS]).status_code == 403
    assert change(app_client, client_key, [AUDITOR_DATASETS]).status_code == 403
    assert app_client.get("/v1/policy", headers=client_key).status_code == 403
    assert app_client.get("/v1/policy", headers=officers.admin).status_code == 200
    assert store.head() == head


def test_the_cli_shows_applies_diffs_and_rolls_back(
    app_client: Any, officers: Officers, settings: Settings, store: Store
) -> None:
    env = settings_env(settings)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["policy", *args], env=env)

    start, _ = store.head()
    shown = run("show", "--json")
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert doc["version"] == start and doc["roles"]["compliance_officer"] == [
        "officer-fixture",
        "olivia",
        "oscar",
    ]
    assert {"predict", "read", "export", "decrypt"} <= set(doc["actions"])

    r = run(
        "apply",
        "--add",
        "p, role:auditor, api:datasets, read, allow",
        "--reason",
        "from the cli",
        "--operator",
        "carol",
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {
        "status": "applied",
        "version": start + 1,
        "sha256": store.head()[1],
    }

    # A malformed rule: a clear one-line error, exit 1, nothing written.
    r = run("apply", "--add", "g, bob, role:wizard", "--reason", "bad")
    assert r.exit_code == 1 and "unknown role" in flat(r.output)
    r = run("apply", "--add", "g, bob", "--reason", "bad")
    assert r.exit_code == 1 and "has 2 values" in flat(r.output)
    assert store.head()[0] == start + 1

    r = run("history", "--json")
    last = json.loads(r.output)[-1]
    assert last["author"] == "carol" and last["reason"] == "from the cli"

    r = run("diff", str(start), "--json")
    assert json.loads(r.output)["added"] == [AUDITOR_DATASETS]

    r = run("rollback", str(start), "--reason", "undo", "--operator", "carol", "--json")
    assert r.exit_code == 0, r.output
    version, sha = store.head()
    assert version == start + 2
    assert json.loads(r.output) == {
        "status": "applied",
        "version": version,
        "restores": start,
        "sha256": sha,
    }
    assert (
        sha
        == app_client.get(f"/v1/policy/versions/{start}", headers=officers.olivia).json()["sha256"]
    )

    text = run("show")
    assert text.exit_code == 0 and f"policy version {version} (rollback)" in flat(text.output)
    assert "a rule may name:" in flat(text.output) and "predict" in flat(text.output)
    assert run("history").exit_code == 0


def test_audit_entries_name_the_roles_the_caller_holds_under_each_version(
    app_client: Any, officers: Officers, store: Store, warden: Any
) -> None:
    # The guard keeps one audit actor per principal and policy version: a role granted live
    # shows in the very next call's entry, and is gone from it once revoked.
    def roles_of_last_call() -> list[str]:
        calls = [e for e in store.entries("api.call") if e["actor"]["name"] == "oscar"]
        return list(calls[-1]["actor"]["roles"])

    assert app_client.get("/v1/policy", headers=officers.oscar).status_code == 200
    assert roles_of_last_call() == ["role:compliance_officer"]
    grant = ["g", "oscar", "role:auditor"]
    # The auditor role reads the audit log: a second officer (not oscar, who would gain) approves.
    proposed = change(app_client, officers.olivia, [grant])
    assert proposed.status_code == 202, proposed.text
    r = app_client.post(
        f"/v1/policy/proposals/{proposed.json()['id']}/approve",
        json={},
        headers=auth(warden.officer_token()),
    )
    assert r.status_code == 201, r.text
    assert app_client.get("/v1/policy", headers=officers.oscar).status_code == 200
    assert roles_of_last_call() == ["role:auditor", "role:compliance_officer"]
    assert change(app_client, officers.olivia, [], remove=[grant]).status_code == 201
    assert app_client.get("/v1/policy", headers=officers.oscar).status_code == 200
    assert roles_of_last_call() == ["role:compliance_officer"]
