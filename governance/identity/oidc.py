"""OpenID Connect single sign-on: Warden as the relying party (authorization code with PKCE).

The identity provider authenticates; Warden's roles still decide what the person may do. A
sign-in starts a *flow*: a random ``state``, ``nonce`` and PKCE verifier (S256). The verifier
goes to the browser only, in a short-lived cookie; the database keeps the SHA-256 of the state
and of that cookie, and the nonce (not a secret: it comes back inside the id_token). The
callback consumes the flow once (a replayed callback finds it used), exchanges the code with
the verifier, and accepts the id_token only if its signature verifies against the provider's
JWKS and its ``iss``, ``aud`` (our client id, ``azp`` where several), ``exp``, ``iat`` and
``nonce`` are right. Which person it signs in is decided by an :class:`SsoLink` an admin
recorded; an identity nobody linked is refused, never created.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.audit.anchors import content_hash, latest_about, unanchored
from governance.audit.log import resource_label
from governance.identity.enrolment import enrolments
from governance.identity.errors import SsoFailed, SsoLinkTaken, SsoNotLinked, SsoRefused
from governance.identity.models import OidcFlow, Principal, SsoLink
from governance.identity.service import identity
from governance.kit.context import Context
from governance.kit.events import Actor
from governance.kit.http import client as http_client

logger = logging.getLogger(__name__)

# Long enough to type a password and a second factor at the provider, short enough to go stale.
FLOW_TTL = timedelta(minutes=10)
# Flows are deleted this long after they expire (they are useless then, and kept only briefly
# so that a replay reads "used" rather than "unknown" in the log).
_FLOW_KEEP = timedelta(days=1)
# The provider's and our clocks may disagree by this much on iat and exp.
_LEEWAY_SECONDS = 60
# Signatures Warden accepts on an id_token: asymmetric only (never "none", never HS* with the
# client secret, which anyone holding the secret could forge).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
SCOPE = "openid email"
LINK_EVENTS = ("principal.sso",)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class ProviderMetadata:
    """What discovery (``{issuer}/.well-known/openid-configuration``) said."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True)
class Begun:
    """A flow just started: the URL to send the browser to, and its cookie (the verifier)."""

    url: str
    verifier: str


