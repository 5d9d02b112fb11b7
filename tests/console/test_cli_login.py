"""`warden login --browser` (issue 29, item 3): the CLI signs in as whoever allows it in the console.

The real `warden` runs in a subprocess with its own HOME; the person allows it in Chromium
(Playwright), signed in through the console's form. The code the page shows is bound to the
challenge the CLI printed: it opens a session only with the verifier that CLI holds, once.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page
from sqlalchemy import insert, select, update
from typer.testing import CliRunner

from governance.cli.main import app
from governance.db import make_engine
from governance.identity import cli_grants
from governance.identity.models import CliGrant, Principal
from governance.identity.sign_in import digest
from governance.kit.http import client as http_client
from tests.cli.test_remote import _env, _ok, _warden
from tests.conftest import REPO, auth
from tests.console.people import Person, axe_violations, person
from tests.identity.test_oidc import _audit_texts
from tests.servers import SharedServer

CHALLENGE = re.compile(r"/console/cli-login\?challenge=([A-Za-z0-9_-]{43})")


def _fill_sign_in(page: Page, who: Person) -> None:
    page.get_by_label("Name").fill(who.name)
    page.get_by_label("Password").fill(who.password)
    page.get_by_label("One-time code").fill(who.code())
    page.get_by_role("button", name="Sign in").click()


def _allow(page: Page, shared: SharedServer, who: Person, url: str, *, signed_in: bool) -> str:
    """Open the page the CLI printed, sign in if sent to, allow; the code shown."""
    page.goto(url)
    if not signed_in:
        # The console sends the person to sign in and back, the challenge kept.
        assert "/console/sign-in" in page.url
        _fill_sign_in(page, who)
        page.wait_for_url(re.compile(r"/console/cli-login\?challenge="))
        assert page.url == url
    assert page.get_by_text(who.name).first.is_visible()
    assert axe_violations(page) == []
    with page.expect_response(f"{shared.url}/console/cli-login") as answered:
        page.get_by_role("button", name=re.compile("^Allow")).click()
    response = answered.value
    assert response.status == 201 and response.headers["cache-control"] == "no-store"
    assert axe_violations(page) == []
    return page.locator("#cli-code").inner_text().strip()


@contextmanager
def _login_in_background(shared: SharedServer, home: Path) -> Iterator[subprocess.Popen[str]]:
    env = _env(home, {"BROWSER": "true", "PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "governance.cli.main", "login", "--server", shared.url, "--browser"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _printed_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    for _ in range(5):
        line = process.stdout.readline()
        if (found := CHALLENGE.search(line)) is not None:
            return line[line.index("http") : found.end()]
    raise AssertionError("the CLI printed no console link")


def _challenge() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    return verifier, cli_grants.challenge_of(verifier)


def _redeem(shared: SharedServer, code: str, verifier: str, ip: str) -> httpx.Response:
    # Each test from an address of its own: the first refusal from an address is audited alone.
    transport = httpx.HTTPTransport(local_address=ip)
    with http_client(base_url=shared.url, timeout=30, transport=transport) as http:
        return http.post("/v1/session/cli", json={"code": code, "verifier": verifier})


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("cli-grant-refused")
    assert "set-cookie" not in response.headers


def _refusals_audited(shared: SharedServer) -> bool:
    return any(
        e["event_type"] == "api.call" and "command-line sign-in refused" in json.dumps(e)
        for e in _audit_texts(shared)
    )


def test_the_cli_signs_in_as_the_person_who_allowed_it_in_the_browser(
    shared_server: SharedServer, page: Page, tmp_path: Path
) -> None:
    officer = person(shared_server, "compliance_officer", prefix="officer")
    with _login_in_background(shared_server, tmp_path) as process:
        url = _printed_url(process)
        assert url.startswith(f"{shared_server.url}/console/cli-login?challenge=")
        code = _allow(page, shared_server, officer, url, signed_in=False)
        out, err = process.communicate(f"{code}\n", timeout=60)
    assert process.returncode == 0, out + err
    assert f"signed in to {shared_server.url} as {officer.name}" in out
    stored = json.loads((tmp_path / "config" / "warden" / "session.json").read_text())
    assert stored["name"] == officer.name and stored["cookie"].startswith("wss_")

    assert _ok(_warden(tmp_path, "whoami")).strip() == f"{officer.name} at {shared_server.url}"
    shown = json.loads(_ok(_warden(tmp_path, "policy", "show", "--json")))
    assert shown["view"]["grants"]

    entries = _audit_texts(shared_server)
    mine = [e for e in entries if e["actor"].get("name") == officer.name]
    granted = [e for e in mine if e["event_type"] == "principal.session"]
    assert {e["action"] for e in granted} >= {"cli-grant", "create"}
    opened = next(e for e in granted if e["action"] == "create" and e["details"].get("cli"))
    assert opened["actor"]["auth_method"] == "browser"
    assert any(
        e["event_type"] == "api.call" and e["actor"]["auth_method"] == "session" for e in mine
    ), "the remote command is audited under the person's name"
    # Nothing secret in the log: neither the code nor the session.
    assert code not in json.dumps(entries) and stored["cookie"] not in json.dumps(entries)

    # The code is used up: a second redemption fails, even with the right verifier.
    _refused(_redeem(shared_server, code, "x" * 43, "127.0.0.31"))


def test_a_code_opens_nothing_without_its_verifier_nor_twice(
    shared_server: SharedServer, page: Page
) -> None:
    engineer = person(shared_server, "ml_engineer", prefix="engineer")
    verifier, challenge = _challenge()
    url = f"{shared_server.url}/console/cli-login?challenge={challenge}"
    code = _allow(page, shared_server, engineer, url, signed_in=False)

    # Someone who read the code off the screen, without the CLI's verifier: refused, and the
    # code is burnt, so the person's own CLI starts again rather than race them.
    _refused(_redeem(shared_server, code, secrets.token_urlsafe(32), "127.0.0.32"))
    _refused(_redeem(shared_server, code, verifier, "127.0.0.32"))

    # A fresh grant: the right verifier opens a session as the person, once.
    code = _allow(page, shared_server, engineer, url, signed_in=True)
    opened = _redeem(shared_server, code, verifier, "127.0.0.33")
    assert opened.status_code == 201, opened.text
    assert opened.json()["principal"] == engineer.name and opened.json()["csrf_token"]
    assert (opened.cookies.get("warden_session") or "").startswith("wss_")
    _refused(_redeem(shared_server, code, verifier, "127.0.0.33"))
    _refused(_redeem(shared_server, "never-issued", verifier, "127.0.0.33"))

    deadline = time.monotonic() + 5
    while not _refusals_audited(shared_server):
        assert time.monotonic() < deadline, "the refusals are audited"
        time.sleep(0.05)

    # A challenge that is not one the CLI makes: a 422 page, no grant.
    answer = page.goto(f"{shared_server.url}/console/cli-login?challenge=short")
    assert answer is not None and answer.status == 422


def _edit(shared: SharedServer, code: str, **values: object) -> None:
    engine = make_engine(shared.settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            edit = update(CliGrant).where(CliGrant.code_hash == digest(code)).values(**values)
            assert conn.execute(edit).rowcount == 1
    finally:
        engine.dispose()


def test_an_expired_or_hand_written_grant_opens_nothing(
    shared_server: SharedServer, page: Page
) -> None:
    engineer = person(shared_server, "ml_engineer", prefix="engineer")
    verifier, challenge = _challenge()
    url = f"{shared_server.url}/console/cli-login?challenge={challenge}"
    code = _allow(page, shared_server, engineer, url, signed_in=False)
    log = shared_server.folder / "server.log"

    # Past its five minutes (moved back in the database: the server's clock is real). Refused
    # as expired, before the audit log is asked about it.
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    _edit(shared_server, code, created_at=long_ago, expires_at=long_ago + cli_grants.GRANT_TTL)
    _refused(_redeem(shared_server, code, verifier, "127.0.0.34"))
    assert "command-line grant" not in log.read_text()

    # A row a database administrator writes for someone: no audit entry vouches for it.
    forged = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    engine = make_engine(shared_server.settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            who = conn.execute(
                select(Principal.id).where(Principal.name == engineer.name)
            ).scalar_one()
            conn.execute(
                insert(CliGrant).values(
                    code_hash=digest(forged),
                    challenge=challenge,
                    principal_id=who,
                    created_at=now,
                    expires_at=now + cli_grants.GRANT_TTL,
                )
            )
    finally:
        engine.dispose()
    _refused(_redeem(shared_server, forged, verifier, "127.0.0.35"))
    text = log.read_text()
    assert "command-line grant" in text and "not anchored" in text


def test_an_api_key_cannot_open_the_page(shared_server: SharedServer) -> None:
    _, challenge = _challenge()
    key = shared_server.warden.principal(shared_server.unique("svc"), "ml_engineer")
    r = shared_server.http.get(f"/console/cli-login?challenge={challenge}", headers=auth(key))
    assert r.status_code == 403


def test_browser_sign_in_takes_no_name_or_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whoever is signed in to the console is who the CLI becomes: a name here would mislead.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    args = ["login", "--server", "http://127.0.0.1:9", "--browser", "--name", "olivia"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--browser signs in as whoever" in result.output
    assert not (tmp_path / "warden").exists()
