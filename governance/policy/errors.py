"""Errors of the policy domain.

Every refusal leaves the policy exactly as it was: the request's transaction rolls back, so no
version, proposal decision or test case is half written.
"""

from __future__ import annotations

from typing import Any

from governance.errors import (
    ConfigurationError,
    Conflict,
    NotFound,
    RefusedByRule,
    ServiceUnavailable,
    Unprocessable,
)


class InvalidPolicy(Unprocessable):
    """A rule or change is malformed; nothing was applied."""

    type_slug = "invalid-policy"
    title = "Invalid policy change"


class PolicyFileError(ConfigurationError):
    """``policies/default_policy.yaml`` (the roles, actions and seed rules) is unreadable or
    invalid. The server refuses to start with it; ``warden init`` refuses to seed from it."""

    type_slug = "policy-file"
    title = "Invalid default policy file"


class PolicyConflict(Conflict):
    """A change was refused (failing policy tests, self-grant, stale base version, no approval)."""

    type_slug = "policy-refused"
    title = "Policy change refused"


class PermissionsWidened(PolicyConflict):
    """A change that would widen the effective permissions of whoever makes or approves it;
    the response names the subject and the permissions it would gain."""

    type_slug = "widens-own-permissions"
    title = "Change widens its author's or approver's permissions"


class PolicyTestsFailed(PolicyConflict, RefusedByRule):
    """The candidate policy breaks stored policy tests; the response lists every failing case."""

    type_slug = "policy-tests-failed"
    title = "Policy tests failed"

    def __init__(self, failing: list[dict[str, Any]], *, total: int) -> None:
        super().__init__(
            f"{len(failing)} of {total} policy tests fail under the proposed policy; "
            "nothing was applied",
            extra={"failing": failing},
        )


class ApprovalRefused(PolicyConflict):
    """An approval that separation of duties forbids, or of a proposal no longer pending."""

    type_slug = "approval-refused"
    title = "Approval refused"


class PolicyNotFound(NotFound):
    """A policy version, test case or proposal that does not exist."""

    type_slug = "policy-not-found"
    title = "Not found"


class PolicyUnavailable(ServiceUnavailable):
    """No policy could be loaded: every decision is a denial until one is."""

    type_slug = "policy-unavailable"
    title = "Policy unavailable"


class SecondPersonRequired(PolicyConflict):
    """A change that widens power over the governance surface, applied without an approver."""

    type_slug = "second-person-required"
    title = "A second person must approve"
