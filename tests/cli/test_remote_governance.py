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
from typer.testing import CliRunner, Result

from governance.cli.main import app
from tests.conftest import auth
from tests.identity.test_sign_in import PASSWORD, _audit_texts, _totp
from tests.servers import SharedServer

Run = Callable[..., str]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A person's shell: its own config folder, no Warden setting from the server's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in [k for k in os.environ if k.startswith("WARDEN_")]:
        monkeypatch.delenv(name)
    return CliRunner()


def _signed_in(shared: SharedServer, runner: CliRunner, prefix: str, *roles: str) -> str:
    """A person with these roles, password and TOTP, signed in through `warden login`."""
    name = shared.unique(prefix)
    key = shared.warden.principal(name, *roles)
    r = shared.http.put("/v1/me/password", json={"password": PASSWORD}, headers=auth(key))
    assert r.status_code == 200, r.text
    stdin = f"{PASSWORD}\n{_totp(r.json()).now()}\n"
    args = ["login", "--server", shared.url, "--name", name, "--password-stdin"]
    result = runner.invoke(app, args, input=stdin)
    assert result.exit_code == 0, result.output
    return name


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
    officer = _signed_in(shared_server, runner, "officer", "compliance_officer")
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
