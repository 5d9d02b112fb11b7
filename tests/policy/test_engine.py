"""The compiled policy: indexed decisions equal Casbin's full scan, caches are per version,
and versions swap under load without a wrong decision or a stall."""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from governance.config import REPO_ROOT
from governance.policy.engine import CompiledPolicy, PolicyEngine
from governance.policy.rules import Rule, Vocabulary, check_graph, load_default, parse_rule

MODEL = REPO_ROOT / "policies" / "model.conf"
ROLES = [f"role:r{i}" for i in range(5)]
PRINCIPALS = ["ann", "ben", "cat"]
MODELS = ["model:a", "model:b", "model:c"]
GROUPS = ["group:x", "group:y"]
ACTIONS = ["read", "predict"]
VOCAB = Vocabulary(
    roles=frozenset(r.removeprefix("role:") for r in ROLES), actions=frozenset(ACTIONS)
)

p_rules = st.builds(
    lambda s, o, a, e: Rule("p", (s, o, a, e)),
    st.sampled_from(ROLES + PRINCIPALS),
    st.sampled_from(MODELS + GROUPS + ["api:x"]),
    st.sampled_from(ACTIONS),
    st.sampled_from(["allow", "allow", "deny"]),
)
g_rules = st.builds(
    lambda m, r: Rule("g", (m, r)), st.sampled_from(PRINCIPALS + ROLES), st.sampled_from(ROLES)
)
g2_rules = st.builds(
    lambda m, g: Rule("g2", (m, g)), st.sampled_from(MODELS + GROUPS), st.sampled_from(GROUPS)
)
requests = st.tuples(
    st.sampled_from(PRINCIPALS + ROLES + ["nobody"]),
    st.sampled_from(MODELS + GROUPS + ["api:x", "model:zz"]),
    st.sampled_from([*ACTIONS, "write"]),
)


def acyclic(rules: list[Rule]) -> bool:
    try:
        check_graph(rules)
    except Exception:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(
    st.lists(p_rules | g_rules | g2_rules, max_size=25).filter(acyclic),
    st.lists(requests, min_size=1, max_size=15),
)
def test_indexed_decisions_equal_casbins_full_scan(
    rules: list[Rule], reqs: list[tuple[str, str, str]]
) -> None:
    indexed = CompiledPolicy(1, rules, MODEL, cache_size=100)
    linear = CompiledPolicy(1, rules, MODEL, cache_size=100, indexed=False)
    for req in reqs:
        assert indexed.enforce(*req).allowed == linear.enforce(*req).allowed, (rules, req)


def test_the_default_policy_decides_the_same_indexed_or_not() -> None:
    vocab, rules = load_default(REPO_ROOT / "policies" / "default_policy.yaml")
    rules += [
        parse_rule(["g", "ann", "role:auditor"], vocab),
        parse_rule(["g", "ben", "role:client"], vocab),
        parse_rule(["g2", "model:m", "group:default-models"], vocab),
    ]
    indexed = CompiledPolicy(1, rules, MODEL, cache_size=100)
    linear = CompiledPolicy(1, rules, MODEL, cache_size=100, indexed=False)
    objects = sorted({r.values[1] for r in rules if r.ptype == "p"} | {"model:m"})
    for sub in ("ann", "ben", "nobody", "role:admin"):
        for obj in objects:
            for act in sorted(vocab.actions):
                assert (
                    indexed.enforce(sub, obj, act).allowed == linear.enforce(sub, obj, act).allowed
                )
    assert indexed.enforce("ann", "api:records", "decrypt").allowed
    assert not indexed.enforce("ben", "api:records", "decrypt").allowed  # explicit deny
    assert indexed.enforce("ben", "model:m", "predict").allowed  # through the group


def test_a_revoked_grant_is_not_served_from_an_old_cache() -> None:
    grant = Rule("g", ("ann", "role:r0"))
    allow = Rule("p", ("role:r0", "model:a", "predict", "allow"))
    engine = PolicyEngine(MODEL, cache_size=100)
    engine.install(1, [grant, allow])
    for _ in range(3):  # warm the cache
        assert engine.enforce("ann", "model:a", "predict").allowed
    assert engine.current.hits >= 2
    engine.install(2, [allow])
    decision = engine.enforce("ann", "model:a", "predict")
    assert not decision.allowed and decision.policy_version == 2
    # An older version arriving late never replaces a newer one.
    engine.install(1, [grant, allow])
    assert engine.version == 2


def test_swapping_versions_under_load_gives_no_wrong_decision_and_no_stall() -> None:
    """Readers hammer enforce while a writer swaps versions that grant and revoke by turns.

    Each decision names the version it was made under; it must be that version's answer.
    Compiling a 10k-rule version takes tens of milliseconds: readers must keep deciding (on
    the old version) all the while, never wait for it.
    """
    allow = Rule("p", ("role:r0", "model:a", "predict", "allow"))
    filler = [
        Rule("p", (f"role:r{i % 5}", f"model:f{i}", "predict", "allow")) for i in range(10_000)
    ]
    granted = [Rule("g", ("ann", "role:r0")), allow, *filler]
    revoked = [allow, *filler]
    engine = PolicyEngine(MODEL, cache_size=1000)
    engine.install(1, granted)
    expected = {1: True}
    stop = threading.Event()
    installing = threading.Event()
    wrong: list[tuple[int, bool]] = []
    worst = [0.0]
    counts = {"all": 0, "during_install": 0}
    lock = threading.Lock()

    def reader() -> None:
        local_worst, n, during = 0.0, 0, 0
        while not stop.is_set():
            start = time.perf_counter()
            d = engine.enforce("ann", "model:a", "predict")
            local_worst = max(local_worst, time.perf_counter() - start)
            n += 1
            during += installing.is_set()
            if d.allowed != expected[d.policy_version]:
                wrong.append((d.policy_version, d.allowed))
        with lock:
            worst[0] = max(worst[0], local_worst)
            counts["all"] += n
            counts["during_install"] += during

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for version in range(2, 12):
            expected[version] = version % 2 == 1
            installing.set()
            engine.install(version, granted if expected[version] else revoked)
            installing.clear()
            time.sleep(0.005)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not wrong
    assert engine.version == 11
    assert counts["during_install"] > 100, counts
    # A generous bound on any single decision: the machine may be busy, but nothing blocks.
    assert worst[0] < 2.0, worst[0]


def test_unknown_subjects_do_not_grow_memory() -> None:
    """Decisions and role lookups for ever-new subjects stay within the cache bound."""
    _, rules = load_default(REPO_ROOT / "policies" / "default_policy.yaml")
    compiled = CompiledPolicy(1, rules, MODEL, cache_size=50)
    for i in range(2_000):
        subject = f"stranger-{i}"
        assert not compiled.enforce(subject, "api:policy", "write").allowed
        assert compiled.roles_cached(subject) == ()
    assert len(compiled._cache) <= 50
    assert len(compiled._roles) <= 50
