"""Errors of the identity domain."""

from __future__ import annotations

from governance.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
    Unprocessable,
)


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


class PersonalCredential(Forbidden):
    """A key for a person asked for by someone else: people obtain their own by enrolment."""

    type_slug = "personal-credential"


class EnrolmentRefused(Conflict):
    type_slug = "enrolment-refused"


class InvalidEnrolmentCode(Unauthenticated):
    """Malformed, unknown, used or expired: deliberately one message for all."""

    type_slug = "invalid-enrolment-code"

    def __init__(self) -> None:
        super().__init__("the enrolment code is not valid (unknown, already used or expired)")


class LastAdmin(Conflict):
    """The change would leave no admin able to sign in."""

    type_slug = "last-admin"


class WeakPassword(Unprocessable):
    type_slug = "weak-password"


class SignInFailed(Unauthenticated):
    """Unknown name, wrong password or code, no password set: deliberately one message for all."""

    type_slug = "sign-in-failed"

    def __init__(self) -> None:
        super().__init__("sign-in failed: wrong name, password or one-time code")


class SignInRefused(Forbidden):
    """A principal that may not sign in (a service) or must first finish its credentials."""

    type_slug = "sign-in-refused"


class SessionNotFound(NotFound):
    type_slug = "session-not-found"


class CsrfRefused(Forbidden):
    """A cookie-authenticated change without the session's CSRF token."""

    type_slug = "csrf-token-required"

    def __init__(self) -> None:
        super().__init__(
            "a change made with a session cookie must carry the session's X-CSRF-Token header"
        )


class SessionEnded(Unauthenticated):
    """Unknown, signed out, revoked, idle too long or past its lifetime: one message for all."""

    type_slug = "session-ended"

    def __init__(self) -> None:
        super().__init__("the session has ended: sign in again (POST /v1/session)")


class SsoDisabled(NotFound):
    """Single sign-on is not configured (WARDEN_OIDC_ISSUER unset)."""

    type_slug = "sso-disabled"

    def __init__(self) -> None:
        super().__init__("single sign-on is not configured on this server")


class SsoRefused(Unauthenticated):
    """A sign-in at the provider Warden does not accept: bad state, code or id_token."""

    type_slug = "sso-refused"


class SsoNotLinked(Forbidden):
    """The provider vouched for an identity no Warden person is linked to."""

    type_slug = "sso-not-linked"


class SsoFailed(ServiceUnavailable):
    """The identity provider could not be reached or answered nonsense."""

    type_slug = "sso-unavailable"


class SsoLinkTaken(Conflict):
    """The provider's identity is already linked to another person."""

    type_slug = "sso-link-taken"


class CliGrantRefused(Unauthenticated):
    """A command-line code that opens nothing: deliberately one message for every cause."""

    type_slug = "cli-grant-refused"

    def __init__(self) -> None:
        super().__init__(
            "the code is not valid here (unknown, already used, expired, or for another "
            "command line): run warden login --browser again"
        )
