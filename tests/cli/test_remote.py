"""The remote CLI (issue 29, item 3): `warden login`, then commands over the API as that person.

The real `warden` runs in a subprocess against a live server, with its own HOME and
XDG_CONFIG_HOME in the test's folder, as a person's terminal would. Two compliance officers
sign in with password and TOTP; one proposes a policy change, the other approves it, and the
audit log names both. Direct database mode names the local operator by the OS user.
"""

from __future__ import annotations

import json
import os
import pty
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from governance.audit.note import vkey_for
from governance.cli.main import app
from governance.kit.context import local_operator
from tests.conftest import REPO, auth
from tests.identity.test_sign_in import PASSWORD, _audit_texts, _totp
from tests.servers import SharedServer


def _env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The user's environment, less any Warden setting: a person's shell, not the server's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), **(extra or {}))
    return env


def _warden(
    home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # A new session: no controlling terminal for a prompt to open, as in a script.
    return subprocess.run(
        [sys.executable, "-m", "governance.cli.main", *args],
        cwd=REPO,
        env=_env(home, env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _officer(shared: SharedServer) -> tuple[str, pyotp.TOTP]:
    """A compliance officer with a password and a TOTP second factor of their own."""
    name = shared.unique("officer")
    key = shared.warden.principal(name, "compliance_officer")
    r = shared.http.put("/v1/me/password", json={"password": PASSWORD}, headers=auth(key))
    assert r.status_code == 200, r.text
    return name, _totp(r.json())


def _login(shared: SharedServer, home: Path, name: str, totp: pyotp.TOTP) -> None:
    out = _ok(
        _warden(
            home,
            "login",
            "--server",
            shared.url,
            "--name",
            name,
            "--password-stdin",
            stdin=f"{PASSWORD}\n{totp.now()}\n",
        )
    )
    assert f"signed in to {shared.url} as {name}" in out


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_two_officers_change_the_policy_remotely_under_their_own_names(
    shared_server: SharedServer, tmp_path: Path
) -> None:
    author, author_totp = _officer(shared_server)
    approver, approver_totp = _officer(shared_server)
    author_home, approver_home = tmp_path / "author", tmp_path / "approver"

    _login(shared_server, author_home, author, author_totp)
    session_file = author_home / "config" / "warden" / "session.json"
    assert _mode(session_file) == 0o600 and _mode(session_file.parent) == 0o700
    stored = json.loads(session_file.read_text())
    assert stored["server"] == shared_server.url and stored["name"] == author
    assert stored["cookie"].startswith("wss_") and stored["csrf_token"]

    subject = shared_server.unique("svc")
    rule = f"p, {subject}, api:datasets, read, allow"
    proposed = json.loads(
        _ok(
            _warden(
                author_home,
                "policy",
                "propose",
                "--add",
                rule,
                "--reason",
                "let the new service predict",
                "--json",
            )
        )
    )
    assert proposed["status"] == "pending"
    proposal = proposed["proposal_id"]

    _login(shared_server, approver_home, approver, approver_totp)
    pending = json.loads(_ok(_warden(approver_home, "policy", "proposals", "list", "--json")))
    assert any(p["id"] == proposal and p["author"] == author for p in pending)
    # The author cannot approve their own change: a refusal by a rule, exit 3.
    own = _warden(author_home, "policy", "proposals", "approve", str(proposal))
    assert own.returncode == 3, own.stderr
    assert len(own.stderr.strip().splitlines()) == 1
    out = _ok(_warden(approver_home, "policy", "proposals", "approve", str(proposal)))
    assert f"proposal {proposal} approved: policy version" in out
    shown = shared_server.http.get("/v1/policy", headers=auth(shared_server.admin)).json()
    assert [subject, "api:datasets", "read"] in shown["view"]["grants"]

    entries = [json.loads(t) for t in _audit_texts(shared_server)]
    decided = {
        (e["action"], e["actor"]["name"], e["actor"]["auth_method"])
        for e in entries
        if e["event_type"] == "policy.proposal" and e["resource"].get("policy_proposal") == proposal
    }
    assert decided == {("propose", author, "session"), ("approve", approver, "session")}
    assert all(e["actor"].get("name") != "cli" for e in entries)

    # Sign-out ends the session on the server, not only here.
    kept = session_file.read_text()
    assert "signed out" in _ok(_warden(author_home, "logout"))
    assert not session_file.exists()
    session_file.write_text(kept)
    ended = _warden(author_home, "policy", "show")
    assert ended.returncode == 1
    assert "warden login --server" in ended.stderr and "Traceback" not in ended.stderr


def test_a_wrong_password_writes_no_session(shared_server: SharedServer, tmp_path: Path) -> None:
    name, totp = _officer(shared_server)
    result = _warden(
        tmp_path,
        "login",
        "--server",
        shared_server.url,
        "--name",
        name,
        "--password-stdin",
        stdin=f"{PASSWORD} but wrong\n{totp.now()}\n",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "sign-in failed" in result.stderr
    assert not (tmp_path / "config" / "warden" / "session.json").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        # What is left without an API: the server machine's own key files and the log's
        # signing key, and setting a deployment up.
        (["vault", "rotate-due"], "`warden vault rotate-due`"),
        (["vault", "retire-kek", "k1"], "`warden vault retire-kek`"),
        (["audit", "anchor"], "`warden audit anchor`"),
        (["init"], "`warden init`"),
    ],
)
def test_a_command_without_an_api_mapping_refuses_in_remote_mode(
    args: list[str], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No database here at all: a fallback to direct mode would fail differently.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("WARDEN_DATA_DIR", str(tmp_path / "no-data"))
    result = CliRunner().invoke(app, ["--server", "http://127.0.0.1:9", *args])
    assert result.exit_code == 2, result.output
    assert named in result.output and "only runs on the server machine" in result.output


def test_a_password_is_not_sent_over_plain_http_to_another_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    args = ["login", "--server", "http://192.0.2.10:8000", "--name", "olivia", "--password-stdin"]
    result = CliRunner().invoke(app, args, input=f"{PASSWORD}\n")
    assert result.exit_code == 2 and "use https://" in result.output
    assert not (tmp_path / "warden").exists()


def _on_a_terminal(args: Sequence[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run `warden` with stderr on a pseudo-terminal: exit code, stdout, what the terminal got."""
    main, side = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "governance.cli.main", *args],
            cwd=REPO,
            env={**env, "TERM": "dumb", "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=side,
            stdin=subprocess.DEVNULL,
        )
        os.close(side)
        drawn = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the other end is closed: the command has ended
                break
            if not chunk:
                break
            drawn += chunk
        stdout, _ = process.communicate(timeout=120)
    finally:
        os.close(main)
    return process.returncode, stdout.decode(), drawn.decode(errors="replace")


def test_direct_mode_acts_as_the_local_operator_and_says_so(
    shared_server: SharedServer, tmp_path: Path
) -> None:
    cfg = shared_server.settings
    env = _env(
        tmp_path,
        {
            "WARDEN_DATA_DIR": str(cfg.data_dir),
            "WARDEN_DATABASE_URL": cfg.resolved_database_url,
        },
    )
    name = shared_server.unique("svc")
    code, stdout, drawn = _on_a_terminal(["principals", "create", name, "--kind", "service"], env)
    assert code == 0, stdout + drawn
    operator = local_operator()
    assert operator.startswith("local:") and operator != "local:"
    assert f"direct database mode: acting as local operator {operator}" in " ".join(drawn.split())
    entries = [json.loads(t) for t in _audit_texts(shared_server)]
    created = [
        e
        for e in entries
        if e["event_type"].startswith("principal") and name in json.dumps(e.get("resource"))
    ]
    assert created, "the creation is audited"
    assert {(e["actor"]["name"], e["actor"]["auth_method"]) for e in created} == {
        (operator, "local")
    }


def test_everyday_commands_run_over_the_api(
    shared_server: SharedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In this process (CliRunner): the subprocess tests above already run the real program.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in [k for k in os.environ if k.startswith("WARDEN_")]:
        monkeypatch.delenv(name)
    person = shared_server.unique("admin")
    key = shared_server.warden.principal(person, "admin", "auditor", "ml_engineer")
    r = shared_server.http.put("/v1/me/password", json={"password": PASSWORD}, headers=auth(key))
    assert r.status_code == 200, r.text
    totp = _totp(r.json())
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None, both: bool = False) -> str:
        result = runner.invoke(app, list(args), input=stdin)
        assert result.exit_code == 0, (args, result.output)
        return result.output if both else result.stdout

    run(
        "login",
        "--server",
        shared_server.url,
        "--name",
        person,
        "--password-stdin",
        stdin=f"{PASSWORD}\n{totp.now()}\n",
    )
    assert run("whoami").strip() == f"{person} at {shared_server.url}"
    assert json.loads(run("policy", "show", "--json"))["version"] >= 1
    service = shared_server.unique("svc")
    assert f"created service {service}" in run("principals", "create", service, "--kind", "service")
    assert service in run("principals", "list")
    issued = run("keys", "issue", service).splitlines()
    key_id = issued[0].split()[2]
    assert issued[-1].startswith("wdn_") or len(issued[-1]) > 20
    listed = json.loads(run("keys", "list", "--principal", service, "--json"))
    assert [k["key_id"] for k in listed] == [key_id]
    assert f"revoked {key_id}" in run("keys", "revoke", key_id)
    newcomer = shared_server.unique("person")
    run("principals", "create", newcomer)
    assert run("principals", "enrol", newcomer).strip().splitlines()[-1]
    granted = run("roles", "grant", newcomer, "auditor", "--reason", "audits the quarter")
    assert f"grant of auditor to {newcomer}" in granted
    pending = json.loads(run("roles", "pending", "--json"))
    assert all(set(p) == {"proposal", "change", "author", "reason"} for p in pending)

    first = run("audit", "verify", both=True)
    assert "trusting the server's key on first use" in first and first.rstrip().endswith("OK")
    entries = json.loads(run("audit", "entries", "--actor", person, "--json"))
    assert entries and {e["actor"] for e in entries} == {person}
    latest = json.loads(
        run("audit", "entries", "--actor", person, "--newest", "--limit", "3", "--json")
    )
    seqs = [e["seq"] for e in latest]
    assert len(seqs) == 3 and seqs == sorted(seqs, reverse=True) and seqs[0] >= entries[-1]["seq"]
    seq = str(entries[-1]["seq"])
    again = run("audit", "verify", "--entry", seq)
    assert "consistent with the tree of" in again and f"entry {seq}: " in again
    # A key that did not sign the log: verification fails, exit 4.
    stranger = vkey_for("warden.example/log", Ed25519PrivateKey.generate().public_key())
    refused = runner.invoke(app, ["audit", "verify", "--vkey", stranger])
    assert refused.exit_code == 4 and "verification failed" in refused.output
    assert json.loads(run("audit", "show", seq))["entry"]["seq"] == int(seq)

    run("models", "list")
    assert "adult" in run("datasets", "list")
    run("privacy", "ledger", "adult", "--json")
    assert runner.invoke(app, ["report"]).exit_code == 2  # no period: the help, as locally
    made = json.loads(run("report", "generate", "--from", "2000-01-01", "--json"))
    assert made["id"] in run("report", "list")
    folder = tmp_path / "report"
    run("report", "download", made["id"], "--into", str(folder))
    assert sorted(p.name for p in folder.iterdir()) == sorted(made["files"])

    assert "signed out" in run("logout")
    assert "direct database mode" in run("whoami")
