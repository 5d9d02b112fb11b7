"""The one error root. Every error a client may see is a WardenError with an HTTP status.

Domains subclass it (``PolicyError(WardenError)``), and a single handler in
``governance.kit.problems`` renders each one as RFC 9457 problem+json. Messages must never
contain secrets or plaintext payloads: they are sent to clients and written to logs.
"""

from __future__ import annotations

from typing import Any, ClassVar


class WardenError(Exception):
    """Base of every error Warden reports to a caller.

    Args:
        message: a human-readable explanation, safe to show to the caller.
        status_code: overrides the class default.
        extra: extra problem+json members (field names, failing cases), JSON-serialisable.
    """

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    type_slug: ClassVar[str] = "internal"

    def __init__(
        self, message: str, *, status_code: int | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        if status_code is not None:
            self.status_code = status_code  # type: ignore[misc]


class RefusedByRule:
    """Marks a refusal by a written rule (the fairness gate, a privacy budget, policy tests):
    ``warden`` exits 3 on one, so that scripts tell it from a failure."""


class VerificationFailed:
    """Marks failed verification of evidence (the audit log, a bundle, a report): exit 4."""


class BadRequest(WardenError):
    status_code = 400
    title = "Bad request"
    type_slug = "bad-request"


class Unauthenticated(WardenError):
    status_code = 401
    title = "Unauthenticated"
    type_slug = "unauthenticated"


class Forbidden(WardenError):
    status_code = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(WardenError):
    status_code = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(WardenError):
    status_code = 409
    title = "Conflict"
    type_slug = "conflict"


class PayloadTooLarge(WardenError):
    status_code = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class Unprocessable(WardenError):
    status_code = 422
    title = "Unprocessable content"
    type_slug = "unprocessable"


class ServiceUnavailable(WardenError):
    """A dependency (database, audit write, key provider) failed: fail closed."""

    status_code = 503
    title = "Service unavailable"
    type_slug = "unavailable"


class ConfigurationError(WardenError):
    """An unsafe or invalid configuration; raised at start, never at request time."""

    status_code = 500
    title = "Configuration error"
    type_slug = "configuration"
