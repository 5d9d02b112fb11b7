"""Policy versions: seeding, reading and applying changes (each change is a new version)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.context import Context
from governance.db import state
from governance.policy.errors import InvalidPolicy, PolicyConflict, PolicyUnavailable
from governance.policy.models import PolicyVersion
from governance.policy.rules import (
    Rule,
    Vocabulary,
    canonical,
    check_graph,
    diff,
    digest,
    load_default,
    load_rules,
    parse_rule,
)


@lru_cache(maxsize=8)
def default_policy(policies_dir: Path) -> tuple[Vocabulary, tuple[Rule, ...]]:
    vocab, rules = load_default(policies_dir / "default_policy.yaml")
    return vocab, tuple(rules)


class PolicyService:
    """Stateless; never commits."""

    def current(self, session: Session) -> PolicyVersion:
        row = session.scalar(select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1))
        if row is None:
            raise PolicyUnavailable("no policy version exists: run `warden init`")
        return row

    def get(self, session: Session, version: int) -> PolicyVersion:
        row = session.get(PolicyVersion, version)
        if row is None:
            raise InvalidPolicy(f"policy version {version} does not exist", status_code=404)
        return row

    def history(self, session: Session) -> list[PolicyVersion]:
        return list(session.scalars(select(PolicyVersion).order_by(PolicyVersion.version)))

    def seed(self, session: Session, ctx: Context, policies_dir: Path) -> PolicyVersion:
        """Create version 1 from ``default_policy.yaml`` (``warden init``)."""
        _, rules = default_policy(policies_dir)
        return self._write(session, ctx, parent=None, rules=list(rules), reason=
                           "initial policy from policies/default_policy.yaml", kind="seed",
                           previous=[])

    def parse_rules(self, raw: Sequence[Any], vocab: Vocabulary, where: str) -> list[Rule]:
        return [parse_rule(r, vocab, f"{where}[{i}]") for i, r in enumerate(raw)]

    def propose(
        self, session: Session, *, add: Sequence[Any], remove: Sequence[Any], vocab: Vocabulary,
        base_version: int | None = None,
    ) -> tuple[PolicyVersion, list[Rule], list[Rule]]:
        """Validate a change against the current version without writing anything.

        Returns:
            ``(current version, its rules, the proposed rules)``.

        Raises:
            InvalidPolicy: malformed rules, removal of absent rules, cycles, depth.
            PolicyConflict: ``base_version`` is stale.
        """
        current = self.current(session)
        if base_version is not None and base_version != current.version:
            raise PolicyConflict(
                f"the change was prepared against version {base_version} but the current "
                f"version is {current.version}"
            )
        adds = self.parse_rules(add, vocab, "add")
        removes = self.parse_rules(remove, vocab, "remove")
        if not adds and not removes:
            raise InvalidPolicy("a change must add or remove at least one rule")
        before = load_rules(current.rules)
        present = set(before)
        missing = [r for r in removes if r not in present]
        if missing:
            raise InvalidPolicy(f"cannot remove a rule that is not in the policy: {missing[0].describe()}")
        after = sorted((present - set(removes)) | set(adds))
        check_graph(after)
        return current, before, after

    def apply(
        self, session: Session, ctx: Context, *, add: Sequence[Any], remove: Sequence[Any],
        reason: str, vocab: Vocabulary, base_version: int | None = None,
        approved_by: str | None = None, kind: str = "change",
    ) -> PolicyVersion:
        """Apply a change as a new version.

        Raises:
            InvalidPolicy: malformed change or missing reason (nothing is written).
            PolicyConflict: self-grant, stale base version.
        """
        if not reason or not reason.strip():
            raise InvalidPolicy("a reason is required for every policy change")
        current, before, after = self.propose(
            session, add=add, remove=remove, vocab=vocab, base_version=base_version
        )
        for rule in set(after) - set(before):
            if rule.ptype == "g" and rule.values[0] == ctx.actor.name:
                raise PolicyConflict("nobody can grant a role to themselves")
        return self._write(session, ctx, parent=current.version, rules=after, reason=reason.strip(),
                           kind=kind, previous=before, approved_by=approved_by)

    def _write(
        self, session: Session, ctx: Context, *, parent: int | None, rules: list[Rule],
        reason: str, kind: str, previous: list[Rule], approved_by: str | None = None,
    ) -> PolicyVersion:
        text = canonical(rules)
        change = diff(previous, rules)
        row = PolicyVersion(
            version=(parent or 0) + 1,
            parent=parent,
            author=ctx.name,
            approved_by=approved_by,
            reason=reason[:2000],
            kind=kind,
            rules=text,
            sha256=digest(text),
            diff=json.dumps(change, separators=(",", ":")),
        )
        session.add(row)
        session.flush()
        state.bump(session, state.POLICY)
        audit_log.append(
            session,
            [ctx.event("policy.change", kind, resource={"policy_version": row.version},
                       reason=reason[:500], policy_version=row.version,
                       details={"parent": parent, "sha256": row.sha256, "diff": change,
                                "approved_by": approved_by})],
        )
        return row


policy = PolicyService()
