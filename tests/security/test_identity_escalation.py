"""Separation of duties over people, attacked on a live server by an admin or an officer.

Each test is the attack as sent, with the refusal Warden must give and a check that nothing was
written. An admin must never obtain a usable credential of another person, make people of their
own into officers or auditors, nor have their own accounts approve each other; an officer must
never widen another role's power over governance alone; nobody may lock every admin out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from governance.bootstrap import appoint_first_officer
from governance.cli.main import app as cli
from governance.db import make_engine, make_sessionmaker
from governance.db.base import utcnow
from governance.errors import ConfigurationError
from governance.identity.models import Enrolment, Principal
from governance.kit.http import client as http_client
from tests.conftest import LiveServer, WardenFactory, auth, settings_env
from tests.security.test_rate_limits import (
    StartServer,
    attacker,
    entries,
    limits_yaml,
    start_server,
)
from tests.servers import SharedServer

__all__ = ["start_server"]  # the fixture, shared with the rate-limit tests

PROBLEM = "application/problem+json"


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A client of a fresh server, for a test that needs the deployment's first state."""
    with http_client(base_url=live_server.url, timeout=30) as client:
        yield client


def refused(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    for word in words:
        assert word in r.json()["detail"], r.json()["detail"]


def keys_of(http: httpx.Client, admin: str, principal: str) -> list[dict[str, Any]]:
    r = http.get("/v1/keys", headers=auth(admin))
    assert r.status_code == 200, r.text
    return [k for k in r.json() if k["principal"] == principal]


def enrol(http: httpx.Client, admin: str, name: str) -> str:
    """The admin creates ``name`` and an enrolment, and redeems the code (as an attacker would)."""
    assert http.post("/v1/principals", json={"name": name}, headers=auth(admin)).status_code == 201
    r = http.post(f"/v1/principals/{name}/enrolment", headers=auth(admin))
    assert r.status_code == 201, r.text
    r = http.post("/v1/enrol", json={"code": r.json()["code"]})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def test_an_admin_cannot_obtain_a_persons_key(shared_server: SharedServer) -> None:
    http, admin_token, warden = shared_server.http, shared_server.admin, shared_server.warden
    ada, loan_app = shared_server.unique("ada"), shared_server.unique("loan-app")
    warden.principal(ada, "auditor")
    before = keys_of(http, admin_token, ada)
    assert len(before) == 1  # the key ada obtained herself, by enrolment

    # Mint a key for the auditor: refused, whatever the expiry.
    refused(http.post("/v1/keys", json={"principal": ada}, headers=auth(admin_token)), 403)
    # Re-enrol her, to redeem the new code himself: a person enrols once.
    r = http.post(f"/v1/principals/{ada}/enrolment", headers=auth(admin_token))
    refused(r, 409, "already enrolled")
    assert keys_of(http, admin_token, ada) == before

    # An admin may still issue keys to services (no person holds them) and to themselves.
    warden.principal(loan_app, kind="service")
    assert len(keys_of(http, admin_token, loan_app)) == 1
    r = http.post("/v1/keys", json={"principal": "admin"}, headers=auth(admin_token))
    assert r.status_code == 201, r.text


def test_an_enrolment_code_works_once_and_not_after_expiry(shared_server: SharedServer) -> None:
    http, admin_token, settings = shared_server.http, shared_server.admin, shared_server.settings
    eli, eve, svc = (shared_server.unique(name) for name in ("eli", "eve", "svc"))
    assert http.post("/v1/principals", json={"name": eli}, headers=auth(admin_token)).is_success
    code = http.post(f"/v1/principals/{eli}/enrolment", headers=auth(admin_token)).json()["code"]
    # Forged and malformed codes: one answer for all, and no key.
    forged = code[:-4] + ("AAAA" if not code.endswith("AAAA") else "BBBB")
    for bad in (forged, "wdn_00000000_" + "A" * 43, "x"):
        refused(http.post("/v1/enrol", json={"code": bad}), 401, "not valid")
    r = http.post("/v1/enrol", json={"code": code})
    assert r.status_code == 201 and r.json()["principal"] == eli, r.text
    token = r.json()["token"]
    assert http.get("/v1/models", headers=auth(token)).status_code == 403  # a key, no role yet
    # Replayed: refused, and still exactly one key.
    refused(http.post("/v1/enrol", json={"code": code}), 401, "not valid")
    assert len(keys_of(http, admin_token, eli)) == 1

    # An expired code is refused (the clock moved on: the row's expiry is put in the past).
    assert http.post("/v1/principals", json={"name": eve}, headers=auth(admin_token)).is_success
    code = http.post(
        f"/v1/principals/{eve}/enrolment",
        json={"expires_in_minutes": 5},
        headers=auth(admin_token),
    ).json()["code"]
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            session.execute(
                update(Enrolment)
                .where(Enrolment.redeemed_at.is_(None))
                .where(
                    Enrolment.principal_id
                    == select(Principal.id).where(Principal.name == eve).scalar_subquery()
                )
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
    finally:
        engine.dispose()
    refused(http.post("/v1/enrol", json={"code": code}), 401, "not valid")
    assert keys_of(http, admin_token, eve) == []
    # Services are not enrolled; their keys come from an admin.
    http.post("/v1/principals", json={"name": svc, "kind": "service"}, headers=auth(admin_token))
    refused(http.post(f"/v1/principals/{svc}/enrolment", headers=auth(admin_token)), 409, "service")
    # Bad bodies are 422s, not 500s.
    assert http.post("/v1/enrol", json={"code": 5}).status_code == 422
    assert http.post("/v1/enrol", content=b"{").status_code == 422


def test_an_admins_own_accounts_cannot_become_officers_or_approve_each_other(
    shared_server: SharedServer,
) -> None:
    http, admin_token, warden = shared_server.http, shared_server.admin, shared_server.warden
    puppets = [shared_server.unique(f"puppet-{i}") for i in (1, 2, 3)]
    first_officer = warden.officer_token()  # appointed by the local operator at bootstrap
    # The admin makes two people of his own, then tries to make both officers.
    p1, p2 = enrol(http, admin_token, puppets[0]), enrol(http, admin_token, puppets[1])
    pending = []
    for name in puppets[:2]:
        r = http.post(
            "/v1/roles/grant",
            json={"principal": name, "role": "compliance_officer", "reason": "more hands"},
            headers=auth(admin_token),
        )
        assert r.status_code == 202 and r.json()["status"] == "pending", r.text
        pending.append(r.json()["proposal"])
    # Not officers until an officer agrees: neither can approve the other's grant.
    r = http.post(f"/v1/policy/proposals/{pending[1]}/approve", json={}, headers=auth(p1))
    refused(r, 403)
    assert http.get("/v1/policy/proposals", headers=auth(p1)).status_code == 403

    # Even once an officer is talked into approving both, the two accounts, enrolled by the
    # same admin moments ago, cannot carry a proposal between them ...
    for proposal in pending:
        r = http.post(
            f"/v1/policy/proposals/{proposal}/approve", json={}, headers=auth(first_officer)
        )
        assert r.status_code == 201, r.text
    rule = ["p", "role:auditor", "api:keys", "read", "allow"]
    r = http.post("/v1/policy/changes", json={"add": [rule], "reason": "x"}, headers=auth(p1))
    assert r.status_code == 202, r.text  # power over keys: a second officer must approve
    proposed = r.json()["id"]
    r = http.post(f"/v1/policy/proposals/{proposed}/approve", json={}, headers=auth(p2))
    refused(r, 409, "both enrolled by 'admin'")
    assert rule not in http.get("/v1/policy", headers=auth(first_officer)).json()["rules"]
    # ... and neither can approve what the admin proposes (the admin granted their roles). An
    # auditor, like an admin, is a second person's decision.
    http.post("/v1/principals", json={"name": puppets[2]}, headers=auth(admin_token))
    for role in ("auditor", "admin"):
        granted = http.post(
            "/v1/roles/grant",
            json={"principal": puppets[2], "role": role, "reason": f"another {role}"},
            headers=auth(admin_token),
        )
        assert granted.status_code == 202, granted.text
        r = http.post(
            f"/v1/policy/proposals/{granted.json()['proposal']}/approve",
            json={},
            headers=auth(p2),
        )
        refused(r, 409, "granted by the proposal's author 'admin'")
    policy = http.get("/v1/policy", headers=auth(first_officer)).json()
    assert ["g", puppets[2], "role:admin"] not in policy["rules"]
    assert ["g", puppets[2], "role:auditor"] not in policy["rules"]

    # Colleagues the admin enrolled longer ago than a proposal lives are two people, not two
    # fresh accounts: the same approval then goes through.
    lifetime = timedelta(hours=shared_server.settings.proposal_lifetime_hours)
    engine = make_engine(shared_server.settings.resolved_database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            session.execute(
                update(Enrolment)
                .where(
                    Enrolment.principal_id.in_(
                        select(Principal.id).where(Principal.name.in_(puppets[:2]))
                    ),
                    Enrolment.redeemed_at.is_not(None),
                )
                .values(redeemed_at=utcnow() - lifetime - timedelta(minutes=5))
            )
    finally:
        engine.dispose()
    r = http.post(f"/v1/policy/proposals/{proposed}/approve", json={}, headers=auth(p2))
    assert r.status_code == 201, r.text


def test_an_admins_service_accounts_cannot_approve_each_other(
    shared_server: SharedServer,
) -> None:
    # The same attack with services, whose keys an admin may issue: the admin holds both keys.
    http, admin_token, warden = shared_server.http, shared_server.admin, shared_server.warden
    first_officer = warden.officer_token()
    tokens = []
    for name in (shared_server.unique("bot-1"), shared_server.unique("bot-2")):
        r = http.post(
            "/v1/principals", json={"name": name, "kind": "service"}, headers=auth(admin_token)
        )
        assert r.status_code == 201, r.text
        r = http.post("/v1/keys", json={"principal": name}, headers=auth(admin_token))
        assert r.status_code == 201, r.text
        tokens.append(str(r.json()["token"]))
        r = http.post(
            "/v1/roles/grant",
            json={"principal": name, "role": "compliance_officer", "reason": "automation"},
            headers=auth(admin_token),
        )
        assert r.status_code == 202, r.text
        # An officer is talked into approving both grants.
        r = http.post(
            f"/v1/policy/proposals/{r.json()['proposal']}/approve",
            json={},
            headers=auth(first_officer),
        )
        assert r.status_code == 201, r.text
    rule = ["p", "role:ml_engineer", "api:keys", "read", "allow"]
    r = http.post(
        "/v1/policy/changes", json={"add": [rule], "reason": "x"}, headers=auth(tokens[0])
    )
    assert r.status_code == 202, r.text
    pending = r.json()["id"]
    r = http.post(f"/v1/policy/proposals/{pending}/approve", json={}, headers=auth(tokens[1]))
    refused(r, 409, "both got their credentials from 'admin'")
    assert rule not in http.get("/v1/policy", headers=auth(first_officer)).json()["rules"]
    # A person the admin did not credential may still approve it.
    r = http.post(f"/v1/policy/proposals/{pending}/approve", json={}, headers=auth(first_officer))
    assert r.status_code == 201, r.text


def test_an_officer_cannot_widen_governance_alone_and_bootstrap_is_closed(
    shared_server: SharedServer,
) -> None:
    http, admin_token, warden = shared_server.http, shared_server.admin, shared_server.warden
    settings = shared_server.settings
    mallory = shared_server.unique("mallory")
    officer = warden.principal(shared_server.unique("olivia"), "compliance_officer")
    before = http.get("/v1/policy", headers=auth(officer)).json()["version"]
    # Give the auditors the power to mint keys (then ask one to mint one): pending, not applied,
    # though WARDEN_REQUIRE_SECOND_APPROVAL is off.
    for rule in (
        ["p", "role:auditor", "api:keys", "issue", "allow"],
        ["g", "role:ml_engineer", "role:admin"],
    ):
        r = http.post(
            "/v1/policy/changes", json={"add": [rule], "reason": "x"}, headers=auth(officer)
        )
        assert r.status_code == 202 and r.json()["status"] == "pending", r.text
        # Nor can she approve her own proposal.
        r = http.post(
            f"/v1/policy/proposals/{r.json()['id']}/approve", json={}, headers=auth(officer)
        )
        refused(r, 409)
    assert http.get("/v1/policy", headers=auth(officer)).json()["version"] == before
    # A change that widens no one's power over governance still applies at once.
    r = http.post(
        "/v1/policy/changes",
        json={"add": [["g2", "model:m", "group:default-models"]], "reason": "serve m"},
        headers=auth(officer),
    )
    assert r.status_code == 201, r.text

    # The local operator's bootstrap path is closed once an officer exists.
    engine = make_engine(settings.resolved_database_url)
    try:
        with pytest.raises(ConfigurationError, match="exists already"):
            appoint_first_officer(engine, settings, mallory)
    finally:
        engine.dispose()
    http.post("/v1/principals", json={"name": mallory}, headers=auth(admin_token))
    out = CliRunner().invoke(
        cli,
        ["roles", "grant", mallory, "compliance_officer", "--reason", "me too"],
        env=settings_env(settings),
    )
    assert out.exit_code == 0, out.output
    assert "pending" in out.output
    roles = http.get("/v1/policy", headers=auth(officer)).json()["view"]["roles"]
    assert mallory not in roles["compliance_officer"]

    # The bootstrap is audited as such: the two grants with no approver are the local
    # operator's first admin and first officer, marked and explained in their entries.
    auditor = warden.principal(shared_server.unique("aud"), "auditor")
    changes = entries(http, auditor, event_type="policy.change")
    bootstraps = [e for e in changes if e["details"].get("bootstrap")]
    assert sorted(rule for e in bootstraps for rule in e["details"]["diff"]["added"]) == [
        ["g", "admin", "role:admin"],
        ["g", warden.BOOTSTRAP_OFFICER, "role:compliance_officer"],
    ]
    for entry in bootstraps:
        assert entry["reason"].startswith("bootstrap: "), entry["reason"]
        assert entry["details"]["approved_by"] is None
    for entry in changes:
        if not entry["details"].get("bootstrap"):
            added = entry["details"]["diff"].get("added", [])
            if any(rule[0] == "g" and rule[2] == "role:compliance_officer" for rule in added):
                assert entry["details"]["approved_by"], entry


# A fresh server: the admin's keys are counted, and a shared server's tests add some.
def test_the_last_admin_cannot_be_locked_out(http: httpx.Client, admin_token: str) -> None:
    key_id = keys_of(http, admin_token, "admin")[0]["key_id"]
    refused(
        http.post(f"/v1/keys/{key_id}/revoke", headers=auth(admin_token)),
        409,
        "lock every admin out",
    )
    refused(
        http.post("/v1/principals/admin/disable", headers=auth(admin_token)),
        409,
        "lock every admin out",
    )
    # Nor by taking the role away: the admin from himself, or an officer by a policy change.
    r = http.post(
        "/v1/roles/revoke",
        json={"principal": "admin", "role": "admin", "reason": "x"},
        headers=auth(admin_token),
    )
    refused(r, 409, "lock every admin out")
    officer = WardenFactory(http, admin_token).officer_token()
    r = http.post(
        "/v1/policy/changes",
        json={"remove": [["g", "admin", "role:admin"]], "add": [], "reason": "x"},
        headers=auth(officer),
    )
    refused(r, 409, "lock every admin out")
    assert http.get("/v1/principals", headers=auth(admin_token)).status_code == 200
    # With a second key of the admin's own, the first may go.
    second = http.post("/v1/keys", json={"principal": "admin"}, headers=auth(admin_token))
    assert second.status_code == 201, second.text
    r = http.post(f"/v1/keys/{key_id}/revoke", headers=auth(second.json()["token"]))
    assert r.status_code == 200, r.text


def test_guessing_enrolment_codes_is_rate_limited(
    start_server: StartServer, admin_token: str
) -> None:
    server = start_server(limits_yaml(failed=5))
    with http_client(base_url=server.url, timeout=30) as http, attacker(server.url) as guesser:
        assert http.post(
            "/v1/principals", json={"name": "eli"}, headers=auth(admin_token)
        ).is_success
        code = http.post("/v1/principals/eli/enrolment", headers=auth(admin_token)).json()["code"]
        guesses = [
            guesser.post("/v1/enrol", json={"code": f"wen_{code[4:12]}_{'A' * 43}"})
            for _ in range(8)
        ]
        assert [g.status_code for g in guesses] == [401] * 5 + [429] * 3
        assert int(guesses[-1].headers["retry-after"]) > 0
        # Once over, even the right code is refused from that address; eli's own is not.
        refused(guesser.post("/v1/enrol", json={"code": code}), 429)
        r = http.post("/v1/enrol", json={"code": code})
        assert r.status_code == 201, r.text
