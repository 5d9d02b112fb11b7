"""Authorization decisions: a Casbin enforcer per policy version, with a decision cache.

A policy change never reloads the enforcer in place (``load_policy`` under a lock stalls every
reader). Instead a new :class:`CompiledPolicy` is built beside the old one and the reference is
swapped; requests already holding the old one finish with it. Each compiled policy owns its own
bounded decision cache, so a new version can never serve a decision cached under an old one.

Casbin's ``enforce`` evaluates the matcher against every ``p`` rule in turn, so a decision
costs time in proportion to the policy's size. For Warden's own matcher (equality and role/group
membership only) the rules that can match a request are exactly those whose subject is the
caller or one of its roles, whose object is the object or one of its groups, and whose action is
the action. Those are found by index and handed to Casbin, which still evaluates the matcher and
the effect on them. If ``model.conf`` ever carries a different matcher, the index is not used.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casbin

from governance.policy.adapter import VersionAdapter
from governance.policy.errors import PolicyUnavailable
from governance.policy.rules import Rule

# The matcher the index is sound for (as Casbin stores it, dots turned to underscores).
INDEXED_MATCHER = "g(r_sub, p_sub) && (r_obj == p_obj || g2(r_obj, p_obj)) && r_act == p_act"


def _reach(start: str, edges: dict[str, list[str]]) -> set[str]:
    """``start`` and everything reachable from it (the graph is acyclic and depth-checked)."""
    seen = {start}
    frontier = [start]
    while frontier:
        node = frontier.pop()
        for parent in edges.get(node, ()):
            if parent not in seen:
                seen.add(parent)
                frontier.append(parent)
    return seen


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    policy_version: int


class CompiledPolicy:
    """One policy version, ready to answer ``enforce`` calls.

    Args:
        version: the policy version number.
        rules: its rules.
        model_path: ``policies/model.conf``.
        cache_size: how many decisions to keep (LRU); bounded so that calls naming unknown
            subjects or objects cannot grow memory.
        indexed: find the rules that can match by index (the default); ``False`` lets Casbin
            scan every rule, for comparison.
    """

    def __init__(
        self,
        version: int,
        rules: Sequence[Rule],
        model_path: Path,
        cache_size: int,
        *,
        indexed: bool = True,
    ) -> None:
        self.version = version
        self.rules = tuple(rules)
        self._enforcer = casbin.Enforcer(str(model_path), VersionAdapter(self.rules))
        self._cache: OrderedDict[tuple[str, str, str], Decision] = OrderedDict()
        self._cache_size = cache_size
        self._roles: dict[str, tuple[str, ...]] = {}
        # Values its users derive from this version alone (the API guard keeps each principal's
        # audit actor here), dropped with it. Bounded by whoever adds to it.
        self.derived: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        # Casbin's enforcer is not documented as thread-safe; cold decisions take turns.
        self._enforce_lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._index: dict[tuple[str, str], list[list[str]]] | None = None
        self._links: dict[str, dict[str, list[str]]] = {"g": {}, "g2": {}}
        matcher = self._enforcer.model["m"]["m"].value.replace(" ", "")
        if indexed and matcher == INDEXED_MATCHER.replace(" ", ""):
            self._build_index()

    def _build_index(self) -> None:
        index: dict[tuple[str, str], list[list[str]]] = {}
        for rule in self.rules:
            if rule.ptype == "p":
                index.setdefault((rule.values[0], rule.values[2]), []).append(list(rule.values))
            else:
                self._links[rule.ptype].setdefault(rule.values[0], []).append(rule.values[1])
        self._index = index

    def _candidates(self, subject: str, obj: str, action: str) -> list[list[str]]:
        """The ``p`` rules whose matcher can be true for this request (all others are false)."""
        assert self._index is not None
        objects = _reach(obj, self._links["g2"])
        found: list[list[str]] = []
        for sub in _reach(subject, self._links["g"]):
            found.extend(r for r in self._index.get((sub, action), ()) if r[1] in objects)
        return found

    def enforce(self, subject: str, obj: str, action: str) -> Decision:
        key = (subject, obj, action)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return cached
        decision = self._decide(subject, obj, action)
        with self._lock:
            self.misses += 1
            self._cache[key] = decision
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return decision

    def _decide(self, subject: str, obj: str, action: str) -> Decision:
        candidates: list[list[str]] = []
        if self._index is None:
            with self._enforce_lock:
                allowed, explain = self._enforcer.enforce_ex(subject, obj, action)
        else:
            candidates = self._candidates(subject, obj, action)
            if not candidates:
                return Decision(False, "no rule allows this", self.version)
            assertion = self._enforcer.model["p"]["p"]
            with self._enforce_lock:
                # Casbin judges the matching rules only; the full list is put back at once.
                full, assertion.policy = assertion.policy, candidates
                try:
                    allowed, explain = self._enforcer.enforce_ex(subject, obj, action)
                finally:
                    assertion.policy = full
        if explain:
            rule = ", ".join(["p", *explain])
            reason = f"{'allowed' if allowed else 'denied'} by rule [{rule}]"
        elif allowed:
            # Casbin names no rule for an allow (it scans on, looking for a deny); every
            # candidate matches, so the first allow among them is the one that allowed it.
            first = next((r for r in candidates if r[3] == "allow"), None)
            reason = f"allowed by rule [{', '.join(['p', *first])}]" if first else "allowed"
        else:
            reason = "no rule allows this"
        return Decision(bool(allowed), reason, self.version)

    def roles_cached(self, subject: str) -> tuple[str, ...]:
        """``roles_of``, memoised per compiled policy (bounded like the decision cache)."""
        with self._lock:
            hit = self._roles.get(subject)
        if hit is not None:
            return hit
        roles = tuple(self.roles_of(subject))
        with self._lock:
            if len(self._roles) >= self._cache_size:
                self._roles.pop(next(iter(self._roles)))
            self._roles[subject] = roles
        return roles

    def roles_of(self, subject: str) -> list[str]:
        """Roles a subject holds, directly or through other roles."""
        with self._enforce_lock:
            return sorted(self._enforcer.get_implicit_roles_for_user(subject))


class PolicyEngine:
    """Holds the current compiled policy and swaps it atomically.

    Before the first policy is installed every decision fails closed with a 503.
    """

    def __init__(self, model_path: Path, cache_size: int = 100_000) -> None:
        self.model_path = model_path
        self.cache_size = cache_size
        self._current: CompiledPolicy | None = None

    @property
    def current(self) -> CompiledPolicy:
        compiled = self._current
        if compiled is None:
            raise PolicyUnavailable("no access policy is loaded; every request is refused")
        return compiled

    @property
    def version(self) -> int | None:
        compiled = self._current
        return compiled.version if compiled else None

    def install(self, version: int, rules: Sequence[Rule]) -> CompiledPolicy:
        """Compile a version and make it current (a reference swap: readers never block)."""
        compiled = CompiledPolicy(version, rules, self.model_path, self.cache_size)
        current = self._current
        if current is None or version >= current.version:
            self._current = compiled
        return compiled

    def enforce(self, subject: str, obj: str, action: str) -> Decision:
        return self.current.enforce(subject, obj, action)
