"""API schemas of the identity domain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from governance.db.base import UtcDatetime


class PrincipalCreate(BaseModel):
    """A new principal: a person (user) or a service."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["user", "service"] = "user"


class PrincipalOut(BaseModel):
    """A principal (a person or a service)."""

    name: str
    kind: str
    disabled: bool
    created_at: datetime
    created_by: str | None


class KeyIssue(BaseModel):
    """Issue an API key to a service principal, optionally expiring."""

    model_config = ConfigDict(extra="forbid")
    principal: str = Field(min_length=1, max_length=64)
    expires_at: UtcDatetime | None = None


class KeyIssued(BaseModel):
    """A new API key; its token is shown once."""

    key_id: str
    principal: str
    expires_at: datetime | None
    token: str = Field(description="The API key. Shown once: Warden stores only its hash.")


class KeyOut(BaseModel):
    """An API key as listed: never its token."""

    key_id: str
    principal: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class RoleChange(BaseModel):
    """Grant or revoke a role, and why."""

    model_config = ConfigDict(extra="forbid")
    principal: str = Field(min_length=1, max_length=64)
    role: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)


class EnrolmentCreate(BaseModel):
    """How long the one-time enrolment code stays valid."""

    model_config = ConfigDict(extra="forbid")
    expires_in_minutes: int = Field(
        default=24 * 60,
        ge=1,
        le=7 * 24 * 60,
        strict=True,
        description="How long the code can be redeemed (default 24 h, at most 7 days).",
    )


class EnrolmentIssued(BaseModel):
    """A one-time enrolment code for a person; shown once."""

    principal: str
    expires_at: datetime
    code: str = Field(
        description="The one-time enrolment code. Give it to the person only: whoever redeems "
        "it receives the person's key. Shown once: Warden stores only its hash."
    )


_PASSWORD = Field(
    min_length=1,
    max_length=1024,
    description="At least 12 characters, not containing the name; stored only as its argon2id "
    "hash.",
)


class EnrolmentRedeem(BaseModel):
    """The one-time enrolment code to exchange for an API key, and optionally a password."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=128)
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="A password to sign in with (POST /v1/session): at least 12 characters, "
        "not containing the name.",
    )


class TotpOut(BaseModel):
    """The TOTP second factor to add to an authenticator app. Shown once."""

    uri: str = Field(description="The otpauth:// URI (it holds the secret).")
    qr_svg: str = Field(description="The same URI as a QR code: an SVG data URI.")


class Enrolled(KeyIssued):
    """A redeemed enrolment: the person's key, and their second factor if a password was set."""

    totp: TotpOut | None = None


class PasswordSet(BaseModel):
    """A new password for the caller (a person)."""

    model_config = ConfigDict(extra="forbid")
    password: str = _PASSWORD


class PasswordSetOut(BaseModel):
    """The password is set; every session of the person has ended."""

    principal: str
    totp: TotpOut | None = Field(
        default=None, description="A new second factor, for the roles that need one."
    )


class SignInBody(BaseModel):
    """A person's name, password and, for officers, auditors and admins, a TOTP code."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, min_length=1, max_length=16)


class SessionOut(BaseModel):
    """One of the caller's sessions (never its id or token)."""

    id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    source_ip: str | None
    current: bool = False


class CliSignInBody(BaseModel):
    """The code a person's browser showed them, and the verifier only their CLI holds."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=128)
    verifier: str = Field(min_length=43, max_length=128)


class SignedIn(BaseModel):
    """A new session: the cookie carries its id; this answer its CSRF token, shown once."""

    session: SessionOut
    csrf_token: str = Field(
        description="Send it as X-CSRF-Token with every POST, PUT, PATCH and DELETE made with "
        "the session cookie."
    )
    idle_minutes: float


class CliSignedIn(SignedIn):
    """A session the command line opened with a browser's code: as ``SignedIn``, and whose."""

    principal: str


class RoleChangeOut(BaseModel):
    """A role change: applied at once, or pending a second officer's approval."""

    principal: str
    role: str
    granted: bool
    status: Literal["applied", "pending"] = Field(
        description="applied: a new policy version; pending: a compliance officer other than "
        "the caller must approve the proposal (POST /v1/policy/proposals/{id}/approve)."
    )
    policy_version: int | None = None
    proposal: int | None = None


class SsoLinkSet(BaseModel):
    """Who a person is at the identity provider: its subject, or a verified email."""

    model_config = ConfigDict(extra="forbid")
    subject: str | None = Field(default=None, min_length=1, max_length=255)
    email: str | None = Field(
        default=None, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"
    )

    @model_validator(mode="after")
    def _one_of(self) -> SsoLinkSet:
        if (self.subject is None) == (self.email is None):
            raise ValueError("give the provider's subject or the person's email, not both")
        return self


class SsoLinkOut(BaseModel):
    """Who a person is at the identity provider, as an admin linked them."""

    principal: str
    issuer: str
    subject: str | None
    email: str | None
