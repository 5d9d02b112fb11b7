"""Policy versions: seeding, reading, applying changes and rollbacks (each a new version).

Every write follows the same path: take the policy write lock, plan the new rule set against
the current version, refuse a change that widens its author's or approver's own effective
permissions (governance/policy/powers.py), run the stored policy tests on a compiled candidate,
and only then insert the version, bump the change counter and append the audit event, all in
the caller's transaction. A refusal at any step raises before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.db import state
from governance.kit.context import Context
from governance.policy import anchor
from governance.policy.errors import (
    InvalidPolicy,
    PermissionsWidened,
    PolicyConflict,
    PolicyFileError,
    PolicyNotFound,
    PolicyUnavailable,
    SecondPersonRequired,
)
from governance.policy.models import PolicyVersion
from governance.policy.powers import first_widened, governance_gains
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
from governance.policy.testcases import policy_tests

KINDS = ("seed", "change", "rollback")
# Beyond this many changed rules the audit event names counts only; the version row holds the
# full diff, and the event carries the version's sha256, which binds it.
AUDIT_DIFF_RULES = 500


@lru_cache(maxsize=8)
def default_policy(policies_dir: Path) -> tuple[Vocabulary, tuple[Rule, ...]]:
    """The deployment's vocabulary and seed rules, from ``default_policy.yaml``.

    Read once per process (the runtime reads it at start, so a request never meets a broken
    file; an edit takes effect at the next start).

    Raises:
        PolicyFileError: the file is unreadable, not YAML, or holds an invalid rule.
    """
    path = policies_dir / "default_policy.yaml"
    try:
        vocab, rules = load_default(path)
    except OSError as exc:
        raise PolicyFileError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PolicyFileError(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError:
        raise PolicyFileError(f"{path} is not valid YAML") from None
    except InvalidPolicy as exc:
        raise PolicyFileError(f"{path}: {exc.message}") from None
    return vocab, tuple(rules)


def self_grants(
    names: Iterable[str | None], before: Iterable[Rule], after: Iterable[Rule]
) -> list[Rule]:
    """What a change would grant to any of ``names``: roles, or allow rules naming them.

    A direct ``p, <me>, ..., allow`` is a self-grant as surely as a role is, so both count, even
    when it adds nothing today: a right held by one's own name outlives the role it copies, so
    revoking that role would no longer take it away.
    """
    who = {n for n in names if n}
    return sorted(
        r
        for r in set(after) - set(before)
        if r.values[0] in who and (r.ptype == "g" or (r.ptype == "p" and r.values[3] == "allow"))
    )


def require_reason(reason: str) -> str:
    """The stripped reason; every policy change needs one.

    Raises:
        InvalidPolicy: the reason is empty.
    """
    if not reason or not reason.strip():
        raise InvalidPolicy("a reason is required for every policy change")
    return reason.strip()


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
            raise PolicyNotFound(f"policy version {version} does not exist")
        return row

    def history(
        self, session: Session, *, offset: int = 0, limit: int | None = None
    ) -> list[PolicyVersion]:
        """Versions, oldest first."""
        query = select(PolicyVersion).order_by(PolicyVersion.version).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return list(session.scalars(query))

    def diff_between(self, session: Session, *, old: int, new: int) -> dict[str, list[list[str]]]:
        """Rules added and removed going from version ``old`` to version ``new`` (either order)."""
        return diff(
            load_rules(self.get(session, old).rules), load_rules(self.get(session, new).rules)
        )

    def lock(self, session: Session) -> None:
        """Serialise policy writers until the transaction ends.

        PostgreSQL: a row lock on the policy change counter, so two writers cannot both build
        version n+1. SQLite: transactions already begin IMMEDIATE (one writer at a time).
        """
        session.execute(
            select(state.StateCounter.value)
            .where(state.StateCounter.name == state.POLICY)
            .with_for_update()
        )

    def seed(self, session: Session, ctx: Context, policies_dir: Path) -> PolicyVersion:
        """Create version 1 from ``default_policy.yaml`` (``warden init``)."""
        _, rules = default_policy(policies_dir)
        return self._write(
            session,
            ctx,
            parent=None,
            rules=list(rules),
            reason="initial policy from policies/default_policy.yaml",
            kind="seed",
            previous=[],
        )

    def parse_rules(self, raw: Sequence[Any], vocab: Vocabulary, where: str) -> list[Rule]:
        return [parse_rule(r, vocab, f"{where}[{i}]") for i, r in enumerate(raw)]

    def propose(
        self,
        session: Session,
        *,
        add: Sequence[Any],
        remove: Sequence[Any],
        vocab: Vocabulary,
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
        self._check_base(current, base_version)
        adds = self.parse_rules(add, vocab, "add")
        removes = self.parse_rules(remove, vocab, "remove")
        if not adds and not removes:
            raise InvalidPolicy("a change must add or remove at least one rule")
        before = load_rules(current.rules)
        present = set(before)
        missing = [r for r in removes if r not in present]
        if missing:
            raise InvalidPolicy(
                f"cannot remove a rule that is not in the policy: {missing[0].describe()}"
            )
        duplicate = [r for r in adds if r in present and r not in set(removes)]
        if duplicate:
            raise InvalidPolicy(f"the policy already has the rule {duplicate[0].describe()}")
        after = sorted((present - set(removes)) | set(adds))
        check_graph(after)
        return current, before, after

    def plan_rollback(
        self,
        session: Session,
        *,
        to_version: int,
        vocab: Vocabulary,
        base_version: int | None = None,
    ) -> tuple[PolicyVersion, list[Rule], list[Rule]]:
        """The rule set of an earlier version, re-validated against today's vocabulary.

        Returns:
            ``(current version, its rules, the rules to restore)``.

        Raises:
            PolicyNotFound: no such version.
            InvalidPolicy: the target is not an earlier version, or uses a role or action that
                no longer exists.
            PolicyConflict: ``base_version`` is stale, or the target equals the current rules.
        """
        current = self.current(session)
        self._check_base(current, base_version)
        if to_version >= current.version:
            raise InvalidPolicy(
                f"a rollback goes to an earlier version than the current {current.version}"
            )
        target = self.get(session, to_version)
        after = self.parse_rules(
            [r.as_list() for r in load_rules(target.rules)], vocab, f"version {to_version}"
        )
        check_graph(after)
        before = load_rules(current.rules)
        if set(after) == set(before):
            raise PolicyConflict(
                f"version {to_version} has the same rules as the current version {current.version}"
            )
        return current, before, sorted(set(after))

    def apply(
        self,
        session: Session,
        ctx: Context,
        *,
        add: Sequence[Any],
        remove: Sequence[Any],
        reason: str,
        vocab: Vocabulary,
        base_version: int | None = None,
        approved_by: str | None = None,
        kind: str = "change",
        author: str | None = None,
        bootstrap: bool = False,
    ) -> PolicyVersion:
        """Apply a change as a new version, once every policy test passes on the result.

        Args:
            author: who proposed the change, when it is applied by its approver (``ctx``).
            bootstrap: the local operator appoints the first admin or officer; the only way
                to widen power over the governance surface without an approver.

        Raises:
            InvalidPolicy: malformed change or missing reason (nothing is written).
            PolicyConflict: self-grant, stale base version.
            PolicyTestsFailed: the result breaks stored policy tests (listed).
        """
        reason = require_reason(reason)
        self.lock(session)
        current, before, after = self.propose(
            session, add=add, remove=remove, vocab=vocab, base_version=base_version
        )
        return self._commit(
            session,
            ctx,
            current=current,
            before=before,
            after=after,
            reason=reason,
            kind=kind,
            vocab=vocab,
            approved_by=approved_by,
            author=author,
            bootstrap=bootstrap,
        )

    def rollback(
        self,
        session: Session,
        ctx: Context,
        *,
        to_version: int,
        reason: str,
        vocab: Vocabulary,
        base_version: int | None = None,
        approved_by: str | None = None,
        author: str | None = None,
    ) -> PolicyVersion:
        """Restore an earlier version's rules as a new version of kind ``rollback``.

        Raises:
            PolicyNotFound, InvalidPolicy, PolicyConflict: see :meth:`plan_rollback`; also a
                self-grant.
            PolicyTestsFailed: the restored rules break stored policy tests.
        """
        reason = require_reason(reason)
        self.lock(session)
        current, before, after = self.plan_rollback(
            session, to_version=to_version, vocab=vocab, base_version=base_version
        )
        return self._commit(
            session,
            ctx,
            current=current,
            before=before,
            after=after,
            reason=reason,
            kind="rollback",
            vocab=vocab,
            approved_by=approved_by,
            author=author,
            details={"rollback_to": to_version},
        )

    def check(
        self,
        session: Session,
        *,
        names: Iterable[str | None],
        before: Sequence[Rule],
        after: Sequence[Rule],
        version: int,
        vocab: Vocabulary,
    ) -> int:
        """Self-grant refusal and policy tests for a planned rule set (nothing is written).

        Args:
            names: who makes, proposes or approves the change (principal names; ``None`` is
                skipped). None of them may come out of it with a permission they lacked, by
                whatever path: a role, a role's rule, a group, a deny removed.

        Returns:
            How many policy tests ran.

        Raises:
            PermissionsWidened: the change widens the effective permissions of one of
                ``names`` (naming them and the first permission gained).
            PolicyConflict: a role or allow rule granted to one of ``names`` by name.
            PolicyTestsFailed: failing policy tests.
        """
        names = list(names)
        widened = first_widened(names, before, after)
        if widened:
            name, gained = widened
            obj, act = gained[0]
            more = f" (and {len(gained) - 1} more)" if len(gained) > 1 else ""
            raise PermissionsWidened(
                "nobody can grant rights to themselves: the change would widen the permissions "
                f"of {name!r}, who makes or approves it: {obj} {act}{more}",
                # Bounded: a change to a large policy can open thousands of pairs.
                extra={"subject": name, "gained": [list(g) for g in gained[:100]]},
            )
        granted = self_grants(names, before, after)
        if granted:
            raise PolicyConflict(
                f"nobody can grant a role or a right to themselves ({granted[0].describe()})"
            )
        return policy_tests.require_passing(session, version=version, rules=after, vocab=vocab)

    def _commit(
        self,
        session: Session,
        ctx: Context,
        *,
        current: PolicyVersion,
        before: list[Rule],
        after: list[Rule],
        reason: str,
        kind: str,
        vocab: Vocabulary,
        approved_by: str | None,
        author: str | None,
        details: dict[str, Any] | None = None,
        bootstrap: bool = False,
    ) -> PolicyVersion:
        if approved_by is None and not bootstrap:
            self.require_no_governance_gain(before, after)
        tests_run = self.check(
            session,
            names=(ctx.actor.name, author, approved_by),
            before=before,
            after=after,
            version=current.version + 1,
            vocab=vocab,
        )
        return self._write(
            session,
            ctx,
            parent=current.version,
            rules=after,
            reason=reason,
            kind=kind,
            previous=before,
            approved_by=approved_by,
            author=author,
            details={
                **(details or {}),
                "policy_tests_run": tests_run,
                # The one widening of governance with no approver: an auditor finds it by this.
                **({"bootstrap": True} if bootstrap else {}),
            },
        )

    def second_person_needed(
        self,
        session: Session,
        *,
        vocab: Vocabulary,
        add: Sequence[Any] = (),
        remove: Sequence[Any] = (),
        to_version: int | None = None,
    ) -> list[tuple[str, str, str]]:
        """The governance-surface permissions a change or rollback would give anyone.

        A non-empty answer means the change must go to a second person as a proposal, whatever
        ``require_second_approval`` says. Validation errors surface here as they would on apply.
        """
        if to_version is not None:
            _, before, after = self.plan_rollback(session, to_version=to_version, vocab=vocab)
        else:
            _, before, after = self.propose(session, add=add, remove=remove, vocab=vocab)
        return governance_gains(before, after)

    @staticmethod
    def require_no_governance_gain(before: Sequence[Rule], after: Sequence[Rule]) -> None:
        """Raises SecondPersonRequired when the change widens power over governance."""
        gained = governance_gains(before, after)
        if gained:
            subject, obj, act = gained[0]
            more = f" (and {len(gained) - 1} more)" if len(gained) > 1 else ""
            raise SecondPersonRequired(
                f"the change gives {subject} {obj} {act}{more}: power over identity, keys, roles, "
                "policy or the audit log needs a second compliance officer's approval; submit it "
                "as a proposal"
            )

    @staticmethod
    def _check_base(current: PolicyVersion, base_version: int | None) -> None:
        if base_version is not None and base_version != current.version:
            raise PolicyConflict(
                f"the change was prepared against version {base_version} but the current "
                f"version is {current.version}"
            )

    def _write(
        self,
        session: Session,
        ctx: Context,
        *,
        parent: int | None,
        rules: list[Rule],
        reason: str,
        kind: str,
        previous: list[Rule],
        approved_by: str | None = None,
        author: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> PolicyVersion:
        text = canonical(rules)
        change = diff(previous, rules)
        row = PolicyVersion(
            version=(parent or 0) + 1,
            parent=parent,
            author=(author or ctx.name)[:64],
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
        changed = len(change["added"]) + len(change["removed"])
        audited_diff: dict[str, Any] = (
            dict(change)
            if changed <= AUDIT_DIFF_RULES
            else {
                "added_count": len(change["added"]),
                "removed_count": len(change["removed"]),
            }
        )
        audit_log.append(
            session,
            [
                ctx.event(
                    "policy.change",
                    kind,
                    resource=anchor.resource(row.version),
                    reason=reason[:500],
                    policy_version=row.version,
                    details={
                        "parent": parent,
                        "sha256": row.sha256,
                        "content_hash": anchor.row_hash(row),
                        "diff": audited_diff,
                        "author": row.author,
                        "approved_by": approved_by,
                        **(details or {}),
                    },
                )
            ],
        )
        return row


policy = PolicyService()
