"""Policy rules as data: validation, canonical form, hashing and diffs.

A policy is a set of rules, each one of:

- ``("p", subject, object, action, effect)`` with effect ``allow`` or ``deny``;
- ``("g", member, role)``: a principal or role is a member of a role;
- ``("g2", resource, group)``: a model (or group) belongs to a resource group.

Values are checked before Casbin ever sees them. Casbin's CSV-based storage splits on commas and
lines, so a comma, newline or control character in a value could forge extra rules; they are
refused here, as are unknown roles and actions, role cycles and chains deeper than Casbin's
role-manager limit.
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

# Casbin's default RoleManager stops following g links after this many hops.
MAX_ROLE_DEPTH = 10
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
        raise InvalidPolicy(f"{where}: unknown role {subject!r}")


def check_graph(rules: Iterable[Rule]) -> None:
    """Refuse cycles and over-deep chains in the role graph and the resource-group graph.

    Raises:
        InvalidPolicy: naming the cycle or the over-long chain.
    """
    for ptype in ("g", "g2"):
        edges: dict[str, set[str]] = {}
        for rule in rules:
            if rule.ptype == ptype:
                edges.setdefault(rule.values[0], set()).add(rule.values[1])
        depth: dict[str, int] = {}
        visiting: set[str] = set()

        def walk(
            node: str,
            _edges: dict[str, set[str]] = edges,
            _kind: str = ptype,
            _depth: dict[str, int] = depth,
            _visiting: set[str] = visiting,
        ) -> int:
            if node in _depth:
                return _depth[node]
            if node in _visiting:
                raise InvalidPolicy(f"the {_kind} graph has a cycle through {node!r}")
            _visiting.add(node)
            best = 0
            for parent in _edges.get(node, ()):
                best = max(best, 1 + walk(parent))
            _visiting.discard(node)
            _depth[node] = best
            return best

        for node in list(edges):
            if walk(node) > MAX_ROLE_DEPTH:
                raise InvalidPolicy(
                    f"the {ptype} chain from {node!r} is deeper than Casbin's limit "
                    f"of {MAX_ROLE_DEPTH}"
                )


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
