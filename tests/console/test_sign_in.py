"""Signing in to the console, and what keeps others out: API keys, missing CSRF tokens, ended
sessions (issue 29)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from playwright.sync_api import Page
from sqlalchemy import func, select, update

from governance.audit.models import AuditEntry
from governance.db import make_engine
from governance.identity.models import Principal, SignInSession
from governance.kit.http import client as http_client
from tests.conftest import auth
from tests.console.people import axe_violations, person, sign_in
from tests.servers import SharedServer


def _cookies(page: Page) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies()}


def test_a_person_signs_in_with_password_and_totp(shared_server: SharedServer, page: Page) -> None:
    officer = person(shared_server, "compliance_officer", prefix="officer")
    page.goto(f"{shared_server.url}/console/")
    # No session: the console sends the person to sign in, and back afterwards.
    assert page.url.startswith(f"{shared_server.url}/console/sign-in")
    assert axe_violations(page) == []
    sign_in(page, shared_server, officer)
    assert page.get_by_role("heading", level=1).inner_text() == f"Welcome, {officer.name}"
    assert "compliance_officer" in page.locator("header").inner_text()
    assert page.get_by_text("this session").count() == 1
    assert axe_violations(page) == []
    cookies = {c["name"]: c for c in page.context.cookies()}
    for name in ("warden_session", "warden_console_csrf"):
        assert cookies[name]["httpOnly"] and cookies[name]["sameSite"] == "Strict"


def test_a_wrong_code_is_refused_on_the_form(shared_server: SharedServer, page: Page) -> None:
    officer = person(shared_server, "compliance_officer", prefix="officer")
    page.goto(f"{shared_server.url}/console/sign-in")
    page.get_by_label("Name").fill(officer.name)
    page.get_by_label("Password").fill(officer.password)
    page.get_by_label("One-time code").fill("000000" if officer.code() != "000000" else "111111")
    page.get_by_role("button", name="Sign in").click()
    assert "sign-in failed" in page.get_by_role("alert").inner_text()
    assert "warden_session" not in _cookies(page)


def test_an_api_key_does_not_open_the_console(shared_server: SharedServer) -> None:
    r = shared_server.http.get("/console/", headers=auth(shared_server.admin))
    assert r.status_code == 403
    assert "API keys are for the API" in r.text
    assert r.headers["content-type"].startswith("text/html")


def test_a_form_posted_without_its_token_is_refused(
    shared_server: SharedServer, page: Page
) -> None:
    who = person(shared_server, "auditor", prefix="auditor")
    sign_in(page, shared_server, who)
    cookies = _cookies(page)
    with http_client(base_url=shared_server.url, timeout=30) as client:
        client.cookies.set("warden_session", cookies["warden_session"])
        refused = client.post("/console/sign-out", data={})
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        # The session is still open: the refused form changed nothing.
        assert client.get("/console/").status_code == 200
        forged = client.post("/console/sign-out", data={"csrf_token": "wcs_forged"})
        assert forged.status_code == 403
    page.reload()
    assert page.get_by_role("heading", level=1).inner_text() == f"Welcome, {who.name}"


def test_an_expired_session_sends_the_person_back_to_sign_in(
    shared_server: SharedServer, page: Page
) -> None:
    who = person(shared_server, "ml_engineer", prefix="engineer")
    sign_in(page, shared_server, who)
    engine = make_engine(shared_server.settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            person_id = conn.execute(
                select(Principal.id).where(Principal.name == who.name)
            ).scalar_one()
            rows = conn.execute(
                select(SignInSession.id, SignInSession.last_seen_at).where(
                    SignInSession.principal_id == person_id
                )
            ).all()
            for row_id, seen in rows:
                # As if the person had left the page idle past the 15 minutes the server allows.
                conn.execute(
                    update(SignInSession)
                    .where(SignInSession.id == row_id)
                    .values(last_seen_at=seen - timedelta(minutes=16))
                )
    finally:
        engine.dispose()
    page.goto(f"{shared_server.url}/console/")
    assert page.url == f"{shared_server.url}/console/sign-in?next=/console/"


def test_sign_out_ends_the_session_on_the_server(shared_server: SharedServer, page: Page) -> None:
    who = person(shared_server, "ml_engineer", prefix="engineer")
    sign_in(page, shared_server, who)
    stolen = _cookies(page)["warden_session"]
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{shared_server.url}/console/sign-in")
    with http_client(base_url=shared_server.url, timeout=30) as client:
        client.cookies.set("warden_session", stolen)
        assert client.get("/v1/sessions").status_code == 401


def _entries_for(shared: SharedServer, action: str) -> int:
    engine = make_engine(shared.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_loading_the_sign_in_form_is_not_audited_but_posting_it_is(
    shared_server: SharedServer,
) -> None:
    # From an address of its own: the first failure from an address in a window is audited on
    # its own, later ones are summarised (governance/limits/summary.py).
    transport = httpx.HTTPTransport(local_address="127.0.0.23")
    with http_client(base_url=shared_server.url, timeout=30, transport=transport) as client:
        for _ in range(5):
            r = client.get("/console/sign-in")
            assert r.status_code == 200
            assert "no-store" not in r.headers.get("cache-control", "")
            assert "script-src 'self'" in r.headers["content-security-policy"]
        before = _entries_for(shared_server, "POST /console/sign-in")
        refused = client.post(
            "/console/sign-in", data={"name": "nobody-here", "password": "not the password"}
        )
        assert refused.status_code == 401
        assert "sign-in failed" in refused.text
    assert _entries_for(shared_server, "GET /console/sign-in") == 0
    assert _entries_for(shared_server, "POST /console/sign-in") == before + 1


def test_signing_in_never_sends_the_person_to_another_site(shared_server: SharedServer) -> None:
    who = person(shared_server, "ml_engineer", prefix="engineer")
    for target in (
        "//evil.example/",
        "https://evil.example/console/",
        "/console/\\evil",
        "/v1/keys",
    ):
        with http_client(base_url=shared_server.url, timeout=30) as client:
            r = client.post(
                "/console/sign-in",
                data={"name": who.name, "password": who.password, "next": target},
            )
            assert r.status_code == 303, r.text
            assert r.headers["location"] == "/console/"
            page = client.get("/console/")
            assert page.status_code == 200
            # Nothing may frame a console page, and it is never stored by a cache.
            csp = page.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
            assert page.headers["cache-control"] == "no-store"


def test_a_person_revokes_another_of_their_sessions(
    shared_server: SharedServer, page: Page
) -> None:
    who = person(shared_server, "ml_engineer", prefix="engineer")
    with http_client(base_url=shared_server.url, timeout=30) as laptop:
        r = laptop.post("/console/sign-in", data={"name": who.name, "password": who.password})
        assert r.status_code == 303
        assert laptop.get("/console/").status_code == 200
        sign_in(page, shared_server, who)
        rows = page.get_by_role("row")
        assert rows.count() == 3  # the header, this session and the laptop's
        assert axe_violations(page) == []
        page.get_by_role("button", name="Revoke").click()
        page.wait_for_url(f"{shared_server.url}/console/")
        assert page.get_by_role("button", name="Revoke").count() == 0
        # The laptop's session has ended on the server.
        assert laptop.get("/v1/sessions").status_code == 401
