"""Effective permissions computed without Casbin agree with Casbin, decision for decision."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from governance.policy.engine import CompiledPolicy
from governance.policy.powers import (
    GOVERNANCE_OBJECTS,
    effective_permissions,
    first_widened,
    gains,
    governance_gains,
)
from governance.policy.rules import ENGINE_LINKS, Rule
from governance.policy.service import default_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
MODEL = POLICIES / "model.conf"

PRINCIPALS = ("olivia", "ann")
ROLES = ("role:a", "role:b", "role:c")
SUBJECTS = PRINCIPALS + ROLES
MODELS = ("model:m", "model:n")
GROUPS = ("group:x", "group:y", "group:z")
OBJECTS = ("api:keys", "api:policy", *MODELS, *GROUPS)
ACTIONS = ("read", "issue", "predict")

p_rules = st.builds(
    lambda s, o, a, e: Rule("p", (s, o, a, e)),
    st.sampled_from(SUBJECTS),
    st.sampled_from(OBJECTS),
    st.sampled_from(ACTIONS),
    st.sampled_from(("allow", "deny")),
)
g_rules = st.builds(
    lambda m, r: Rule("g", (m, r)), st.sampled_from(SUBJECTS), st.sampled_from(ROLES)
)
g2_rules = st.builds(
    lambda m, g: Rule("g2", (m, g)), st.sampled_from(MODELS + GROUPS), st.sampled_from(GROUPS)
)
# Cycles and self-links included: the engine copes with them, so must the computation.
rule_sets = st.lists(st.one_of(p_rules, p_rules, g_rules, g2_rules), max_size=14).map(set)


def casbin_permissions(
    rules: set[Rule], subject: str, objects: tuple[str, ...]
) -> set[tuple[str, str]]:
    """Casbin's own answers, every object x action asked (the oracle: no index)."""
    compiled = CompiledPolicy(1, sorted(rules), MODEL, 10_000, indexed=False)
    return {
        (o, a)
        for o, a in itertools.product(objects, ACTIONS)
        if compiled.enforce(subject, o, a).allowed
    }


@settings(max_examples=100, deadline=None)
@given(rule_sets)
def test_effective_permissions_agree_with_casbin(rules: set[Rule]) -> None:
    # An object no rule names is asked too: it must never be allowed.
    objects = (*OBJECTS, "model:unnamed")
    for subject in (*SUBJECTS, "stranger"):
        assert effective_permissions(rules, subject) == casbin_permissions(
            rules, subject, objects
        ), subject


def chain(ptype: str, names: list[str]) -> list[Rule]:
    return [Rule(ptype, (a, b)) for a, b in itertools.pairwise(names)]


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=ENGINE_LINKS - 2, max_value=ENGINE_LINKS + 2), st.booleans())
def test_long_chains_are_cut_where_casbin_cuts_them(links: int, deny: bool) -> None:
    roles = ["olivia", *(f"role:r{i}" for i in range(links))]
    groups = ["model:m", *(f"group:c{i}" for i in range(links))]
    eft = "deny" if deny else "allow"
    rules = {
        *chain("g", roles),
        *chain("g2", groups),
        Rule("p", ("olivia", "model:m", "read", "allow")),
        Rule("p", (roles[-1], "api:keys", "issue", eft)),
        Rule("p", ("olivia", groups[-1], "read", eft)),
    }
    objects = ("api:keys", *groups)
    assert effective_permissions(rules, "olivia") == casbin_permissions(rules, "olivia", objects)


