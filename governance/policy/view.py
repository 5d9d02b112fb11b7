"""A rule set as a compliance officer reads it: roles and members, grants, denies, groups."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from governance.policy.rules import Rule


def summarize(rules: Iterable[Rule], *, roles_known: Iterable[str] = ()) -> dict[str, Any]:
    """Group rules by meaning.

    Args:
        rules: the rule set.
        roles_known: roles to list even without members (the vocabulary's).

    Returns:
        ``{"roles": {role: [members]}, "grants": [[subject, object, action]], "denies": [...],
        "groups": {group: [members]}}``, every list sorted.
    """
    roles: dict[str, list[str]] = {role: [] for role in sorted(roles_known)}
    groups: dict[str, list[str]] = {}
    grants: list[list[str]] = []
    denies: list[list[str]] = []
    for rule in sorted(set(rules)):
        if rule.ptype == "g":
            roles.setdefault(rule.values[1].removeprefix("role:"), []).append(rule.values[0])
        elif rule.ptype == "g2":
            groups.setdefault(rule.values[1], []).append(rule.values[0])
        else:
            subject, obj, action, effect = rule.values
            (grants if effect == "allow" else denies).append([subject, obj, action])
    return {"roles": roles, "grants": grants, "denies": denies, "groups": groups}
