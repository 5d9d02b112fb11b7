"""Authorization decisions: a Casbin enforcer per policy version, with a decision cache.

A policy change never reloads the enforcer in place (``load_policy`` under a lock stalls every
reader). Instead a new :class:`CompiledPolicy` is built beside the old one and the reference is
swapped; requests already holding the old one finish with it. Each compiled policy owns its own
bounded decision cache, so a new version can never serve a decision cached under an old one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import casbin

from governance.policy.adapter import VersionAdapter
from governance.policy.errors import PolicyUnavailable
from governance.policy.rules import Rule


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
    """

    def __init__(
        self, version: int, rules: Sequence[Rule], model_path: Path, cache_size: int
    ) -> None:
        self.version = version
        self.rules = tuple(rules)
        self._enforcer = casbin.Enforcer(str(model_path), VersionAdapter(self.rules))
        self._cache: OrderedDict[tuple[str, str, str], Decision] = OrderedDict()
        self._cache_size = cache_size
        self._roles: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        # Casbin's enforcer is not documented as thread-safe; cold decisions take turns.
        self._enforce_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

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
        with self._enforce_lock:
            allowed, explain = self._enforcer.enforce_ex(subject, obj, action)
        if explain:
            rule = ", ".join(["p", *explain])
            reason = f"{'allowed' if allowed else 'denied'} by rule [{rule}]"
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
