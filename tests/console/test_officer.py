"""The compliance officer's console: a deny rule proposed, checked and approved by two people,
and the pages an officer reads (issue 29)."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from governance.audit.models import AuditEntry
from governance.db import make_engine, make_sessionmaker
from governance.identity.enrolment import enrolments
from governance.kit.context import cli_context
from tests.conftest import auth, serve_toy
from tests.console.people import PASSWORD, Person, axe_violations, person, sign_in, totp_of
from tests.factories import toy_record
from tests.servers import SharedServer


def locally_enrolled(shared: SharedServer, *roles: str, prefix: str) -> Person:
    """A person enrolled by the local operator, not by the admin: separation of duties would
    refuse an approval between two people the same admin enrolled within the proposal's
    lifetime."""
    name = shared.unique(prefix)
    r = shared.http.post("/v1/principals", json={"name": name}, headers=auth(shared.admin))
    assert r.status_code == 201, r.text
    for role in roles:
        shared.warden.grant(name, role)
    engine = make_engine(shared.settings.resolved_database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            _, code = enrolments.create(session, cli_context("test-operator"), principal=name)
    finally:
        engine.dispose()
    r = shared.http.post("/v1/enrol", json={"code": code, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return Person(name, PASSWORD, totp_of(dict(r.json())))


def proposal_entries(shared: SharedServer, proposal_id: int) -> list[dict[str, object]]:
    engine = make_engine(shared.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            texts = conn.execute(
                select(AuditEntry.canonical).where(AuditEntry.event_type == "policy.proposal")
            ).scalars()
            entries = [json.loads(t) for t in texts]
    finally:
        engine.dispose()
    return [e for e in entries if e["resource"].get("policy_proposal") == proposal_id]


def test_two_officers_deny_a_client_its_model(shared_server: SharedServer, page: Page) -> None:
    suffix = shared_server.unique("t")
    model = f"toy-{suffix}"
    client_key, _ = serve_toy(
        shared_server.warden, shared_server.artifact, model=model, names=lambda b: f"{b}-{suffix}"
    )
    client = f"app-{suffix}"
    predict = f"/v1/models/{model}/predict"
    r = shared_server.http.post(predict, json={"record": toy_record()}, headers=auth(client_key))
    assert r.status_code == 200, r.text

    author = person(shared_server, "compliance_officer", prefix="officer")
    sign_in(page, shared_server, author, "/console/officer/policy")
    assert page.get_by_role("heading", level=1).inner_text() == "Access policy"
    assert axe_violations(page) == []
    rule = f"p, {client}, model:{model}, predict, deny"
    page.get_by_label("Rules to add").fill(rule)
    page.get_by_label("Days of traffic to replay").fill("1")
    page.get_by_role("button", name="Preview the change").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Preview a policy change")
    assert f"+ {rule}" in page.locator("pre.diff").inner_text()
    # The client's prediction a moment ago is among the requests it would lose.
    impact = page.get_by_role("table", name=re.compile("Impact"))
    expect(impact).to_contain_text(client)
    expect(impact).to_contain_text(f"model:{model}")
    assert axe_violations(page) == []
    page.get_by_label("Reason").fill("the client's contract for this model has ended")
    page.get_by_role("button", name="Submit for approval").click()
    page.wait_for_url(re.compile(r".*/console/officer/proposals/\d+$"))
    proposal_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_text("another compliance officer decides it")).to_be_visible()
    assert page.get_by_role("button", name="Approve and apply").count() == 0
    assert axe_violations(page) == []
    # Four eyes: the author's own approval is refused, even posted by hand.
    token = {c["name"]: c["value"] for c in page.context.cookies()}["warden_console_csrf"]
    refused = page.request.post(
        f"{shared_server.url}/console/officer/proposals/{proposal_id}/approve",
        form={"csrf_token": token, "reason": "self"},
    )
    assert refused.status == 409
    assert "separation of duties" in refused.text()

    page.context.clear_cookies()
    approver = locally_enrolled(shared_server, "compliance_officer", prefix="officer")
    sign_in(page, shared_server, approver, "/console/officer/proposals")
    queue = page.get_by_role("table", name="Waiting for a second officer")
    queue.get_by_role("link", name=f"Proposal {proposal_id}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Proposal {proposal_id}")
    assert axe_violations(page) == []
    page.get_by_label("Note with the approval").fill("checked with the contract register")
    page.get_by_role("button", name="Approve and apply").click()
    expect(page.get_by_role("status").first).to_contain_text("Approved")
    assert axe_violations(page) == []

    r = shared_server.http.post(predict, json={"record": toy_record()}, headers=auth(client_key))
    assert r.status_code == 403, r.text
    entries = proposal_entries(shared_server, proposal_id)
    by = {e["action"]: e["actor"]["name"] for e in entries}
    assert by == {"propose": author.name, "approve": approver.name}
