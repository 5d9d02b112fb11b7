"""Effective permissions: what a subject may do under a rule set, computed without Casbin.

Warden's Casbin model (``policies/model.conf``) allows ``(subject, object, action)`` when some
``allow`` rule and no ``deny`` rule matches, and a ``p`` rule matches when its subject is the
subject or a role it holds (``g``), its object is the object or a resource group holding it
(``g2``), and its action is the action. Casbin's role managers follow at most
:data:`~governance.policy.rules.ENGINE_LINKS` links, so a role or group further away does not
count, exactly as in the engine.

Only the rules of the subject's reachable roles, the objects they name and those objects'
group members matter, so a 100k-rule policy costs what the subject touches, never objects x
actions. Used to refuse a change that widens its author's or approver's own permissions, and to
find changes that give anyone power over the governance surface (a second person decides those).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property

from governance.policy.rules import ENGINE_LINKS, Rule

# Identity, keys, roles, policy and the audit log, plus the rights over stored data (decrypt,
# purge, erase, key rotation) that would undo them: who holds these holds the service.
GOVERNANCE_OBJECTS = (
    "api:principals",
    "api:keys",
    "api:roles",
    "api:policy",
    "api:audit",
    "api:vault",
    "api:records",
    "api:subjects",
)

Permission = tuple[str, str]


def _within(start: str, edges: Mapping[str, Sequence[str]]) -> set[str]:
    """``start`` and every node at most ``ENGINE_LINKS`` links away (as Casbin's BFS finds them)."""
    seen = {start}
    frontier = [start]
    for _ in range(ENGINE_LINKS):
        nxt = [n for node in frontier for n in edges.get(node, ()) if n not in seen]
        if not nxt:
            break
        seen.update(nxt)
        frontier = list(dict.fromkeys(nxt))
    return seen


class Powers:
    """One rule set, indexed for effective-permission questions (build once, ask many)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        # subject -> its p rules as (object, action, effect)
        self._grants: dict[str, list[tuple[str, str, str]]] = {}
        self._roles: dict[str, list[str]] = {}  # g: member -> roles
        self._members: dict[str, list[str]] = {}  # g2 reversed: group -> members
        self._groups: dict[str, list[str]] = {}  # g2: member -> groups
        # No sorting (100k dataclass comparisons cost seconds): every answer is a set.
        for rule in rules:
            v = rule.values
            if rule.ptype == "p":
                self._grants.setdefault(v[0], []).append((v[1], v[2], v[3]))
            elif rule.ptype == "g":
                self._roles.setdefault(v[0], []).append(v[1])
            else:
                self._members.setdefault(v[1], []).append(v[0])
                self._groups.setdefault(v[0], []).append(v[1])
        self._matched: dict[str, set[str]] = {}

    @cached_property
    def subjects(self) -> frozenset[str]:
        """Every principal or role the rules name (``p`` subjects, ``g`` members and roles)."""
        names = set(self._grants) | set(self._roles)
        names.update(r for roles in self._roles.values() for r in roles)
        return frozenset(names)

    def roles_of(self, subject: str) -> set[str]:
        """``subject`` and the roles the engine finds for it."""
        return _within(subject, self._roles)

    def matched_by(self, obj: str) -> set[str]:
        """Every request object a rule naming ``obj`` matches: itself and its group members."""
        hit = self._matched.get(obj)
        if hit is None:
            hit = self._matched[obj] = _within(obj, self._members)
        return hit

    def effective(self, subject: str) -> frozenset[Permission]:
        """Every ``(object, action)`` the subject is allowed."""
        allow: set[Permission] = set()
        deny: set[Permission] = set()
        for role in self.roles_of(subject):
            for obj, act, eft in self._grants.get(role, ()):
                (allow if eft == "allow" else deny).add((obj, act))
        denied = {(x, act) for obj, act in deny for x in self.matched_by(obj)}
        return frozenset(
            (x, act) for obj, act in allow for x in self.matched_by(obj) if (x, act) not in denied
        )

    @cached_property
    def _governance_direct(self) -> dict[str, tuple[frozenset[Permission], frozenset[Permission]]]:
        """Per subject of a ``p`` rule: the governance permissions its own rules allow and deny."""
        # Which governance objects a rule naming an object matches (through g2 as well).
        hits: dict[str, list[str]] = {}
        for target in GOVERNANCE_OBJECTS:
            for obj in _within(target, self._groups):
                hits.setdefault(obj, []).append(target)
        direct: dict[str, tuple[frozenset[Permission], frozenset[Permission]]] = {}
        for subject, grants in self._grants.items():
            allow = {
                (t, act) for obj, act, eft in grants if eft == "allow" for t in hits.get(obj, ())
            }
            deny = {
                (t, act) for obj, act, eft in grants if eft == "deny" for t in hits.get(obj, ())
            }
            if allow or deny:
                direct[subject] = (frozenset(allow), frozenset(deny))
        return direct

    def governance(self, subject: str) -> frozenset[Permission]:
        """The subject's effective permissions on :data:`GOVERNANCE_OBJECTS` only."""
        allow: set[Permission] = set()
        deny: set[Permission] = set()
        direct = self._governance_direct
        for role in self.roles_of(subject):
            a, d = direct.get(role, (frozenset(), frozenset()))
            allow |= a
            deny |= d
        return frozenset(allow - deny)


def effective_permissions(rules: Iterable[Rule], subject: str) -> frozenset[Permission]:
    """Every ``(object, action)`` that ``subject`` is allowed under ``rules``.

    Agrees with :meth:`governance.policy.engine.CompiledPolicy.enforce`: an object no rule
    names, directly or as a group member, is never allowed, so none is missing here.

    Args:
        rules: a rule set (need not be validated: chains beyond the engine's reach are cut
            where the engine cuts them).
        subject: a principal name or ``role:<name>``.

    Returns:
        The allowed pairs.
    """
    return Powers(rules).effective(subject)


def gains(before: Iterable[Rule], after: Iterable[Rule], subject: str) -> list[Permission]:
    """The ``(object, action)`` pairs ``subject`` is allowed after and not before, sorted."""
    return sorted(Powers(after).effective(subject) - Powers(before).effective(subject))


def governance_gains(before: Iterable[Rule], after: Iterable[Rule]) -> list[tuple[str, str, str]]:
    """``(subject, object, action)`` for every subject that gains a governance permission.

    Subjects are the principals and roles named anywhere in either rule set. Only subjects
    that reach a role whose links or governance rules changed are evaluated, so a change to a
    large policy costs what it touches.

    Returns:
        The gains, sorted.
    """
    old, new = Powers(before), Powers(after)
    changed = {
        s
        for s in old.subjects | new.subjects
        if set(old._roles.get(s, ())) != set(new._roles.get(s, ()))
        or old._governance_direct.get(s) != new._governance_direct.get(s)
    }
    if not changed:
        return []
    # Everyone who holds a changed role, in either version (unbounded: a superset is safe).
    holders: dict[str, list[str]] = {}
    for powers in (old, new):
        for member, roles in powers._roles.items():
            for role in roles:
                holders.setdefault(role, []).append(member)
    affected = set(changed)
    frontier = list(changed)
    while frontier:
        node = frontier.pop()
        for member in holders.get(node, ()):
            if member not in affected:
                affected.add(member)
                frontier.append(member)
    found: list[tuple[str, str, str]] = []
    for subject in sorted(affected):
        for obj, act in sorted(new.governance(subject) - old.governance(subject)):
            found.append((subject, obj, act))
    return found


def first_widened(
    names: Iterable[str | None], before: Iterable[Rule], after: Iterable[Rule]
) -> tuple[str, list[Permission]] | None:
    """The first of ``names`` (``None`` skipped) whose permissions the change widens, with the
    pairs it gains, sorted; ``None`` when nobody named gains anything."""
    old, new = Powers(before), Powers(after)
    for name in dict.fromkeys(n for n in names if n):
        gained = sorted(new.effective(name) - old.effective(name))
        if gained:
            return name, gained
    return None
