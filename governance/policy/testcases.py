"""Policy tests: stored expected decisions that every new policy version must keep.

In the manner of ``opa test`` or Cerbos policy tests, a compliance officer pins down decisions
that matter ("auditors may export reports", "clients may never decrypt records"). Before a change
is written, the candidate rule set is compiled into its own :class:`CompiledPolicy` and every
case is evaluated against it; one failing case refuses the whole change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.config import shipped_dir
from governance.kit.context import Context
from governance.policy.engine import CompiledPolicy
from governance.policy.errors import (
    InvalidPolicy,
    PolicyConflict,
    PolicyNotFound,
    PolicyTestsFailed,
    PolicyUnavailable,
)
from governance.policy.models import PolicyTestCase, PolicyVersion
from governance.policy.rules import Rule, Vocabulary, check_role_ref, check_value, load_rules

EXPECTED = ("allow", "deny")
# A candidate answers each case once; a small cache is plenty.
CANDIDATE_CACHE_SIZE = 4096
DEFAULT_MODEL = shipped_dir("policies") / "model.conf"


def model_path(vocab: Vocabulary) -> Path:
    """The Casbin model a candidate is compiled with (beside the vocabulary's YAML)."""
    return vocab.model_path or DEFAULT_MODEL


def compile_candidate(*, version: int, rules: Sequence[Rule], vocab: Vocabulary) -> CompiledPolicy:
    """Compile a rule set that is not (yet) a stored version, to evaluate it.

    Args:
        version: the version number it would get.
        rules: the validated rules.
        vocab: the vocabulary (its ``model_path`` names the Casbin model).

    Returns:
        A compiled policy, independent of the one the server enforces.
    """
    return CompiledPolicy(version, rules, model_path(vocab), CANDIDATE_CACHE_SIZE)


@dataclass(frozen=True)
class CaseResult:
    case: PolicyTestCase
    actual: str
    reason: str

    @property
    def passed(self) -> bool:
        return self.actual == self.case.expected

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "subject": self.case.subject,
            "object": self.case.object,
            "action": self.case.action,
            "expected": self.case.expected,
            "actual": self.actual,
            "reason": self.reason,
            "description": self.case.description,
        }


class PolicyTestService:
    """Stateless; never commits."""

    def cases(self, session: Session) -> list[PolicyTestCase]:
        return list(session.scalars(select(PolicyTestCase).order_by(PolicyTestCase.id)))

    def get(self, session: Session, case_id: int) -> PolicyTestCase:
        case = session.get(PolicyTestCase, case_id)
        if case is None:
            raise PolicyNotFound(f"policy test {case_id} does not exist")
        return case

    def add(
        self,
        session: Session,
        ctx: Context,
        *,
        subject: str,
        object: str,
        action: str,
        expected: str,
        vocab: Vocabulary,
        description: str = "",
        current: CompiledPolicy | None = None,
    ) -> PolicyTestCase:
        """Store a case; every later change must keep its decision.

        The case must hold under the current policy: a failing case would block every later
        change, role grants included, until someone fixed the policy. Write the change first,
        then the case that pins it down.

        Args:
            current: the compiled current version, when the caller has it (else it is compiled).

        Raises:
            InvalidPolicy: a malformed subject, object or action, or an unknown role or action.
            PolicyConflict: a case for the same request already exists, or the case fails now.
        """
        check_value(subject, "subject")
        check_value(object, "object")
        check_value(action, "action")
        check_role_ref(subject, vocab, "subject")
        if action not in vocab.actions:
            raise InvalidPolicy(f"action: unknown action {action!r}")
        if expected not in EXPECTED:
            raise InvalidPolicy("expected must be allow or deny")
        existing = session.scalar(
            select(PolicyTestCase.id).where(
                PolicyTestCase.subject == subject,
                PolicyTestCase.object == object,
                PolicyTestCase.action == action,
            )
        )
        if existing is not None:
            raise PolicyConflict(
                f"policy test {existing} already covers ({subject}, {object}, {action})"
            )
        case = PolicyTestCase(
            subject=subject,
            object=object,
            action=action,
            expected=expected,
            description=description[:2000],
            created_by=ctx.name,
        )
        result = self.evaluate([case], current or self._compile_current(session, vocab))[0]
        if not result.passed:
            raise PolicyConflict(
                f"the current policy decides {result.actual} for ({subject}, {object}, {action}), "
                f"not {expected}: change the policy first, then add the test",
                extra={"failing": [result.as_dict()]},
            )
        session.add(case)
        try:
            session.flush()
        except IntegrityError:
            raise PolicyConflict(
                f"a policy test already covers ({subject}, {object}, {action})"
            ) from None
        audit_log.append(
            session,
            [
                ctx.event(
                    "policy.test",
                    "add",
                    resource={"policy_test": case.id},
                    details={
                        "subject": subject,
                        "object": object,
                        "action": action,
                        "expected": expected,
                    },
                )
            ],
        )
        return case

    def remove(
        self, session: Session, ctx: Context, *, case_id: int, reason: str
    ) -> PolicyTestCase:
        """Delete a case; the deletion and its reason are audited.

        Raises:
            PolicyNotFound: no such case.
            InvalidPolicy: no reason given.
        """
        if not reason.strip():
            raise InvalidPolicy("a reason is required to remove a policy test")
        case = self.get(session, case_id)
        session.delete(case)
        session.flush()
        audit_log.append(
            session,
            [
                ctx.event(
                    "policy.test",
                    "remove",
                    resource={"policy_test": case_id},
                    reason=reason[:500],
                    details={
                        "subject": case.subject,
                        "object": case.object,
                        "action": case.action,
                        "expected": case.expected,
                    },
                )
            ],
        )
        return case

    def _compile_current(self, session: Session, vocab: Vocabulary) -> CompiledPolicy:
        row = session.scalar(select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1))
        if row is None:
            raise PolicyUnavailable("no policy version exists: run `warden init`")
        return compile_candidate(version=row.version, rules=load_rules(row.rules), vocab=vocab)

    def run(self, session: Session, *, compiled: CompiledPolicy) -> list[CaseResult]:
        """Every stored case under ``compiled`` (``warden policy test run``)."""
        return self.evaluate(self.cases(session), compiled)

    def evaluate(
        self, cases: Sequence[PolicyTestCase], compiled: CompiledPolicy
    ) -> list[CaseResult]:
        """Each case's decision under ``compiled``."""
        results = []
        for case in cases:
            decision = compiled.enforce(case.subject, case.object, case.action)
            results.append(
                CaseResult(case, "allow" if decision.allowed else "deny", decision.reason)
            )
        return results

    def require_passing(
        self, session: Session, *, version: int, rules: Sequence[Rule], vocab: Vocabulary
    ) -> int:
        """Refuse a candidate rule set that breaks any stored case.

        Returns:
            How many cases were run (0 when there are none: nothing is compiled then).

        Raises:
            PolicyTestsFailed: listing every failing case.
        """
        cases = self.cases(session)
        if not cases:
            return 0
        compiled = compile_candidate(version=version, rules=rules, vocab=vocab)
        failing = [r.as_dict() for r in self.evaluate(cases, compiled) if not r.passed]
        if failing:
            raise PolicyTestsFailed(failing, total=len(cases))
        return len(cases)


policy_tests = PolicyTestService()
