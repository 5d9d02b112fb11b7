"""Policy rules as data: validation, canonical form, hashing and diffs.

A policy is a set of rules, each one of:

- ``("p", subject, object, action, effect)`` with effect ``allow`` or ``deny``;
- ``("g", member, role)``: a principal or role is a member of a role;
- ``("g2", resource, group)``: a model (or group) belongs to a resource group.

Values are checked before Casbin ever sees them. Casbin's CSV-based storage splits on commas and
lines, so a comma, newline or control character in a value could forge extra rules; they are
refused here, as are unknown roles and actions, role cycles and chains longer than Casbin's
role manager follows (a rule at the top of such a chain would be silently ignored).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from governance.policy.errors import InvalidPolicy

# Links Casbin's default role manager follows, for g and g2 alike: the enforcer builds
# RoleManager(10), whose level counter counts the start itself, so a tenth link is never
# reached (tests/policy/test_chain_depth.py probes the engine at this boundary).
ENGINE_LINKS = 9
# The longest role or resource-group chain a policy may hold: one the engine follows in full,
# so that no rule at the top of a chain, an explicit deny included, is silently ignored.
MAX_ROLE_DEPTH = ENGINE_LINKS
# A policy value: a name of at most VALUE_MAX characters from VALUE_CHARS, starting with a
# letter or digit (the OpenAPI document's rule schema is built from the same two).
VALUE_CHARS = "A-Za-z0-9._:@/-"
VALUE_MAX = 128
VALUE_RE = re.compile(rf"^[A-Za-z0-9][{VALUE_CHARS}]{{0,{VALUE_MAX - 1}}}\Z")
PTYPES = ("p", "g", "g2")
EFFECTS = ("allow", "deny")


@dataclass(frozen=True, order=True)
class Rule:
    ptype: str
    values: tuple[str, ...]

    def as_list(self) -> list[str]:
        return [self.ptype, *self.values]

    def describe(self) -> str:
        return ", ".join(self.as_list())


@dataclass(frozen=True)
class Vocabulary:
    """The roles and actions a policy may use (from ``policies/default_policy.yaml``).

    ``model_path`` is the Casbin model that sits beside that file: a candidate policy is
    compiled with it to run the policy tests before a change is written.
    """

    roles: frozenset[str]
    actions: frozenset[str]
    model_path: Path | None = None


def role_subject(role: str) -> str:
    return f"role:{role}"


def check_value(value: Any, where: str) -> str:
    """Refuse a value that is not a plain name (Casbin's CSV storage would misread it).

    Raises:
        InvalidPolicy: naming where the bad value is (at most 64 characters of it).
    """
    if not isinstance(value, str):
        raise InvalidPolicy(f"{where}: expected a string")
    if any(ch in value for ch in ",\n\r\t") or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidPolicy(f"{where}: commas, newlines and control characters are not allowed")
    if not VALUE_RE.match(value):
        raise InvalidPolicy(f"{where}: {value[:64]!r} is not a valid name")
    return value


def parse_rule(raw: Any, vocab: Vocabulary, where: str = "rule") -> Rule:
    """Validate one rule given as a list (``["p", sub, obj, act, eft]`` ...).

    Raises:
        InvalidPolicy: naming what is wrong.
    """
    if not isinstance(raw, list | tuple) or not raw:
        raise InvalidPolicy(f"{where}: expected a list such as ['g', 'alice', 'role:auditor']")
    ptype = raw[0]
    if ptype not in PTYPES:
        raise InvalidPolicy(f"{where}: rule type must be one of {', '.join(PTYPES)}")
    arity = 5 if ptype == "p" else 3
    if len(raw) != arity:
        raise InvalidPolicy(f"{where}: a {ptype!r} rule has {arity - 1} values")
    values = tuple(check_value(v, f"{where}[{i}]") for i, v in enumerate(raw[1:], start=1))
    if ptype == "p":
        sub, _obj, act, eft = values
        if act not in vocab.actions:
            raise InvalidPolicy(f"{where}: unknown action {act!r}")
        if eft not in EFFECTS:
            raise InvalidPolicy(f"{where}: effect must be allow or deny")
        check_role_ref(sub, vocab, where)
    elif ptype == "g":
        member, role = values
        if not role.startswith("role:"):
            raise InvalidPolicy(f"{where}: the second value of a 'g' rule must be a role:<name>")
        check_role_ref(role, vocab, where)
        check_role_ref(member, vocab, where)
    else:
        resource, group = values
        if not group.startswith("group:"):
            raise InvalidPolicy(f"{where}: the second value of a 'g2' rule must be a group:<name>")
        if not resource.startswith(("model:", "group:")):
            raise InvalidPolicy(f"{where}: a 'g2' member must be a model:<name> or group:<name>")
    return Rule(ptype, values)


def check_role_ref(subject: str, vocab: Vocabulary, where: str) -> None:
    """Refuse ``role:<name>`` when the vocabulary has no such role."""
    if subject.startswith("role:") and subject.removeprefix("role:") not in vocab.roles:
        valid = ", ".join(sorted(vocab.roles))
        raise InvalidPolicy(f"{where}: unknown role {subject!r}; the roles are {valid}")


def check_graph(rules: Iterable[Rule]) -> None:
    """Refuse cycles and over-deep chains in the role graph and the resource-group graph.

    Raises:
        InvalidPolicy: naming the cycle, or the over-long chain by its two ends.
    """
    rules = list(rules)
    for ptype in ("g", "g2"):
        edges: dict[str, list[str]] = {}
        for rule in rules:
            if rule.ptype == ptype:
                edges.setdefault(rule.values[0], []).append(rule.values[1])
        depth, top = _longest_chains(ptype, edges)
        if edges:
            # The longest chain is named (by its first node in name order among equals).
            node = min(edges, key=lambda n: (-depth[n], n))
            if depth[node] > MAX_ROLE_DEPTH:
                raise InvalidPolicy(
                    f"the {ptype} chain from {node!r} up to {top[node]!r} has {depth[node]} "
                    f"links, deeper than Casbin's limit of {MAX_ROLE_DEPTH}: the engine would "
                    "ignore the rules at its top"
                )


def _longest_chains(
    kind: str, edges: dict[str, list[str]]
) -> tuple[dict[str, int], dict[str, str]]:
    """Each node's longest chain upwards: its length in links and the node at its top.

    Iterative (a change may hold thousands of links: recursion would overflow before the
    depth check could refuse them).

    Raises:
        InvalidPolicy: the graph has a cycle.
    """
    depth: dict[str, int] = {}
    top: dict[str, str] = {}
    for start in sorted(edges):
        if start in depth:
            continue
        visiting = {start}
        stack = [(start, iter(sorted(edges[start])))]
        while stack:
            node, parents = stack[-1]
            parent = next(parents, None)
            if parent is None:
                stack.pop()
                visiting.discard(node)
                depth[node], top[node] = 0, node
                for up in edges.get(node, ()):
                    if depth[up] + 1 > depth[node]:
                        depth[node], top[node] = depth[up] + 1, top[up]
            elif parent in visiting:
                raise InvalidPolicy(f"the {kind} graph has a cycle through {parent!r}")
            elif parent not in depth:
                visiting.add(parent)
                stack.append((parent, iter(sorted(edges.get(parent, ())))))
    return depth, top


def canonical(rules: Iterable[Rule]) -> str:
    """The canonical JSON text of a rule set (sorted, deduplicated): what is stored and hashed."""
    return json.dumps([r.as_list() for r in sorted(set(rules))], separators=(",", ":"))


def digest(rules_json: str) -> str:
    return hashlib.sha256(rules_json.encode()).hexdigest()


def load_rules(rules_json: str) -> list[Rule]:
    """Rules from stored canonical JSON (trusted: it was validated when written)."""
    return [Rule(r[0], tuple(r[1:])) for r in json.loads(rules_json)]


def diff(old: Iterable[Rule], new: Iterable[Rule]) -> dict[str, list[list[str]]]:
    """Rules added and removed between two rule sets."""
    before, after = set(old), set(new)
    return {
        "added": [r.as_list() for r in sorted(after - before)],
        "removed": [r.as_list() for r in sorted(before - after)],
    }


def load_default(path: Path) -> tuple[Vocabulary, list[Rule]]:
    """Read ``default_policy.yaml``: the vocabulary and the seed rule set.

    Raises:
        InvalidPolicy: when the file is malformed.
    """
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise InvalidPolicy(f"{path.name}: expected a mapping")
    vocab = Vocabulary(
        roles=frozenset(doc.get("roles", {})),
        actions=frozenset(doc.get("actions", [])),
        model_path=path.parent / "model.conf",
    )
    rules: list[Rule] = []
    for section, effect in (("grants", "allow"), ("separate_rights", "allow"), ("denies", "deny")):
        for role, objects in (doc.get(section) or {}).items():
            for obj, actions in objects.items():
                for act in actions:
                    rules.append(
                        parse_rule(["p", role_subject(role), obj, act, effect], vocab, section)
                    )
    for group, members in (doc.get("groups") or {}).items():
        for member in members:
            rules.append(parse_rule(["g2", member, group], vocab, "groups"))
    check_graph(rules)
    return vocab, rules
