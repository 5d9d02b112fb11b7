"""Attacks on the policy by the people who edit it (issue 25, items 1 and 17), on a live server.

1. A compliance officer may not widen her own effective permissions by any path: a role rule
   that makes every officer an admin, a right given to her role, a deny on her lifted. Nor may
   the officer who approves a change come out of it with more. Each is a 409 naming the
   permission that would be gained, and nothing is written.
17. A resource-group chain is accepted only as long as Casbin follows it: the rule at the top of
   the longest accepted chain, an explicit deny included, decides; one link more is a 422.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from governance.kit.http import client as http_client
from governance.policy.rules import MAX_ROLE_DEPTH
from tests.conftest import WardenFactory, auth
from tests.servers import SharedServer

PROBLEM = "application/problem+json"
Headers = dict[str, str]


@pytest.fixture(scope="module")
def http(shared_server: SharedServer) -> Iterator[httpx.Client]:
    with http_client(base_url=shared_server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def people(shared_server: SharedServer, http: httpx.Client) -> dict[str, Headers]:
    """The module's cast on its own server; each test's attacks leave the others' intact."""
    factory, admin_token = WardenFactory(http, shared_server.admin), shared_server.admin
    return {
        "olivia": auth(factory.principal("olivia", "compliance_officer")),
        "oscar": auth(factory.principal("oscar", "compliance_officer")),
        "app": auth(factory.principal("app", "client", kind="service")),
        "admin": auth(admin_token),
    }


def head(http: httpx.Client, who: Headers) -> tuple[int, str, list[list[str]]]:
    """The current policy as any reader sees it: version, digest, rules."""
    r = http.get("/v1/policy", headers=who)
    assert r.status_code == 200, r.text
    doc = r.json()
    return doc["version"], doc["sha256"], doc["rules"]


def change(
    http: httpx.Client, who: Headers, add: list[list[str]], remove: list[list[str]] | None = None
) -> httpx.Response:
    return http.post(
        "/v1/policy/changes",
        headers=who,
        json={"add": add, "remove": remove or [], "reason": "attack"},
    )


def assert_widening_refused(r: httpx.Response, name: str, permission: str) -> dict[str, Any]:
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = r.json()
    assert problem["type"].endswith("/widens-own-permissions"), problem
    assert f"widen the permissions of {name!r}" in problem["detail"], problem["detail"]
    assert permission in problem["detail"], problem["detail"]
    assert problem["subject"] == name
    assert permission.split() in problem["gained"]
    return problem


def test_nobody_widens_their_own_permissions_through_a_policy_change(
    http: httpx.Client, people: dict[str, Headers]
) -> None:
    # One server for every path (each start costs seconds); each attack is its own function.
    officer_makes_officers_admins(http, people)
    officer_lets_officers_issue_keys(http, people)
    officer_lifts_a_deny_that_binds_her(http, people)
    approver_approves_a_change_that_widens_him(http, people)


def officer_makes_officers_admins(http: httpx.Client, people: dict[str, Headers]) -> None:
    olivia = people["olivia"]
    before = head(http, olivia)
    attack = [["g", "role:compliance_officer", "role:admin"]]
    problem = assert_widening_refused(change(http, olivia, attack), "olivia", "api:keys issue")
    assert "more)" in problem["detail"]  # admin brings many rights, each counted
    # Asking for a second pair of eyes changes nothing: the proposal itself is refused.
    r = http.post("/v1/policy/proposals", headers=olivia, json={"add": attack, "reason": "attack"})
    assert_widening_refused(r, "olivia", "api:keys issue")
    assert head(http, olivia) == before
    # And she holds none of admin's powers.
    assert http.get("/v1/keys", headers=olivia).status_code == 403
    assert http.get("/v1/principals", headers=olivia).status_code == 403


