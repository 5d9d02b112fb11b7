"""Errors of the limits domain."""

from __future__ import annotations

from governance.errors import ConfigurationError, WardenError


class LimitsPolicyError(ConfigurationError):
    """``policies/limits.yaml`` is missing or invalid: the server refuses to start with it."""

    type_slug = "limits-file"
    title = "Invalid limits file"


class RateLimited(WardenError):
    """A caller (an address, or a principal) went over its limit: 429 with ``Retry-After``.

    Args:
        message: what was limited, safe to show (never the address or the key).
        retry_after: whole seconds until a request would be taken again (at least 1).
    """

    status_code = 429
    title = "Too many requests"
    type_slug = "rate-limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, extra={"retry_after": retry_after})
        # Sent as the Retry-After header (governance/kit/problems.py).
        self.retry_after = retry_after
