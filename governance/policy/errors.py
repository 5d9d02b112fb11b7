"""Errors of the policy domain."""

from __future__ import annotations

from governance.errors import Conflict, ServiceUnavailable, Unprocessable


class InvalidPolicy(Unprocessable):
    """A rule or change is malformed; nothing was applied."""

    type_slug = "invalid-policy"
    title = "Invalid policy change"


class PolicyConflict(Conflict):
    """A change was refused (failing policy tests, self-grant, stale base version, no approval)."""

    type_slug = "policy-refused"
    title = "Policy change refused"


class PolicyUnavailable(ServiceUnavailable):
    """No policy could be loaded: every decision is a denial until one is."""

    type_slug = "policy-unavailable"
    title = "Policy unavailable"
