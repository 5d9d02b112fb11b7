"""Personal sign-in against a live server (issue 29, item 1): passwords, TOTP, sessions, CSRF.

A person sets a password when redeeming their enrolment (officers, auditors and admins get a
TOTP secret in the same answer), signs in with ``POST /v1/session`` and then calls the API with
the ``warden_session`` cookie as they would with their key; changes made with the cookie carry
the session's CSRF token. Idle and absolute expiry are in test_session_expiry.py (a clock the
test moves).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator

import httpx
import pyotp
import pytest
from sqlalchemy import Update, select, update

from governance.audit.models import AuditEntry
from governance.db import make_engine
from governance.identity import passwords
from governance.identity.models import Credential, Principal, SignInSession
from governance.kit.http import client as http_client
from tests.conftest import auth
from tests.servers import SharedServer

PASSWORD = "correct horse battery staple"


def _client(shared: SharedServer, address: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return http_client(base_url=shared.url, timeout=30, transport=transport)


@pytest.fixture
def browser(shared_server: SharedServer) -> Iterator[httpx.Client]:
    """A client with its own cookie jar, as a browser is."""
    with _client(shared_server) as client:
        yield client


def _person(shared: SharedServer, *roles: str) -> str:
    name = shared.unique("person")
    r = shared.http.post("/v1/principals", json={"name": name}, headers=auth(shared.admin))
    assert r.status_code == 201, r.text
    for role in roles:
        shared.warden.grant(name, role)
    return name


def _code(shared: SharedServer, name: str) -> str:
    r = shared.http.post(f"/v1/principals/{name}/enrolment", headers=auth(shared.admin))
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def _enrol(shared: SharedServer, name: str, password: str = PASSWORD) -> dict[str, object]:
    r = shared.http.post("/v1/enrol", json={"code": _code(shared, name), "password": password})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _totp(enrolled: dict[str, object]) -> pyotp.TOTP:
    totp = enrolled["totp"]
    assert isinstance(totp, dict)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(str(totp["uri"])).query)
    return pyotp.TOTP(query["secret"][0])


def _sign_in(
    client: httpx.Client, name: str, password: str = PASSWORD, totp: str | None = None
) -> httpx.Response:
    body = {"name": name, "password": password}
    if totp is not None:
        body["totp"] = totp
    return client.post("/v1/session", json=body)


def _audit_texts(shared: SharedServer) -> list[str]:
    engine = make_engine(shared.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(AuditEntry.canonical)).scalars())
    finally:
        engine.dispose()


def test_an_officer_signs_in_with_password_and_totp(
    shared_server: SharedServer, browser: httpx.Client
) -> None:
    name = _person(shared_server, "compliance_officer")
    enrolled = _enrol(shared_server, name)
    totp_out = enrolled["totp"]
    assert isinstance(totp_out, dict)
    assert str(totp_out["uri"]).startswith("otpauth://totp/Warden:")
    assert str(totp_out["qr_svg"]).startswith("data:image/svg+xml;base64,")
    totp = _totp(enrolled)

    # Without the code, or with a wrong one, an officer is refused.
    assert _sign_in(browser, name).status_code == 401
    wrong = f"{(int(totp.now()) + 1) % 1_000_000:06d}"
    assert _sign_in(browser, name, totp=wrong).status_code == 401
    code = totp.now()
    r = _sign_in(browser, name, totp=code)
    assert r.status_code == 201, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("warden_session=wss_")
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/" in lowered
    # Bound to loopback: no Secure flag, or the browser would not send it over http.
    assert "secure" not in lowered.replace("samesite", "")
    csrf = r.json()["csrf_token"]

    # The session authenticates like the officer's key, under the same permissions.
    assert browser.get("/v1/policy").status_code == 200
    assert browser.get("/v1/keys").status_code == 403
    sessions = browser.get("/v1/sessions").json()
    assert [s["current"] for s in sessions] == [True]

    # The code cannot be used again, even with the right password, from another browser.
    with _client(shared_server) as other:
        assert _sign_in(other, name, totp=code).status_code == 401

    # Signing out needs the CSRF token like any change; then the cookie opens nothing.
    assert browser.delete("/v1/session").status_code == 403
    r = browser.delete("/v1/session", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204, r.text
    browser.cookies.set("warden_session", cookie.split(";")[0].split("=", 1)[1])
    r = browser.get("/v1/policy")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")

    texts = [json.loads(t) for t in _audit_texts(shared_server)]
    opened = [
        t for t in texts if t["event_type"] == "principal.session" and t["action"] == "create"
    ]
    assert any(t["actor"]["name"] == name for t in opened)
    by_session = [
        t
        for t in texts
        if t["actor"].get("name") == name and t["actor"].get("auth_method") == "session"
    ]
    assert by_session, "requests made with the cookie are audited as the person, by session"


def test_passwords_must_be_long_and_not_contain_the_name(shared_server: SharedServer) -> None:
    name = _person(shared_server)
    code = _code(shared_server, name)
    for weak in ("short pass", f"my {name.upper()} password 2026"):
        r = shared_server.http.post("/v1/enrol", json={"code": code, "password": weak})
        assert r.status_code == 422, r.text
        assert r.json()["type"].endswith("weak-password")
    # The refused password left the code unredeemed.
    r = shared_server.http.post("/v1/enrol", json={"code": code, "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json()["totp"] is None


def test_key_only_enrolment_then_password_with_the_key(
    shared_server: SharedServer, browser: httpx.Client
) -> None:
    name = _person(shared_server)
    r = shared_server.http.post("/v1/enrol", json={"code": _code(shared_server, name)})
    assert r.status_code == 201, r.text
    key = r.json()["token"]
    assert _sign_in(browser, name).status_code == 401
    r = shared_server.http.put("/v1/me/password", json={"password": PASSWORD}, headers=auth(key))
    assert r.status_code == 200, r.text
    assert r.json() == {"principal": name, "totp": None}
    assert _sign_in(browser, name, password=PASSWORD + "x").status_code == 401
    assert _sign_in(browser, name).status_code == 201
    assert browser.get("/v1/sessions").status_code == 200
    # A new password ends every session of the person.
    r = shared_server.http.put(
        "/v1/me/password", json={"password": PASSWORD + " anew"}, headers=auth(key)
    )
    assert r.status_code == 200, r.text
    assert browser.get("/v1/sessions").status_code == 401


def test_cookie_changes_need_the_csrf_token(
    shared_server: SharedServer, browser: httpx.Client
) -> None:
    name = _person(shared_server)
    _enrol(shared_server, name)
    first = _sign_in(browser, name)
    assert first.status_code == 201
    with _client(shared_server) as second_browser:
        second = _sign_in(second_browser, name)
        assert second.status_code == 201
        victim = second.json()["session"]["id"]
        for headers in (
            {},
            {"X-CSRF-Token": "not-the-token"},
            {"X-CSRF-Token": second.json()["csrf_token"]},
        ):
            r = browser.delete(f"/v1/sessions/{victim}", headers=headers)
            assert r.status_code == 403, r.text
            assert r.json()["type"].endswith("csrf-token-required")
        assert second_browser.get("/v1/sessions").status_code == 200
        r = browser.delete(
            f"/v1/sessions/{victim}", headers={"X-CSRF-Token": first.json()["csrf_token"]}
        )
        assert r.status_code == 204, r.text
        # Revoked: that browser's cookie opens nothing any more.
        assert second_browser.get("/v1/sessions").status_code == 401
    assert [s["id"] for s in browser.get("/v1/sessions").json()] == [first.json()["session"]["id"]]


def test_a_session_cannot_touch_another_persons_sessions(shared_server: SharedServer) -> None:
    alice, bob = _person(shared_server), _person(shared_server)
    _enrol(shared_server, alice)
    _enrol(shared_server, bob)
    with _client(shared_server) as a, _client(shared_server) as b:
        ra, rb = _sign_in(a, alice), _sign_in(b, bob)
        assert ra.status_code == rb.status_code == 201
        r = a.delete(
            f"/v1/sessions/{rb.json()['session']['id']}",
            headers={"X-CSRF-Token": ra.json()["csrf_token"]},
        )
        assert r.status_code == 404
        assert b.get("/v1/sessions").status_code == 200


def test_a_service_cannot_sign_in(shared_server: SharedServer, browser: httpx.Client) -> None:
    name = shared_server.unique("svc")
    key = shared_server.warden.principal(name, kind="service")
    r = shared_server.http.put("/v1/me/password", json={"password": PASSWORD}, headers=auth(key))
    assert r.status_code == 403, r.text
    assert r.json()["type"].endswith("sign-in-refused")
    assert _sign_in(browser, name).status_code == 401


def test_sign_in_failures_are_held_by_name(shared_server: SharedServer) -> None:
    name = _person(shared_server)
    _enrol(shared_server, name)
    per_name = 10  # governance/limits/service.py: SIGN_IN_FAILURES
    with _client(shared_server, "127.0.0.2") as guesser:
        statuses = [
            _sign_in(guesser, name, password=f"guess {i:04d} wrong").status_code
            for i in range(per_name)
        ]
        assert set(statuses) == {401}
        r = _sign_in(guesser, name, password="one guess too many")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    # The name is held, whatever the address: the right password waits out the window too.
    with _client(shared_server, "127.0.0.3") as elsewhere:
        assert _sign_in(elsewhere, name).status_code == 429


def test_an_address_past_failed_auth_cannot_try_passwords(shared_server: SharedServer) -> None:
    name = _person(shared_server)
    _enrol(shared_server, name)
    limit = 100  # policies/limits.yaml: failed_auth, counted by wrong keys and passwords alike
    with _client(shared_server, "127.0.0.4") as attacker:
        wrong = auth("wdn_00000000_" + "A" * 43)
        statuses = {attacker.get("/v1/sessions", headers=wrong).status_code for _ in range(limit)}
        assert statuses == {401}
        assert attacker.get("/v1/sessions", headers=wrong).status_code == 429
        assert _sign_in(attacker, name).status_code == 429


def test_sign_ins_are_audited_without_the_password_or_code(
    shared_server: SharedServer,
) -> None:
    password = "Zq7-unique-" + shared_server.unique("pw")
    name = _person(shared_server, "auditor")
    totp = _totp(_enrol(shared_server, name, password))
    # From an address of its own: its first refusal is audited alone, not summarised.
    with _client(shared_server, "127.0.0.5") as browser:
        assert _sign_in(browser, name, password=password + "-wrong").status_code == 401
        code = totp.now()
        assert _sign_in(browser, name, password=password, totp=code).status_code == 201
    deadline = time.monotonic() + 5
    while True:
        entries = [json.loads(t) for t in _audit_texts(shared_server) if name in t]
        failed = [
            e for e in entries if e["decision"] == "deny" and "sign-in failed" in json.dumps(e)
        ]
        opened = [e for e in entries if e["event_type"] == "principal.session"]
        if (failed and opened) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert failed, "the failed sign-in is audited, naming who was tried"
    assert opened and opened[0]["actor"]["name"] == name
    texts = "\n".join(_audit_texts(shared_server))
    log = (shared_server.folder / "server.log").read_text()
    for leaked in (password, str(totp.secret), f'"{code}"'):
        assert leaked not in texts
        assert leaked not in log


def _dba(shared: SharedServer, statement: Update) -> None:
    """A database administrator's edit, straight to the table."""
    engine = make_engine(shared.settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(statement).rowcount == 1
    finally:
        engine.dispose()


def test_sessions_and_passwords_edited_in_the_database_open_nothing(
    shared_server: SharedServer,
) -> None:
    alice, officer = _person(shared_server), _person(shared_server, "compliance_officer")
    _enrol(shared_server, alice)
    _enrol(shared_server, officer)
    with _client(shared_server) as browser:
        r = _sign_in(browser, alice)
        assert r.status_code == 201
        assert browser.get("/v1/sessions").status_code == 200
        # Alice's session handed to the officer by hand: it opens nothing, for either.
        officer_id = _principal_id(shared_server, officer)
        _dba(
            shared_server,
            update(SignInSession)
            .where(SignInSession.id == r.json()["session"]["id"])
            .values(principal_id=officer_id),
        )
        assert browser.get("/v1/sessions").status_code == 401
    # A password hash replaced by hand does not let its author sign in as that person.
    _dba(
        shared_server,
        update(Credential)
        .where(Credential.principal_id == _principal_id(shared_server, alice))
        .values(password_hash=passwords.hash_password("the DBA's own password")),
    )
    with _client(shared_server) as browser:
        assert _sign_in(browser, alice, password="the DBA's own password").status_code == 401
        assert _sign_in(browser, alice).status_code == 401


def _principal_id(shared: SharedServer, name: str) -> int:
    engine = make_engine(shared.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(select(Principal.id).where(Principal.name == name)).scalar_one()
            return int(found)
    finally:
        engine.dispose()
