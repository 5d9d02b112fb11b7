"""Policy history and tests, fairness, dataset and model registration, over the API (issue 29).

In this process (CliRunner) against the module's shared server: test_remote.py already runs
the real program in a subprocess. Each command's effect is checked on the server, and the
audit log names the signed-in person.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from governance.cli.main import app
from tests.conftest import auth
from tests.fairness.conftest import adult_logreg
from tests.identity.test_sign_in import PASSWORD, _audit_texts, _totp
from tests.onnx_graphs import linear_graph, linear_schema
from tests.privacy.conftest import write_synthetic
from tests.servers import SharedServer

Run = Callable[..., str]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A person's shell: its own config folder, no Warden setting from the server's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in [k for k in os.environ if k.startswith("WARDEN_")]:
        monkeypatch.delenv(name)
    return CliRunner()


def _signed_in(
    shared: SharedServer, runner: CliRunner, prefix: str, *roles: str
) -> tuple[str, str]:
    """A person with these roles and a password (and TOTP where the role asks for one),
    signed in through `warden login`; their name and API key."""
    name = shared.unique(prefix)
    key = shared.warden.principal(name, *roles)
    r = shared.http.put("/v1/me/password", json={"password": PASSWORD}, headers=auth(key))
    assert r.status_code == 200, r.text
    second = f"{_totp(r.json()).now()}\n" if r.json().get("totp") else ""
    args = ["login", "--server", shared.url, "--name", name, "--password-stdin"]
    result = runner.invoke(app, args, input=f"{PASSWORD}\n{second}")
    assert result.exit_code == 0, result.output
    return name, key


def _runs(runner: CliRunner) -> Run:
    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    return run


def _invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args))


def _by(shared: SharedServer, person: str) -> list[dict[str, Any]]:
    """The audit entries whose actor is ``person``, signed in with a session."""
    entries = [json.loads(t) for t in _audit_texts(shared)]
    return [
        e
        for e in entries
        if e["actor"].get("name") == person and e["actor"].get("auth_method") == "session"
    ]


def test_an_officer_reads_rolls_back_and_tests_the_policy_remotely(
    shared_server: SharedServer, runner: CliRunner
) -> None:
    officer, _ = _signed_in(shared_server, runner, "officer", "compliance_officer")
    run = _runs(runner)
    subject = shared_server.unique("svc")
    rule = f"p, {subject}, api:datasets, read, allow"
    applied = json.loads(run("policy", "apply", "--add", rule, "--reason", "a reader", "--json"))
    assert applied["status"] == "applied"
    new = applied["version"]

    history = json.loads(run("policy", "history", "--limit", "2", "--json"))
    assert [h["version"] for h in history] == [new - 1, new]
    assert history[-1]["author"] == officer and history[-1]["diff"]["added"]
    assert f"v{new:<5}" in run("policy", "history")
    diff = json.loads(run("policy", "diff", str(new - 1), "--json"))
    assert diff == {
        "from_version": new - 1,
        "to_version": new,
        "added": [["p", subject, "api:datasets", "read", "allow"]],
        "removed": [],
    }
    assert f"+ {rule}" in run("policy", "diff", str(new - 1), str(new))

    impact = json.loads(run("policy", "impact", "--to-version", str(new - 1), "--json"))
    assert impact["current_version"] == new and subject in json.dumps(impact["diff"])
    assert f"against version {new}" in run("policy", "impact", "--remove", rule)

    back = json.loads(
        run("policy", "rollback", str(new - 1), "--reason", "no longer needed", "--json")
    )
    assert back["status"] == "applied" and back["restores"] == new - 1
    shown = shared_server.http.get("/v1/policy", headers=auth(shared_server.admin)).json()
    assert shown["version"] == back["version"] and shown["kind"] == "rollback"
    assert [subject, "api:datasets", "read"] not in shown["view"]["grants"]

    assert officer in run("policy", "timeline", "--principal", officer)
    held = json.loads(run("policy", "timeline", "--principal", officer, "--json"))
    assert {h["role"] for h in held} == {"compliance_officer"}

    added = run("policy", "test", "add", subject, "api:datasets", "read", "deny")
    case = int(added.split()[2])
    cases = json.loads(run("policy", "test", "list", "--json"))
    assert any(c["id"] == case and c["created_by"] == officer for c in cases)
    ran = json.loads(run("policy", "test", "run", "--json"))
    assert ran["version"] == shown["version"] and ran["failing"] == []
    assert "policy tests pass on version" in run("policy", "test", "run")
    # The API runs the tests only on the enforced version: another is a usage error.
    assert _invoke(runner, "policy", "test", "run", "--version", "1").exit_code == 2
    assert f"policy test {case} removed" in run(
        "policy", "test", "remove", str(case), "--reason", "done"
    )
    left = shared_server.http.get("/v1/policy/tests", headers=auth(shared_server.admin)).json()
    assert case not in {c["id"] for c in left}
    # Refusals by the server are one line and its exit code, not a traceback.
    missing = _invoke(runner, "policy", "test", "remove", str(case), "--reason", "again")
    assert missing.exit_code == 1 and "Traceback" not in missing.output

    done = {(e["event_type"], e["action"]) for e in _by(shared_server, officer)}
    assert {
        ("policy.change", "change"),
        ("policy.change", "rollback"),
        ("policy.test", "add"),
        ("policy.test", "remove"),
    } <= done, done


def test_an_engineer_registers_audits_and_mitigates_remotely(
    shared_server: SharedServer, runner: CliRunner, tmp_path: Path
) -> None:
    engineer, key = _signed_in(shared_server, runner, "engineer", "ml_engineer")
    run = _runs(runner)
    admin = auth(shared_server.admin)

    model = shared_server.unique("lr")
    artifact = adult_logreg(tmp_path / "lr", name=model)
    assert f"registered {model} 1" in run("models", "register", str(artifact))
    imported = shared_server.unique("onnx")
    graph, schema = tmp_path / "model.onnx", tmp_path / "schema.yaml"
    graph.write_bytes(linear_graph())
    schema.write_text(yaml.safe_dump(linear_schema()))
    out = run(
        "models",
        "import",
        imported,
        "--version",
        "2",
        "--onnx",
        str(graph),
        "--schema",
        str(schema),
    )
    assert f"imported {imported} 2" in out
    listed = shared_server.http.get("/v1/models", headers=admin).json()
    assert {(m["name"], m["version"], m["registered_by"]) for m in listed} >= {
        (model, "1", engineer),
        (imported, "2", engineer),
    }

    # Biased by construction: the audit is stored and fails, exit 3 as in direct mode.
    audited = _invoke(
        runner, "fairness", "audit", model, "--sensitive", "sex", "--bootstrap", "0", "--json"
    )
    assert audited.exit_code == 3, audited.output
    audit = json.loads(audited.stdout)
    assert audit["model"] == model and audit["verdict"]["passed"] is False
    stored = shared_server.http.get(f"/v1/fairness/audits/{audit['id']}", headers=auth(key)).json()
    assert stored["audited_by"] == engineer and stored["passed"] is False
    assert [a["id"] for a in json.loads(run("fairness", "audits", "--model", model, "--json"))] == [
        audit["id"]
    ]
    assert "FAIL" in run("fairness", "audits", "--model", model)
    assert "verdict: FAIL" in run("fairness", "show", str(audit["id"]))
    assert json.loads(run("fairness", "show", str(audit["id"]), "--json"))["id"] == audit["id"]
    # No live outcomes yet: the server's refusal is one line, not a traceback.
    quiet = _invoke(runner, "fairness", "monitor", model, "--hours", "1")
    assert quiet.exit_code in (1, 3) and "Traceback" not in quiet.output, quiet.output

    plot = tmp_path / "plots" / "tradeoff.png"
    mitigated = run("fairness", "mitigate", model, "--sensitive", "sex", "--plot-out", str(plot))
    assert f"registered {model} 1-mitigated (from 1;" in mitigated
    assert plot.read_bytes().startswith(b"\x89PNG")
    detail = shared_server.http.get(f"/v1/models/{model}", headers=admin).json()
    assert "1-mitigated" in json.dumps(detail)

    dataset = shared_server.unique("syn")
    folder = shared_server.settings.data_dir / "datasets" / dataset
    folder.mkdir(parents=True)
    write_synthetic(folder)
    made = run("datasets", "register", dataset, "--schema", f"{dataset}/schema.yaml")
    assert f"registered {dataset}:" in made and "privacy ledger" in made
    shown = json.loads(run("datasets", "show", dataset, "--json"))
    assert shown["name"] == dataset and shown["registered_by"] == engineer
    table = run("datasets", "show", dataset)
    assert engineer in table and "privacy ledger" in table
    # A path outside the server's datasets folder is refused there.
    outside = _invoke(runner, "datasets", "register", dataset + "x", "--schema", "../x.yaml")
    assert outside.exit_code == 3 and "Traceback" not in outside.output
    assert dataset + "x" not in run("datasets", "list")

    done = {(e["event_type"], e["action"]) for e in _by(shared_server, engineer)}
    acted = {t for t in done if t[0] != "api.call"}
    assert {("datasets.register", "register"), ("fairness.audit", "audit")} <= acted, done
    # Besides: both models registered, the mitigation's run and its new version.
    assert len(acted) >= 6, done


def test_an_officer_sets_the_fairness_thresholds_remotely(
    shared_server: SharedServer, runner: CliRunner, tmp_path: Path
) -> None:
    officer, key = _signed_in(shared_server, runner, "officer", "compliance_officer")
    run = _runs(runner)
    current = json.loads(run("fairness", "thresholds", "show", "--json"))
    assert f"# version {current['version']}" in run("fairness", "thresholds", "show")
    document = current["document"]
    changed = tmp_path / "fairness.yaml"
    changed.write_text(yaml.safe_dump({**document, "min_group_size": 31}))
    out = run(
        "fairness",
        "thresholds",
        "set",
        str(changed),
        "--reason",
        "groups of thirty are too small to judge",
        "--base-version",
        str(current["version"]),
    )
    assert f"fairness thresholds version {current['version'] + 1}" in out
    now = shared_server.http.get("/v1/fairness/thresholds", headers=auth(key))
    assert now.json()["author"] == officer and now.json()["version"] == current["version"] + 1
    history = json.loads(run("fairness", "thresholds", "history", "--json"))
    assert history[0]["author"] == officer and history[0]["version"] == current["version"] + 1
    assert officer in run("fairness", "thresholds", "history")
    # Edited from a stale version: refused by the server, exit 3.
    stale = _invoke(
        runner,
        "fairness",
        "thresholds",
        "set",
        str(changed),
        "--reason",
        "a stale edit here",
        "--base-version",
        str(current["version"]),
    )
    assert stale.exit_code == 3, stale.output

    done = {(e["event_type"], e["action"]) for e in _by(shared_server, officer)}
    assert ("fairness.thresholds", "update") in done, done
