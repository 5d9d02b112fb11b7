"""Malformed changes are clear 422s, and never half applied: the policy stays exactly as it was."""

from __future__ import annotations

from typing import Any

import pytest

from governance.policy.errors import InvalidPolicy
from governance.policy.rules import MAX_ROLE_DEPTH, Vocabulary, check_graph, parse_rule
from tests.policy.conftest import Officers, Store
from tests.shared_app import SharedApp

# The refused changes write nothing and the one accepted chain touches no rule another test
# uses: the module's tests share one app, and each compares the head before and after.


@pytest.fixture
def app_client(shared_app: SharedApp) -> Any:
    return shared_app.client


@pytest.fixture
def officers(shared_officers: Officers) -> Officers:
    return shared_officers


@pytest.fixture
def store(shared_store: Store) -> Store:
    return shared_store


GOOD = ["p", "role:auditor", "api:datasets", "read", "allow"]

# (change, words the problem's detail must contain)
MALFORMED: list[tuple[dict[str, Any], str]] = [
    ({"add": [["g", "bob", "role:wizard"]]}, "unknown role 'role:wizard'"),
    ({"add": [["p", "role:wizard", "api:audit", "read", "allow"]]}, "unknown role"),
    ({"add": [["p", "role:auditor", "api:audit", "teleport", "allow"]]}, "unknown action"),
    ({"add": [["p", "role:auditor", "api:audit,api:keys", "read", "allow"]]}, "commas"),
    ({"add": [["g", "bob\nrole:admin", "role:auditor"]]}, "newlines"),
    ({"add": [["g", "bob\r", "role:auditor"]]}, "control characters"),
    # (NUL never gets this far: every route refuses it first, see tests/api/test_nul.py.)
    ({"add": [["g", "bo\x01b", "role:auditor"]]}, "control characters"),
    ({"add": [["g", "bo\x1bb", "role:auditor"]]}, "control characters"),
    ({"add": [["g", "bob\tx", "role:auditor"]]}, "control characters"),
    ({"add": [["p", "role:auditor", "api:audit", "read", "maybe"]]}, "effect"),
    ({"add": [["x", "bob", "role:auditor"]]}, "rule type"),
    ({"add": [["g", "bob"]]}, "has 2 values"),
    ({"add": [["g", "bob", "auditor"]]}, "role:<name>"),
    ({"add": [["g2", "api:audit", "group:x"]]}, "model:<name>"),
    ({"add": [["g", "bob", 7]]}, "expected a string"),
    (
        {"add": [["g", "role:auditor", "role:client"], ["g", "role:client", "role:auditor"]]},
        "cycle",
    ),
    ({"add": [["g2", "group:a", "group:b"], ["g2", "group:b", "group:a"]]}, "cycle"),
    ({"remove": [["g", "nobody", "role:auditor"]]}, "not in the policy"),
    ({"add": [], "remove": []}, "at least one rule"),
    ({"add": [["p", "role:admin", "api:principals", "read", "allow"]]}, "already has the rule"),
]


def deep_chain(length: int) -> list[list[str]]:
    """A resource-group chain of ``length`` hops (role names must exist; group names need not)."""
    return [["g2", f"group:c{i}", f"group:c{i + 1}"] for i in range(length)]


def test_every_kind_of_malformed_change_is_a_clear_422_and_changes_nothing(
    app_client: Any, officers: Officers, store: Store
) -> None:
    before = store.head()
    for change, words in MALFORMED:
        # A valid rule rides along each time: it must not be applied either.
        adds, removes = change.get("add", []), change.get("remove", [])
        body = {
            "add": [GOOD, *adds] if adds or removes else [],
            "remove": removes,
            "reason": "test",
        }
        r = app_client.post("/v1/policy/changes", json=body, headers=officers.olivia)
        assert r.status_code == 422, (change, r.text)
        problem = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert problem["type"].endswith("/invalid-policy"), problem
        assert words in problem["detail"], (words, problem["detail"])
        assert store.head() == before


def test_chains_deeper_than_casbins_limit_are_refused(
    app_client: Any, officers: Officers, store: Store
) -> None:
    before = store.head()
    r = app_client.post(
        "/v1/policy/changes",
        headers=officers.olivia,
        json={"add": deep_chain(MAX_ROLE_DEPTH + 1), "reason": "too deep"},
    )
    assert r.status_code == 422, r.text
    assert "deeper than Casbin's limit" in r.json()["detail"]
    assert store.head() == before
    # Exactly at the limit is fine.
    r = app_client.post(
        "/v1/policy/changes",
        headers=officers.olivia,
        json={"add": deep_chain(MAX_ROLE_DEPTH), "reason": "at the limit"},
    )
    assert r.status_code == 201, r.text


def test_a_reason_is_mandatory(app_client: Any, officers: Officers, store: Store) -> None:
    before = store.head()
    for body in ({"add": [GOOD]}, {"add": [GOOD], "reason": ""}):
        r = app_client.post("/v1/policy/changes", json=body, headers=officers.olivia)
        assert r.status_code == 422, r.text
        assert "reason" in r.json()["detail"]
    r = app_client.post(
        "/v1/policy/changes", json={"add": [GOOD], "reason": "   "}, headers=officers.olivia
    )
    assert r.status_code == 422 and "reason is required" in r.json()["detail"]
    assert store.head() == before


def test_role_depth_check_counts_hops_through_roles() -> None:
    vocab = Vocabulary(roles=frozenset(f"r{i}" for i in range(20)), actions=frozenset({"read"}))
    chain = [parse_rule(["g", f"role:r{i}", f"role:r{i + 1}"], vocab) for i in range(11)]
    check_graph(chain[:MAX_ROLE_DEPTH])
    with pytest.raises(InvalidPolicy, match="deeper"):
        check_graph(chain)