class RelyingParty:
    """One per process and issuer: discovery and the provider's keys, fetched once.

    Args:
        issuer: the provider's issuer identifier, exactly as its id_tokens name it.
        client_id: Warden's client id at the provider (the id_token's audience).
        client_secret: Warden's client secret ("" for a public client using PKCE only).
        timeout: seconds each call to the provider may take.
    """

    def __init__(
        self, *, issuer: str, client_id: str, client_secret: str, timeout: float = 10.0
    ) -> None:
        # Exactly as configured: id_tokens must name it to the character (OIDC Core 3.1.3.7).
        self.issuer = issuer
        self.client_id = client_id
        self._secret = client_secret
        self._timeout = timeout
        self._lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    def _get(self, url: str) -> dict[str, Any]:
        try:
            with http_client(timeout=self._timeout, follow_redirects=False) as http:
                r = http.get(url)
            r.raise_for_status()
            body = r.json()
        except (httpx.HTTPError, ValueError):
            raise SsoFailed("the identity provider could not be reached") from None
        if not isinstance(body, dict):
            raise SsoFailed("the identity provider answered something other than JSON")
        return body

    def metadata(self) -> ProviderMetadata:
        """The provider's endpoints (discovered once).

        Raises:
            SsoFailed: unreachable, or its document names another issuer (OIDC Discovery 4.3).
        """
        with self._lock:
            if self._metadata is not None:
                return self._metadata
        doc = self._get(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
        fields = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        if not all(isinstance(doc.get(f), str) and doc[f] for f in fields):
            raise SsoFailed("the identity provider's discovery document is incomplete")
        if doc["issuer"] != self.issuer:
            raise SsoFailed("the identity provider's discovery document names another issuer")
        found = ProviderMetadata(*(str(doc[f]) for f in fields))
        with self._lock:
            self._metadata = found
        return found

    def _key_set(self, *, refresh: bool) -> KeySet:
        with self._lock:
            # A key the set lacks may be the provider's new one: refetch, at most once a minute.
            if self._keys is not None and not (refresh and time.monotonic() - self._keys_at > 60):
                return self._keys
        doc = self._get(self.metadata().jwks_uri)
        try:
            keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise SsoFailed("the identity provider's key set cannot be read") from None
        with self._lock:
            self._keys, self._keys_at = keys, time.monotonic()
        return keys

    def begin_url(self, *, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        return str(
            prepare_grant_uri(
                self.metadata().authorization_endpoint,
                client_id=self.client_id,
                response_type="code",
                redirect_uri=redirect_uri,
                scope=SCOPE,
                state=state,
                nonce=nonce,
                code_challenge=create_s256_code_challenge(verifier),
                code_challenge_method="S256",
            )
        )

    def exchange(self, *, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        """The provider's token response for ``code`` (with the PKCE verifier).

        Raises:
            SsoRefused: the provider refused the code (used, expired, wrong verifier).
            SsoFailed: the provider could not be reached.
        """
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=verifier,
            # A public client (no secret) names itself in the body (RFC 6749 3.2.1).
            **({} if self._secret else {"client_id": self.client_id}),
        )
        auth = (
            httpx.BasicAuth(self.client_id, self._secret)
            if self._secret
            else httpx.USE_CLIENT_DEFAULT
        )
        try:
            with http_client(timeout=self._timeout, follow_redirects=False) as http:
                r = http.post(
                    self.metadata().token_endpoint,
                    content=body,
                    auth=auth,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                )
        except httpx.HTTPError:
            raise SsoFailed("the identity provider could not be reached") from None
        if 400 <= r.status_code < 500:
            raise SsoRefused("the identity provider refused the authorization code")
        try:
            r.raise_for_status()
            token = r.json()
        except (httpx.HTTPError, ValueError):
            raise SsoFailed("the identity provider's token endpoint failed") from None
        if not isinstance(token, dict):
            raise SsoFailed("the identity provider's token endpoint answered no object")
        return token

    def verify(self, id_token: str, *, nonce: str, access_token: str | None) -> dict[str, Any]:
        """The id_token's claims, once its signature and claims are checked.

        Raises:
            SsoRefused: a bad signature, an unknown key, or a wrong iss, aud, azp, exp, iat,
                nonce or at_hash.
        """
        try:
            decoded = self._decode(id_token, refresh=False)
        except SsoRefused:
            decoded = self._decode(id_token, refresh=True)
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.client_id},
                "sub": {"essential": True},
                "exp": {"essential": True},
                "iat": {"essential": True},
                "nonce": {"essential": True, "value": nonce},
            },
            params={"nonce": nonce, "client_id": self.client_id, "access_token": access_token},
        )
        try:
            claims.validate(leeway=_LEEWAY_SECONDS)
        except JoseError as exc:
            raise SsoRefused(f"the id_token was refused ({_claim_error(exc)})") from None
        sub = claims.get("sub")
        # OIDC Core 2: at most 255 ASCII characters, as the link's column holds.
        if not isinstance(sub, str) or not 0 < len(sub) <= 255 or not sub.isascii():
            raise SsoRefused("the id_token's subject is missing or malformed")
        return dict(claims)

    def _decode(self, id_token: str, *, refresh: bool) -> jwt.Token:
        try:
            return jwt.decode(id_token, self._key_set(refresh=refresh), algorithms=list(ALGORITHMS))
        except (JoseError, ValueError):
            raise SsoRefused("the id_token's signature does not verify") from None


def _claim_error(exc: JoseError) -> str:
    # joserfc names the claim (``invalid_claim: Invalid claim: "aud"``), never its value.
    return str(getattr(exc, "description", "") or exc.error)[:120]


_parties: dict[tuple[str, str, str], RelyingParty] = {}
_parties_lock = threading.Lock()


def relying_party(issuer: str, client_id: str, client_secret: str) -> RelyingParty:
    """The process's relying party for these settings (its discovery and keys are cached)."""
    key = (issuer, client_id, client_secret)
    with _parties_lock:
        if key not in _parties:
            _parties[key] = RelyingParty(
                issuer=issuer, client_id=client_id, client_secret=client_secret
            )
        return _parties[key]


def begin(session: Session, party: RelyingParty, *, redirect_uri: str, now: datetime) -> Begun:
    """Start a flow: store its state's hash, binding and nonce; never commits."""
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    # Before the first statement: discovery may call the provider, never inside a transaction.
    url = party.begin_url(redirect_uri=redirect_uri, state=state, nonce=nonce, verifier=verifier)
    session.execute(delete(OidcFlow).where(OidcFlow.expires_at < now - _FLOW_KEEP))
    session.add(
        OidcFlow(
            state_hash=digest(state),
            binding_hash=digest(verifier),
            nonce=nonce,
            created_at=now,
            expires_at=now + FLOW_TTL,
        )
    )
    session.flush()
    return Begun(url=url, verifier=verifier)


def consume(session: Session, *, state: str, verifier: str | None, now: datetime) -> str:
    """Use up the flow ``state`` names, begun in this browser; its nonce.

    Raises:
        SsoRefused: unknown, expired or already used, or begun in another browser (no cookie,
            or another's): one answer for all.
    """
    row = session.scalar(
        select(OidcFlow).where(OidcFlow.state_hash == digest(state)).with_for_update()
    )
    if (
        row is None
        or verifier is None
        or not hmac.compare_digest(row.binding_hash, digest(verifier))
    ):
        raise SsoRefused("the sign-in is unknown here or was begun in another browser")
    if row.used_at is not None or now >= row.expires_at:
        raise SsoRefused("the sign-in was already used or has expired: start again")
    row.used_at = now
    session.flush()
    return row.nonce


