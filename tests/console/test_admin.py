"""The admin's console pages and the enrolment page (issue 29): an admin enrols a person, who
redeems the code, sets a password, scans the TOTP secret and signs in; service keys, role
grants with their pending approvals, key rotation; and who is kept out."""

from __future__ import annotations

import re
from typing import Any

import pyotp
from playwright.sync_api import Page

from tests.conftest import auth
from tests.console.people import PASSWORD, Person, axe_violations, person, sign_in
from tests.servers import SharedServer


def _audited(shared: SharedServer, actor: str, event_type: str) -> list[dict[str, Any]]:
    reader = shared.warden.principal(shared.unique("log-reader"), "auditor", kind="service")
    r = shared.http.get(
        "/v1/audit/entries",
        params={"actor": actor, "event_type": event_type, "limit": 1000},
        headers=auth(reader),
    )
    assert r.status_code == 200, r.text
    return list(r.json()["entries"])


def _enrolment_code(page: Page, shared: SharedServer, name: str) -> str:
    """Create a person on the principals page and issue their code, as the admin would."""
    page.goto(f"{shared.url}/console/admin/principals")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Kind").select_option("user")
    page.get_by_role("button", name="Create principal").click()
    assert page.get_by_role("status").inner_text() == f"Created {name}."
    page.get_by_role("button", name=f"Enrolment code for {name}").click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Enrolment code for {name}"
    assert axe_violations(page) == []
    return page.locator("#enrolment-code").inner_text()


def _enrol(page: Page, shared: SharedServer, code: str, password: str) -> None:
    page.goto(f"{shared.url}/console/enrol")
    page.get_by_label("Enrolment code").fill(code)
    page.get_by_label("New password", exact=True).fill(password)
    page.get_by_label("New password again").fill(password)
    page.get_by_role("button", name="Enrol").click()


def test_an_admin_enrols_a_person_who_signs_in_with_totp(
    shared_server: SharedServer, page: Page
) -> None:
    admin = person(shared_server, "admin", prefix="admin")
    sign_in(page, shared_server, admin, "/console/admin/principals")
    assert axe_violations(page) == []
    newcomer = shared_server.unique("newcomer")
    code = _enrolment_code(page, shared_server, newcomer)
    assert code
    # The auditor role needs a second factor: the enrolment page must show it.
    shared_server.warden.grant(newcomer, "auditor")

    page.context.clear_cookies()
    page.goto(f"{shared_server.url}/console/enrol")
    assert axe_violations(page) == []
    _enrol(page, shared_server, "wec_not-a-real-code", PASSWORD)
    assert "enrolment code" in page.get_by_role("alert").inner_text()
    # A password holding the name is refused, and the code stays unredeemed for another try.
    _enrol(page, shared_server, code, f"{newcomer} secret words")
    assert "name" in page.get_by_role("alert").inner_text()
    assert axe_violations(page) == []
    _enrol(page, shared_server, code, PASSWORD)
    assert page.get_by_role("heading", level=1).inner_text() == f"You are enrolled, {newcomer}"
    qr = page.get_by_role("img", name="QR code of your TOTP secret for the authenticator app")
    assert qr.get_attribute("src", timeout=1000).startswith("data:image/svg+xml;base64,")
    secret = page.locator("#totp-secret").inner_text()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret)
    assert axe_violations(page) == []
    # Redeemed once: the same code opens nothing a second time.
    _enrol(page, shared_server, code, PASSWORD)
    assert "enrolment code" in page.get_by_role("alert").inner_text()

    sign_in(page, shared_server, Person(newcomer, PASSWORD, pyotp.TOTP(secret)))
    assert page.get_by_role("heading", level=1).inner_text() == f"Welcome, {newcomer}"
    assert "auditor" in page.locator("header").inner_text()
    # The log names the admin, not a service key or "cli", for creating and enrolling.
    assert _audited(shared_server, admin.name, "principal.create")
    assert _audited(shared_server, admin.name, "principal.enrolment")


def test_a_person_without_a_second_factor_role_gets_no_qr_code(
    shared_server: SharedServer, page: Page
) -> None:
    admin = person(shared_server, "admin", prefix="admin")
    sign_in(page, shared_server, admin, "/console/admin/principals")
    engineer = shared_server.unique("engineer")
    code = _enrolment_code(page, shared_server, engineer)
    # An ML engineer's role applies at once: it widens no power over governance.
    page.goto(f"{shared_server.url}/console/admin/roles")
    page.get_by_label("Principal").fill(engineer)
    page.get_by_label("Role").select_option("ml_engineer")
    page.get_by_label("Reason").fill("joins the modelling team")
    page.get_by_role("button", name="Submit role change").click()
    assert page.get_by_role("status").inner_text().startswith("Applied")
    held = page.locator("table[aria-labelledby=holdings] tr", has_text=engineer)
    assert "ml_engineer" in held.inner_text()
    assert "joins the modelling team" in held.inner_text()
    assert axe_violations(page) == []

    page.context.clear_cookies()
    _enrol(page, shared_server, code, PASSWORD)
    assert page.get_by_role("heading", level=1).inner_text() == f"You are enrolled, {engineer}"
    assert page.get_by_role("img").count() == 0
    sign_in(page, shared_server, Person(engineer, PASSWORD, None))
    assert "ml_engineer" in page.locator("header").inner_text()