def test_roles_groups_and_denies_under_the_default_policy() -> None:
    _, seed = default_policy(POLICIES)
    rules = {*seed, Rule("g", ("olivia", "role:compliance_officer"))}
    officer = effective_permissions(rules, "olivia")
    assert ("api:policy", "write") in officer and ("api:keys", "issue") not in officer
    assert effective_permissions(rules, "stranger") == frozenset()

    # A role rule that makes every officer an admin: olivia gains admin's powers.
    escalated = {*rules, Rule("g", ("role:compliance_officer", "role:admin"))}
    gained = gains(rules, escalated, "olivia")
    assert ("api:keys", "issue") in gained and ("api:roles", "grant") in gained
    assert gained == sorted(gained)

    # Group membership: a model in a group clients may call is predictable, unless denied.
    served = {*seed, Rule("g2", ("model:toy", "group:default-models"))}
    assert ("model:toy", "predict") in effective_permissions(served, "role:client")
    denied = {*served, Rule("p", ("role:client", "model:toy", "predict", "deny"))}
    assert ("model:toy", "predict") not in effective_permissions(denied, "role:client")
    # Removing a deny is a gain too.
    assert gains(denied, served, "role:client") == [("model:toy", "predict")]


def test_first_widened_names_the_first_gaining_subject() -> None:
    _, seed = default_policy(POLICIES)
    before = {*seed, Rule("g", ("olivia", "role:compliance_officer"))}
    after = {*before, Rule("p", ("oscar", "api:audit", "export", "allow"))}
    assert first_widened([None, "olivia"], before, after) is None
    assert first_widened(["olivia", None, "oscar"], before, after) == (
        "oscar",
        [("api:audit", "export")],
    )


def test_governance_gains_name_every_subject_and_only_the_governance_surface() -> None:
    _, seed = default_policy(POLICIES)
    before = {*seed, Rule("g", ("olivia", "role:compliance_officer"))}
    after = {
        *before,
        Rule("p", ("role:ml_engineer", "api:keys", "issue", "allow")),
        Rule("p", ("role:ml_engineer", "api:datasets", "write", "allow")),  # not governance
    }
    found = governance_gains(before, after)
    assert found == [("role:ml_engineer", "api:keys", "issue")]

    # A role edge: the role and every holder gain, each named.
    grant = {*before, Rule("g", ("eve", "role:ml_engineer"))}
    edge = {*grant, Rule("g", ("role:ml_engineer", "role:auditor"))}
    found = governance_gains(grant, edge)
    assert ("eve", "api:audit", "export") in found
    assert ("role:ml_engineer", "api:records", "decrypt") in found
    assert {s for s, o, _ in found} == {"eve", "role:ml_engineer"}
    assert all(o in GOVERNANCE_OBJECTS for _, o, _ in found)
    assert found == sorted(found)
    assert governance_gains(edge, grant) == []  # a loss is no gain


@settings(max_examples=150, deadline=None)
@given(rule_sets, rule_sets)
def test_governance_gains_agree_with_full_recomputation(
    before: set[Rule], after: set[Rule]
) -> None:
    subjects = {r.values[0] for r in before | after if r.ptype != "g2"}
    subjects |= {r.values[1] for r in before | after if r.ptype == "g"}
    expected = sorted(
        (s, o, a) for s in subjects for o, a in gains(before, after, s) if o in GOVERNANCE_OBJECTS
    )
    assert governance_gains(before, after) == expected


def test_a_large_policy_costs_what_the_subject_touches() -> None:
    _, seed = default_policy(POLICIES)
    # 100k rules: 40k clients, 30k models each in a group, 30k per-model rules.
    rules = {*seed, Rule("g", ("olivia", "role:compliance_officer"))}
    rules |= {Rule("g", (f"app-{i}", "role:client")) for i in range(40_000)}
    rules |= {Rule("g2", (f"model:m{i}", f"group:g{i % 100}")) for i in range(30_000)}
    rules |= {Rule("p", ("role:auditor", f"model:m{i}", "read", "allow")) for i in range(30_000)}
    escalated = {*rules, Rule("g", ("role:compliance_officer", "role:admin"))}
    started = time.perf_counter()
    assert first_widened(["olivia"], rules, escalated) is not None
    found = governance_gains(rules, escalated)
    elapsed = time.perf_counter() - started
    assert ("olivia", "api:keys", "issue") in found
    # Generous on a shared CI machine; a product of objects x actions through Casbin would
    # take hours.
    assert elapsed < 20, elapsed
