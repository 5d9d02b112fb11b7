"""Errors of the identity domain."""

from __future__ import annotations

from governance.errors import Conflict, NotFound, Unauthenticated, Unprocessable


class AuthenticationFailed(Unauthenticated):
    """Missing, malformed, unknown, revoked or expired key: deliberately one message for all."""

    type_slug = "unauthenticated"

    def __init__(self) -> None:
        super().__init__("a valid API key is required (Authorization: Bearer <key>)")


class PrincipalNotFound(NotFound):
    type_slug = "principal-not-found"


class PrincipalExists(Conflict):
    type_slug = "principal-exists"


class InvalidIdentity(Unprocessable):
    type_slug = "invalid-identity"
