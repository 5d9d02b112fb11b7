"""Records, the vault, training, audit export and disabling over the API, as a signed-in person.

In this process (CliRunner) against the module's shared server, as test_remote's everyday
commands: each test checks the effect on the server and that the audit log names the person.
``report verify`` and ``audit verify-bundle`` read only files: they run in remote mode as they
do locally, with no server to reach.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from governance.cli.main import app
from tests.conftest import auth, serve_toy
from tests.factories import toy_record
from tests.identity.test_sign_in import PASSWORD, _totp
from tests.privacy.conftest import write_synthetic
from tests.servers import SharedServer


class Person:
    """A signed-in person of the shared server, and the CLI in their terminal."""

    def __init__(self, shared: SharedServer, name: str, key: str) -> None:
        self.shared, self.name, self.key = shared, name, key
        self.runner = CliRunner()

    def run(self, *args: str, stdin: str | None = None) -> str:
        result = self.runner.invoke(app, list(args), input=stdin)
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    def audited(self) -> set[str]:
        """The event types of this person's audit entries, as the server lists them."""
        r = self.shared.http.get(
            "/v1/audit/entries",
            params={"actor": self.name, "limit": 1000},
            headers=auth(self.key),
        )
        assert r.status_code == 200, r.text
        return {e["event_type"] for e in r.json()["entries"]}


@pytest.fixture
def person(
    shared_server: SharedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Person]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in [k for k in os.environ if k.startswith("WARDEN_")]:
        monkeypatch.delenv(name)
    name = shared_server.unique("operator")
    key = shared_server.warden.principal(name, "admin", "auditor", "ml_engineer")
    r = shared_server.http.put("/v1/me/password", json={"password": PASSWORD}, headers=auth(key))
    assert r.status_code == 200, r.text
    me = Person(shared_server, name, key)
    me.run(
        "login",
        "--server",
        shared_server.url,
        "--name",
        name,
        "--password-stdin",
        stdin=f"{PASSWORD}\n{_totp(r.json()).now()}\n",
    )
    yield me
    me.run("logout")


def _predict(shared: SharedServer, model: str, client: str, subject: str) -> None:
    body = {"record": toy_record(), "subject_id": subject}
    deadline = time.monotonic() + 15
    while True:
        r = shared.http.post(f"/v1/models/{model}/predict", json=body, headers=auth(client))
        if r.status_code == 200:
            return
        assert time.monotonic() < deadline, r.text
        time.sleep(0.05)


def test_records_are_listed_erased_and_purged_remotely(person: Person) -> None:
    shared = person.shared
    model = shared.unique("toy")
    client, _ = serve_toy(shared.warden, shared.artifact, model=model, names=shared.unique)
    subject = shared.unique("leaver")
    _predict(shared, model, client, subject)

    listed = json.loads(person.run("records", "list", "--model", model, "--json"))
    assert [r["state"] for r in listed] == ["active"] and listed[0]["model"] == model
    assert listed[0]["id"] in person.run("records", "list", "--model", model)

    # '-': the subject id from standard input, as locally.
    receipt = json.loads(person.run("records", "erase", "-", stdin=f"{subject}\n"))
    assert receipt["erased_by"] == person.name and receipt["records_affected"] == 1
    after = json.loads(person.run("records", "list", "--model", model, "--json"))
    assert [r["state"] for r in after] == ["destroyed"]
    erasures = json.loads(person.run("records", "erasures", "--json"))
    assert {"id": receipt["receipt_id"], "erased_by": person.name} in [
        {"id": e["id"], "erased_by": e["erased_by"]} for e in erasures
    ]
    assert "subject.erase" in person.audited()  # under the person's name

    purged = person.run("records", "purge", "--dry-run")
    assert "total would delete" in purged and "audit entries are kept at least" in purged
    assert "records.purge" in person.audited()