def test_grants_that_widen_power_wait_for_another_officer(
    shared_server: SharedServer, page: Page
) -> None:
    admin = person(shared_server, "admin", prefix="admin")
    officer = person(shared_server, "compliance_officer", prefix="officer")
    target = shared_server.unique("target")
    shared_server.warden.principal(target)
    sign_in(page, shared_server, admin, "/console/admin/roles")
    page.get_by_label("Principal").fill(target)
    page.get_by_label("Role").select_option("auditor")
    page.get_by_label("Reason").fill("quarterly review")
    page.get_by_role("button", name="Submit role change").click()
    assert page.get_by_role("status").inner_text().startswith("Pending")
    row = page.locator("table[aria-labelledby=pending] tr", has_text=target)
    assert "grant auditor to" in row.inner_text()
    # An admin may read the queue but not approve: no button is offered.
    assert row.get_by_role("button").count() == 0
    assert axe_violations(page) == []

    page.context.clear_cookies()
    sign_in(page, shared_server, officer, "/console/admin/roles")
    row = page.locator("table[aria-labelledby=pending] tr", has_text=target)
    row.get_by_role("button", name="Approve").click()
    # Both were enrolled by the same admin within the proposal's lifetime: the approval goes
    # through separation of duties, as through the API, and is refused with the reason.
    assert "separation of duties" in page.get_by_role("alert").inner_text()
    assert page.locator("table[aria-labelledby=pending] tr", has_text=target).count() == 1
    assert axe_violations(page) == []


def test_service_keys_are_shown_once_and_revoked(shared_server: SharedServer, page: Page) -> None:
    admin = person(shared_server, "admin", prefix="admin")
    service = shared_server.unique("svc")
    sign_in(page, shared_server, admin, "/console/admin/principals")
    page.get_by_label("Name").fill(service)
    page.get_by_label("Kind").select_option("service")
    page.get_by_role("button", name="Create principal").click()
    page.goto(f"{shared_server.url}/console/admin/keys")
    assert axe_violations(page) == []
    page.get_by_label("Service").select_option(service)
    page.get_by_role("button", name="Issue key").click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Key issued to {service}"
    token = page.locator("#api-key").inner_text()
    assert axe_violations(page) == []
    # A live key: the service is known (403: it holds no role yet), not a stranger (401).
    assert shared_server.http.get("/v1/policy", headers=auth(token)).status_code == 403

    page.goto(f"{shared_server.url}/console/admin/keys")
    row = page.locator("tbody tr", has_text=service)
    row.get_by_role("button", name="Revoke").click()
    assert "revoked" in page.locator("tbody tr", has_text=service).inner_text()
    assert shared_server.http.get("/v1/policy", headers=auth(token)).status_code == 401
    # A key for another person is refused, as through the API: people enrol.
    someone = shared_server.unique("someone")
    made = shared_server.http.post(
        "/v1/principals", json={"name": someone}, headers=auth(shared_server.admin)
    )
    assert made.status_code == 201, made.text
    r = page.request.post(
        f"{shared_server.url}/console/admin/keys",
        form={"principal": someone, "csrf_token": _csrf(page)},
    )
    assert r.status == 403
    assert "enrol" in r.text()

    page.goto(f"{shared_server.url}/console/admin/vault")
    assert axe_violations(page) == []
    page.get_by_label("Reason").fill("console test rotation")
    page.get_by_role("button", name="Rotate KEK").click()
    assert page.get_by_role("status").inner_text().startswith("The KEK was rotated")
    assert "console test rotation" in page.locator("table[aria-labelledby=rotations]").inner_text()
    assert _audited(shared_server, admin.name, "key.rotate")


def _csrf(page: Page) -> str:
    return {c["name"]: c["value"] for c in page.context.cookies()}["warden_console_csrf"]


def test_the_admin_pages_are_closed_to_other_roles(shared_server: SharedServer, page: Page) -> None:
    engineer = person(shared_server, "ml_engineer", prefix="engineer")
    sign_in(page, shared_server, engineer)
    nav = page.get_by_role("navigation", name="Sections")
    for label in ("Principals", "Service keys", "Role grants", "Key rotation"):
        assert nav.get_by_role("link", name=label).count() == 0
    for path in ("principals", "keys", "roles", "vault"):
        response = page.goto(f"{shared_server.url}/console/admin/{path}")
        assert response is not None and response.status == 403
    assert axe_violations(page) == []
