"""Warden's own Casbin adapter: it loads one immutable policy version, and nothing else.

casbin-sqlalchemy-adapter is not used: its batch removal over-deletes, values with commas corrupt
the policy (rules are round-tripped through CSV lines), and its in-memory copy can diverge from
the database. Here rules are handed to the model as lists (never re-parsed from text), and the
adapter is read-only: a change is a new version, built into a new enforcer and swapped in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from casbin import persist

from governance.policy.rules import Rule


class ReadOnlyPolicyError(RuntimeError):
    """Raised if anything tries to write through the adapter (a programming error)."""


class VersionAdapter(persist.Adapter):
    """Serves the rules of a single policy version to a Casbin model.

    Args:
        rules: the validated rules of that version.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)

    def load_policy(self, model: Any) -> None:
        for rule in self._rules:
            sec = "p" if rule.ptype == "p" else "g"
            model.model[sec][rule.ptype].policy.append(list(rule.values))

    def _refuse(self, *_args: Any) -> None:
        raise ReadOnlyPolicyError("policy versions are immutable: apply a change instead")

    save_policy = add_policy = remove_policy = remove_filtered_policy = _refuse