def test_the_vault_rotates_its_keys_remotely(person: Person) -> None:
    before = json.loads(person.run("vault", "kek", "--json"))
    assert before["current"] in before["available"]
    rotated = person.run("vault", "rotate-kek", "--reason", "quarterly rotation")
    assert rotated.startswith(f"KEK {before['current']} -> ")
    after = json.loads(person.run("vault", "kek", "--json"))
    assert after["current"] != before["current"] and before["current"] in after["available"]
    assert f"current {after['current']}" in person.run("vault", "kek")

    assert "rotated" in person.run("vault", "rotate-deks", "--reason", "after an incident")
    rotations = json.loads(person.run("vault", "rotations", "--json"))
    mine = [r for r in rotations if r["rotated_by"] == person.name]
    assert {r["kind"] for r in mine} >= {"kek"} and {r["to_kek"] for r in mine} >= {
        after["current"]
    }
    keys = json.loads(person.run("vault", "keys", "--json"))
    assert all(k["subject_ref"].endswith("…") for k in keys)
    assert "key.rotate" in person.audited()

    # No API route: the schedule runs in the server, the key file is the server's.
    for args in (["vault", "rotate-due"], ["vault", "retire-kek", before["current"]]):
        refused = person.runner.invoke(app, args)
        assert refused.exit_code == 2 and "only runs on the server machine" in refused.output


def test_a_principal_is_disabled_remotely(person: Person) -> None:
    shared = person.shared
    service = shared.unique("svc")
    shared.warden.principal(service, kind="service")
    assert f"disabled {service}" in person.run("principals", "disable", service)
    listed = shared.http.get("/v1/principals", headers=auth(shared.admin)).json()
    assert [p["disabled"] for p in listed if p["name"] == service] == [True]
    assert "principal.disable" in person.audited()


def test_training_charges_the_ledger_remotely(person: Person) -> None:
    shared = person.shared
    folder = shared.settings.data_dir / "datasets" / shared.unique("syn")
    folder.mkdir(parents=True)
    write_synthetic(folder)
    body = {"name": "synthetic", "schema_path": f"{folder.name}/schema.yaml"}
    r = shared.http.post("/v1/datasets", json=body, headers=auth(person.key))
    assert r.status_code in (201, 200), r.text

    cheap = ["--model", "logreg", "--epochs", "2", "--batch-size", "100", "--lr", "0.05"]
    cheap += ["--delta", "1e-5"]
    done = person.run("privacy", "train", "--dataset", "synthetic", *cheap)
    assert "completed" in done and "ε = " in done
    person.run("train", "--dataset", "synthetic", *cheap)  # the top-level twin
    runs = json.loads(person.run("privacy", "runs", "--dataset", "synthetic", "--json"))
    assert [r["started_by"] for r in runs if r["status"] == "completed"][-2:] == [person.name] * 2
    assert "DP ε=" in person.run("privacy", "runs", "--dataset", "synthetic")
    ledger = json.loads(person.run("privacy", "ledger", "synthetic", "--json"))
    assert ledger["epsilon_recomposed"] > 0 and len(ledger["entries"]) >= 2
    assert any(event.startswith("privacy.") for event in person.audited())


def test_an_exported_bundle_and_a_report_verify_in_remote_mode(
    person: Person, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    exported = json.loads(person.run("audit", "export", str(bundle), "--from", "0", "--json"))
    assert exported["from_seq"] == 0 and (bundle / "bundle.json").is_file()
    assert "audit.export" in person.audited()
    # Today's evidence only: a small report is as good a file to verify.
    today = datetime.now(UTC).date().isoformat()
    made = json.loads(person.run("report", "generate", "--from", today, "--json"))
    report = tmp_path / "report"
    person.run("report", "download", made["id"], "--into", str(report))
    r = person.shared.http.get("/v1/audit/public-key", headers=auth(person.key))
    vkey = r.json()["vkey"]
    person.run("logout")

    # Remote mode with no server to reach: only the files are read.
    offline = ["--server", "http://127.0.0.1:9"]
    checked = person.run(*offline, "audit", "verify-bundle", str(bundle), "--vkey", vkey)
    assert "OK: entries 0.." in checked
    assert "OK: report" in person.run(*offline, "report", "verify", str(report), "--key", vkey)
