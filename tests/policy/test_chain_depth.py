"""Every role or group chain that validates is followed in full by Casbin (issue 25, item 17).

Casbin's default role manager follows a bounded number of links; a rule at the top of a longer
chain, an explicit deny included, would be silently ignored. Validation refuses such chains, so
these tests probe the engine itself at the boundary: if a Casbin upgrade changes its reach,
they fail here instead of a deny going quiet in production.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from governance.policy.engine import CompiledPolicy
from governance.policy.errors import InvalidPolicy
from governance.policy.rules import ENGINE_LINKS, MAX_ROLE_DEPTH, Rule, check_graph

MODEL = Path(__file__).resolve().parents[2] / "policies" / "model.conf"


def role_chain(links: int) -> list[Rule]:
    """``alice -> role:r1 -> ... -> role:r<links>``."""
    names = ["alice", *(f"role:r{i}" for i in range(1, links + 1))]
    return [Rule("g", (a, b)) for a, b in itertools.pairwise(names)]


def group_chain(links: int) -> list[Rule]:
    """``model:m -> group:c1 -> ... -> group:c<links>``."""
    names = ["model:m", *(f"group:c{i}" for i in range(1, links + 1))]
    return [Rule("g2", (a, b)) for a, b in itertools.pairwise(names)]


def compiled(rules: list[Rule], indexed: bool) -> CompiledPolicy:
    return CompiledPolicy(1, rules, MODEL, 100, indexed=indexed)


def test_the_validation_limit_is_what_the_engine_follows() -> None:
    assert MAX_ROLE_DEPTH <= ENGINE_LINKS


@pytest.mark.parametrize("indexed", [False, True])
def test_casbin_follows_exactly_engine_links_role_links(indexed: bool) -> None:
    top = f"role:r{ENGINE_LINKS}"
    rules = [*role_chain(ENGINE_LINKS), Rule("p", (top, "api:audit", "read", "allow"))]
    assert compiled(rules, indexed).enforce("alice", "api:audit", "read").allowed
    # The explicit deny at the top of the longest chain wins over an allow held directly.
    rules += [
        Rule("p", ("alice", "api:audit", "export", "allow")),
        Rule("p", (top, "api:audit", "export", "deny")),
    ]
    assert not compiled(rules, indexed).enforce("alice", "api:audit", "export").allowed
    # One link more and the engine no longer sees the top: the reason validation stops here.
    longer = f"role:r{ENGINE_LINKS + 1}"
    beyond = [
        *role_chain(ENGINE_LINKS + 1),
        Rule("p", ("alice", "api:audit", "export", "allow")),
        Rule("p", (longer, "api:audit", "export", "deny")),
    ]
    assert compiled(beyond, indexed).enforce("alice", "api:audit", "export").allowed


@pytest.mark.parametrize("indexed", [False, True])
def test_casbin_follows_exactly_engine_links_group_links(indexed: bool) -> None:
    top = f"group:c{ENGINE_LINKS}"
    rules = [*group_chain(ENGINE_LINKS), Rule("p", ("bob", top, "predict", "allow"))]
    assert compiled(rules, indexed).enforce("bob", "model:m", "predict").allowed
    rules += [
        Rule("p", ("bob", "model:m", "read", "allow")),
        Rule("p", ("bob", top, "read", "deny")),
    ]
    assert not compiled(rules, indexed).enforce("bob", "model:m", "read").allowed
    longer = f"group:c{ENGINE_LINKS + 1}"
    beyond = [
        *group_chain(ENGINE_LINKS + 1),
        Rule("p", ("bob", "model:m", "read", "allow")),
        Rule("p", ("bob", longer, "read", "deny")),
    ]
    assert compiled(beyond, indexed).enforce("bob", "model:m", "read").allowed


@pytest.mark.parametrize("chain", [role_chain, group_chain])
def test_the_longest_chain_validates_and_one_more_link_is_refused_naming_it(
    chain: Callable[[int], list[Rule]],
) -> None:
    check_graph(chain(MAX_ROLE_DEPTH))
    with pytest.raises(InvalidPolicy) as refused:
        check_graph(chain(MAX_ROLE_DEPTH + 1))
    start, end = ("alice", "role:r10") if chain is role_chain else ("model:m", "group:c10")
    assert f"chain from {start!r} up to {end!r} has 10 links" in refused.value.message
    assert "deeper than Casbin's limit of 9" in refused.value.message


def test_a_chain_of_thousands_of_links_is_a_clear_refusal_not_a_recursion_error() -> None:
    with pytest.raises(InvalidPolicy, match="has 5000 links"):
        check_graph(group_chain(5000))
    cycle = [*group_chain(3000), Rule("g2", ("group:c3000", "group:c1"))]
    with pytest.raises(InvalidPolicy, match="cycle"):
        check_graph(cycle)
