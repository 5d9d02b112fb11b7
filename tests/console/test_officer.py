"""The compliance officer's console: a deny rule proposed, checked and approved by two people,
and the pages an officer reads (issue 29)."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import Page, expect
from sqlalchemy import select

from governance.audit.models import AuditEntry
from governance.db import make_engine, make_sessionmaker
from governance.identity.enrolment import enrolments
from governance.kit.context import cli_context
from tests.conftest import auth, serve_toy
from tests.console.people import PASSWORD, Person, axe_violations, person, sign_in, totp_of
from tests.factories import toy_record, upload_body
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


def audit_entries(shared: SharedServer, event_type: str) -> list[dict[str, Any]]:
    engine = make_engine(shared.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            texts = conn.execute(
                select(AuditEntry.canonical).where(AuditEntry.event_type == event_type)
            ).scalars()
            return [json.loads(t) for t in texts]
    finally:
        engine.dispose()


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
    # Bad input: the form comes back with the message.
    page.get_by_label("Rules to add").fill(f"p, {client}, model:{model}")
    page.get_by_role("button", name="Preview the change").click()
    expect(page.get_by_role("alert")).to_contain_text("add[0]")
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
    entries = [
        e
        for e in audit_entries(shared_server, "policy.proposal")
        if e["resource"].get("policy_proposal") == proposal_id
    ]
    by = {e["action"]: e["actor"]["name"] for e in entries}
    assert by == {"propose": author.name, "approve": approver.name}


def test_an_officer_approves_a_model_and_edits_thresholds(
    shared_server: SharedServer, page: Page
) -> None:
    model = shared_server.unique("scorer")
    engineer = shared_server.warden.principal(shared_server.unique("eng"), "ml_engineer")
    body = upload_body(shared_server.artifact(model, "1"))
    r = shared_server.http.post("/v1/models", json=body, headers=auth(engineer))
    assert r.status_code == 201, r.text
    officer = person(shared_server, "compliance_officer", prefix="officer")

    sign_in(page, shared_server, officer, "/console/officer/models")
    page.get_by_role("link", name=f"{model} 1").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{model} 1")
    expect(page.get_by_role("table", name="Fairness gate")).to_contain_text(
        "no fairness audit of this exact artifact"
    )
    assert axe_violations(page) == []
    page.get_by_label("Justification").fill(
        "pilot on synthetic data only; the audit on the evaluation set follows next week"
    )
    page.get_by_role("button", name="Approve by override").click()
    expect(page.get_by_role("status")).to_contain_text("Approved by override")
    expect(page.locator("main")).to_contain_text("approved by override")
    assert page.get_by_role("button", name="Approve by override").count() == 0
    overridden = audit_entries(shared_server, "fairness.override")
    assert [e["actor"]["name"] for e in overridden if e["resource"]["model"] == model] == [
        officer.name
    ]

    page.get_by_role("link", name="Fairness thresholds").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Fairness thresholds")
    assert axe_violations(page) == []
    document = page.get_by_label("Thresholds document (YAML)")
    reason = page.get_by_label("Reason")
    # Bad input: the form comes back with the message, and nothing is saved.
    document.fill("min_group_size: [30")
    reason.fill("a typo that the form must refuse, nothing else")
    page.get_by_role("button", name=re.compile("Save as version")).click()
    expect(page.get_by_role("alert")).to_contain_text("not valid YAML")
    assert axe_violations(page) == []
    text = document.input_value()
    assert text == "min_group_size: [30"
    page.goto(f"{shared_server.url}/console/officer/thresholds")
    text = document.input_value()
    document.fill(text.replace("min_group_size: 30", "min_group_size: 40"))
    reason.fill("groups under forty rows gave unstable rates in the last review")
    page.get_by_role("button", name=re.compile("Save as version")).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    history = page.get_by_role("table", name="History")
    expect(history.locator("tbody tr").first).to_contain_text("min_group_size: 30 → 40")
    expect(history.locator("tbody tr").first).to_contain_text(officer.name)

    page.get_by_role("link", name="Role timeline").click()
    page.get_by_label("Member").fill(officer.name)
    page.get_by_role("button", name="Show").click()
    rows = page.get_by_role("table", name=re.compile("Role holdings")).locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("compliance_officer")
    expect(rows.first).to_contain_text("holds it")
    assert axe_violations(page) == []


def test_a_person_without_the_role_gets_no_officer_page(
    shared_server: SharedServer, page: Page
) -> None:
    engineer = person(shared_server, "ml_engineer", prefix="engineer")
    sign_in(page, shared_server, engineer)
    nav = page.get_by_role("navigation", name="Sections")
    for label in ("Policy", "Approvals", "Model approval", "Fairness thresholds", "Role timeline"):
        assert nav.get_by_role("link", name=label, exact=True).count() == 0
    for path in ("policy", "proposals", "proposals/1", "roles", "policy/preview"):
        response = page.goto(f"{shared_server.url}/console/officer/{path}")
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("alert")).to_contain_text("may not")
    assert axe_violations(page) == []