def _link_hash(row: SsoLink) -> str:
    return content_hash(
        "sso_link",
        {
            "principal_id": row.principal_id,
            "issuer": row.issuer,
            "subject": row.subject,
            "email": row.email,
        },
    )


def _link_resource(principal_id: int, name: str) -> dict[str, Any]:
    return {"principal": name, "principal_id": principal_id, "sso": "oidc"}


def _link_problem(session: Session, row: SsoLink, name: str) -> str | None:
    label = resource_label(_link_resource(row.principal_id, name))
    found = latest_about(
        session,
        event_types=LINK_EVENTS,
        labels=[label] if label else [],
        about=lambda res: res.get("principal_id") == row.principal_id and res.get("sso") == "oidc",
    )
    return unanchored(found, _link_hash(row), f"the sign-on link of principal {row.principal_id}")


def set_link(
    session: Session,
    ctx: Context,
    *,
    principal: str,
    issuer: str,
    subject: str | None,
    email: str | None,
    now: datetime,
) -> SsoLink:
    """Record which identity at the provider signs in as ``principal`` (replacing any before).

    Raises:
        PrincipalNotFound: no such principal.
        SsoNotLinked: a service (services use keys).
        SsoLinkTaken: the subject or email is linked to another person.
    """
    person = identity.get(session, principal)
    if person.kind != "user":
        raise SsoNotLinked(f"{principal!r} is a service: services use API keys, not sign-on")
    email = email.lower() if email else None
    taken = session.scalar(
        select(SsoLink.id).where(
            SsoLink.issuer == issuer,
            SsoLink.principal_id != person.id,
            (SsoLink.subject == subject) if subject else (SsoLink.email == email),
        )
    )
    if taken is not None:
        raise SsoLinkTaken("this identity at the provider is already linked to another person")
    row = session.scalar(select(SsoLink).where(SsoLink.principal_id == person.id))
    if row is None:
        row = SsoLink(principal_id=person.id, issuer=issuer, created_at=now, created_by="")
        session.add(row)
    row.issuer, row.subject = issuer, subject
    row.email = email
    row.created_at, row.created_by, row.bound_at = now, ctx.name[:64], None
    session.flush()
    audit_log.append(
        session,
        [
            ctx.event(
                "principal.sso",
                "link",
                resource=_link_resource(person.id, person.name),
                details={
                    "issuer": issuer,
                    "subject": subject,
                    "email": email,
                    "content_hash": _link_hash(row),
                },
            )
        ],
    )
    return row


def person_for(
    session: Session, ctx: Context, *, issuer: str, claims: dict[str, Any], now: datetime
) -> Principal:
    """The person these verified claims sign in as.

    A link by subject matches that subject. A link by email matches a verified email
    (``email_verified`` true) while no subject is bound, and then binds the subject: later
    sign-ins match the subject only, whatever the provider's email becomes.

    Raises:
        SsoNotLinked: no link (an unknown identity is never created), a link the log does not
            vouch for, a person who never redeemed their enrolment, or a disabled one.
    """
    subject = str(claims["sub"])
    row = session.scalar(
        select(SsoLink).where(SsoLink.issuer == issuer, SsoLink.subject == subject)
    )
    email = claims.get("email")
    if row is None and isinstance(email, str) and claims.get("email_verified") is True:
        row = session.scalar(
            select(SsoLink).where(
                SsoLink.issuer == issuer,
                SsoLink.subject.is_(None),
                SsoLink.email == email.lower(),
            )
        )
    refusal = SsoNotLinked("no Warden person is linked to this identity: ask an admin")
    if row is None:
        raise refusal
    person = session.get(Principal, row.principal_id)
    if person is None or person.disabled or person.kind != "user":
        raise refusal
    if (problem := _link_problem(session, row, person.name)) is not None:
        logger.warning("single sign-on refused: %s", problem)
        raise refusal
    # The person's own act: they redeemed the enrolment code only they received.
    if enrolments.enrolled_by(session, person.id) is None:
        raise SsoNotLinked("the linked person has not enrolled yet: redeem your enrolment first")
    if row.subject is None:
        row.subject, row.bound_at = subject, now
        session.flush()
        as_person = Context(
            actor=Actor(principal_id=person.id, name=person.name, roles=(), auth_method="oidc"),
            source=ctx.source,
            request_id=ctx.request_id,
            policy_version=ctx.policy_version,
        )
        audit_log.append(
            session,
            [
                as_person.event(
                    "principal.sso",
                    "bind",
                    resource=_link_resource(person.id, person.name),
                    details={
                        "issuer": issuer,
                        "subject": subject,
                        "content_hash": _link_hash(row),
                    },
                )
            ],
        )
    return person
