"""Property: no accepted policy change ever widens its author's or approver's permissions.

Random sequences of changes (adds and removes of p, g and g2 rules over a small vocabulary) by
random authors and approvers go through the real ``PolicyService.apply`` on a migrated database
seeded with the default policy. Whatever is accepted is then judged by Casbin itself: every
(object, action) the author or approver may do afterwards they could do before.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from governance.config import Settings
from governance.db import make_engine, make_sessionmaker
from governance.kit.context import Context
from governance.kit.events import Actor
from governance.policy.engine import CompiledPolicy
from governance.policy.errors import InvalidPolicy, PermissionsWidened, PolicyConflict
from governance.policy.rules import Rule, load_rules
from governance.policy.service import default_policy, policy

PEOPLE = ("olivia", "oscar", "ann", "eve", "admin")
ROLES = tuple(f"role:{r}" for r in ("admin", "compliance_officer", "auditor", "ml_engineer"))
OBJECTS = ("api:keys", "api:policy", "api:roles", "api:audit", "api:records", "api:models")
GROUPED = ("model:m", "group:x", "group:default-models")
ACTIONS = ("read", "write", "issue", "grant", "decrypt", "export", "predict")
# Who holds what before the random changes start (committed once per database).
STAFF = {
    "olivia": "compliance_officer",
    "oscar": "compliance_officer",
    "ann": "auditor",
    "eve": "ml_engineer",
}

rules = st.one_of(
    st.tuples(
        st.just("p"),
        st.sampled_from(PEOPLE + ROLES),
        st.sampled_from(OBJECTS + GROUPED),
        st.sampled_from(ACTIONS),
        st.sampled_from(("allow", "deny")),
    ),
    st.tuples(st.just("g"), st.sampled_from(PEOPLE + ROLES), st.sampled_from(ROLES)),
    st.tuples(st.just("g2"), st.sampled_from(GROUPED[:2]), st.sampled_from(GROUPED[1:])),
).filter(lambda r: r[1] != r[2])  # a self-link is only ever a 422
Step = tuple[str, str | None, list[tuple[str, ...]], list[int | tuple[str, ...]]]
steps = st.tuples(
    st.sampled_from(PEOPLE),
    st.none() | st.sampled_from(PEOPLE),
    st.lists(rules, max_size=2),
    # Removals: positions in the current rule list (taken modulo its length); the explicit
    # examples below also name a rule outright.
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=2),
).filter(lambda s: s[0] != s[1] and bool(s[2] or s[3]))


def allowed(rules: list[Rule], subject: str, model: Path) -> set[tuple[str, str]]:
    """Casbin's answers for ``subject`` over every object and action the rules mention."""
    objects = {v for r in rules for v in (r.values[1:2] if r.ptype == "p" else r.values)}
    objects -= set(PEOPLE) | set(ROLES)
    actions = {r.values[2] for r in rules if r.ptype == "p"}
    compiled = CompiledPolicy(1, rules, model, 100_000)
    return {
        (o, a)
        for o, a in itertools.product(sorted(objects), sorted(actions))
        if compiled.enforce(subject, o, a).allowed
    }


def context(name: str) -> Context:
    return Context(actor=Actor(principal_id=None, name=name, roles=(), auth_method="api_key"))


def test_no_accepted_change_widens_its_author_or_approver(
    settings: Settings, admin_token: str
) -> None:
    vocab, _ = default_policy(settings.policies_dir)
    model = settings.policies_dir / "model.conf"
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        policy.apply(
            session,
            context("setup"),
            add=[["g", who, f"role:{role}"] for who, role in STAFF.items()],
            remove=[],
            reason="staff for the property test",
            vocab=vocab,
            author="setup",
            approved_by="setup-second",
        )
    outcomes: Counter[str] = Counter()

    def run(session: Session, step: Step) -> None:
        author, approver, adds, removes = step
        before = load_rules(policy.current(session).rules)
        current = sorted(before)
        # Positions pick present rules; a rule given outright may be absent (a 422).
        picked = {
            r if isinstance(r, tuple) else tuple(current[r % len(current)].as_list())
            for r in removes
        }
        remove = [list(r) for r in sorted(picked)]
        savepoint = session.begin_nested()
        try:
            row = policy.apply(
                session,
                context(approver or author),
                add=[list(r) for r in adds],
                remove=remove,
                reason="property",
                vocab=vocab,
                approved_by=approver,
                author=author if approver else None,
            )
        except PermissionsWidened:
            savepoint.rollback()
            outcomes["widening refused"] += 1
            return
        except (InvalidPolicy, PolicyConflict):
            savepoint.rollback()
            outcomes["otherwise refused"] += 1
            return
        savepoint.commit()
        outcomes["accepted"] += 1
        after = load_rules(row.rules)
        for name in (author, approver):
            if name is not None:
                gained = allowed(after, name, model) - allowed(before, name, model)
                assert not gained, (name, gained, step)

    @hypothesis_settings(max_examples=25, deadline=None, database=None)
    @given(st.lists(steps, min_size=1, max_size=4))
    # An officer makes every officer an admin: refused, whoever approves.
    @example([("olivia", "oscar", [("g", "role:compliance_officer", "role:admin")], [])])
    # ... or lets officers issue keys, or removes a deny that binds her (added by oscar first).
    @example(
        [
            ("olivia", None, [("p", "role:compliance_officer", "api:keys", "issue", "allow")], []),
            ("oscar", None, [("p", "olivia", "api:models", "read", "deny")], []),
            ("olivia", None, [], [("p", "olivia", "api:models", "read", "deny")]),
            ("olivia", None, [("g2", "model:m", "group:default-models")], []),
        ]
    )
    def sequence(changes: list[Step]) -> None:
        with sessions() as session:
            session.begin()
            try:
                for step in changes:
                    run(session, step)
            finally:
                session.rollback()

    try:
        sequence()
    finally:
        engine.dispose()
    assert outcomes["accepted"] and outcomes["widening refused"], outcomes
