"""Who holds a role under a rule set: the principals that reach it through ``g`` links."""

from __future__ import annotations

from collections.abc import Iterable

from governance.policy.rules import Rule


def holders(rules: Iterable[Rule], role: str) -> set[str]:
    """Principals (not roles) that hold ``role`` directly or through inherited roles."""
    members: dict[str, set[str]] = {}
    for rule in rules:
        if rule.ptype == "g":
            members.setdefault(rule.values[1], set()).add(rule.values[0])
    found: set[str] = set()
    seen = {role}
    frontier = [role]
    while frontier:
        for member in members.get(frontier.pop(), ()):
            if member in seen:
                continue
            seen.add(member)
            if member.startswith("role:"):
                frontier.append(member)
            else:
                found.add(member)
    return found