def officer_lets_officers_issue_keys(http: httpx.Client, people: dict[str, Headers]) -> None:
    olivia = people["olivia"]
    before = head(http, olivia)
    attack = [["p", "role:compliance_officer", "api:keys", "issue", "allow"]]
    assert_widening_refused(change(http, olivia, attack), "olivia", "api:keys issue")
    # Wrapped in a change that also does something harmless: refused whole.
    harmless = ["p", "role:auditor", "api:datasets", "read", "allow"]
    assert_widening_refused(change(http, olivia, [harmless, *attack]), "olivia", "api:keys issue")
    assert head(http, olivia) == before
    r = http.post("/v1/keys", headers=olivia, json={"principal": "app"})
    assert r.status_code == 403, r.text


def officer_lifts_a_deny_that_binds_her(http: httpx.Client, people: dict[str, Headers]) -> None:
    olivia, oscar = people["olivia"], people["oscar"]
    deny = ["p", "olivia", "api:reports", "write", "deny"]
    # A deny narrows; oscar gains nothing from it, so it applies.
    assert change(http, oscar, [deny]).status_code == 201
    before = head(http, olivia)
    assert deny in before[2]
    assert_widening_refused(change(http, olivia, [], [deny]), "olivia", "api:reports write")
    # Nor by a rollback to the version before the deny.
    r = http.post(
        "/v1/policy/rollback",
        headers=olivia,
        json={"to_version": before[0] - 1, "reason": "attack"},
    )
    assert_widening_refused(r, "olivia", "api:reports write")
    assert head(http, olivia) == before


def approver_approves_a_change_that_widens_him(
    http: httpx.Client, people: dict[str, Headers]
) -> None:
    olivia, oscar = people["olivia"], people["oscar"]
    before = head(http, olivia)
    # Olivia gains nothing from it, so she may propose it; oscar would gain an auditor's powers.
    r = http.post(
        "/v1/policy/proposals",
        headers=olivia,
        json={"add": [["g", "oscar", "role:auditor"]], "reason": "attack"},
    )
    assert r.status_code == 201, r.text
    r = http.post(f"/v1/policy/proposals/{r.json()['id']}/approve", headers=oscar, json={})
    assert_widening_refused(r, "oscar", "api:audit export")
    assert head(http, olivia) == before


def group_chain(model: str, links: int, prefix: str = "group:c") -> list[list[str]]:
    """``model -> <prefix>1 -> ... -> <prefix><links>``."""
    names = [model, *(f"{prefix}{i}" for i in range(1, links + 1))]
    return [["g2", a, b] for a, b in itertools.pairwise(names)]


def predict(http: httpx.Client, who: Headers, model: str) -> int:
    r = http.post(f"/v1/models/{model}/predict", headers=who, json={"record": {"x": 1}})
    return r.status_code


def test_a_group_chain_is_enforced_at_its_top_up_to_the_engine_limit(
    http: httpx.Client, people: dict[str, Headers]
) -> None:
    olivia, oscar, app = people["olivia"], people["oscar"], people["app"]
    top = f"group:c{MAX_ROLE_DEPTH}"
    # The longest chain the policy accepts, nested groups the default roles can build.
    chain = group_chain("model:ghost", MAX_ROLE_DEPTH)
    opened = change(http, olivia, [*chain, ["p", "role:client", top, "predict", "allow"]])
    assert opened.status_code == 201, opened.text
    # Allowed through all the links: the request gets past authorization to "no such model".
    assert predict(http, app, "ghost") == 404
    # An explicit deny at the top of the chain is enforced, not silently ignored.
    assert change(http, oscar, [["p", "app", top, "predict", "deny"]]).status_code == 201
    assert predict(http, app, "ghost") == 403

    before = head(http, olivia)
    links = MAX_ROLE_DEPTH + 1
    for attack, over in (
        # One link more on top of the accepted chain, or a whole new chain built at once.
        ([["g2", top, f"group:c{links}"]], f"group:c{links}"),
        (group_chain("model:other", links, "group:d"), f"group:d{links}"),
    ):
        r = change(http, olivia, attack)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        detail = r.json()["detail"]
        assert f"up to {over!r} has {links} links" in detail, detail
        assert "deeper than Casbin's limit" in detail
    assert head(http, olivia) == before
    assert predict(http, app, "ghost") == 403
