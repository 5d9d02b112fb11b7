"""Routes for principals, API keys and role grants (role grants are policy changes)."""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import Gate, GateDep, KeysDep, ReloadDep, SettingsDep
from governance.api.deps import (
    SESSION_COOKIE,
    Authorize,
    AuthorizeOwn,
    Caller,
    failed_secret,
    refuse_failing_address,
)
from governance.config import Settings
from governance.console.guard import CSRF_COOKIE, safe_next
from governance.db.base import DbInt
from governance.identity import cli_grants, oidc, sign_in
from governance.identity.duties import change_role
from governance.identity.enrolment import enrolments
from governance.identity.errors import (
    CliGrantRefused,
    InvalidEnrolmentCode,
    SessionNotFound,
    SignInFailed,
    SsoDisabled,
    SsoNotLinked,
    SsoRefused,
)
from governance.identity.models import SignInSession
from governance.identity.schemas import (
    CliSignedIn,
    CliSignInBody,
    Enrolled,
    EnrolmentCreate,
    EnrolmentIssued,
    EnrolmentRedeem,
    KeyIssue,
    KeyIssued,
    KeyOut,
    PasswordSet,
    PasswordSetOut,
    PrincipalCreate,
    PrincipalOut,
    RoleChange,
    RoleChangeOut,
    SessionOut,
    SignedIn,
    SignInBody,
    SsoLinkOut,
    SsoLinkSet,
    TotpOut,
)
from governance.identity.second_factor import TotpEnrolment
from governance.identity.service import identity
from governance.kit.context import Context
from governance.kit.middleware import source_of
from governance.kit.problems import responses
from governance.kit.request_facts import RequestFacts, facts_of
from governance.kit.transaction import SessionsDep, TransactionDep
from governance.limits import RateLimited, address_subject
from governance.policy.models import PolicyVersion
from governance.policy.service import default_policy

router = APIRouter(prefix="/v1", tags=["identity"])

CanReadPrincipals = Annotated[Caller, Depends(Authorize("api:principals", "read"))]
CanWritePrincipals = Annotated[Caller, Depends(Authorize("api:principals", "write"))]
CanReadKeys = Annotated[Caller, Depends(Authorize("api:keys", "read"))]
CanIssueKeys = Annotated[Caller, Depends(Authorize("api:keys", "issue"))]
CanRevokeKeys = Annotated[Caller, Depends(Authorize("api:keys", "revoke"))]
CanGrantRoles = Annotated[Caller, Depends(Authorize("api:roles", "grant"))]
# Any principal, on its own account only (its password and sessions).
CanReadOwn = Annotated[Caller, Depends(AuthorizeOwn("read"))]
CanManageOwn = Annotated[Caller, Depends(AuthorizeOwn("write"))]


# The body is optional: without one, the enrolment takes the default lifetime.
_DEFAULT_ENROLMENT = EnrolmentCreate()


def _principal_out(p: object) -> PrincipalOut:
    return PrincipalOut.model_validate(p, from_attributes=True)


@router.get("/principals", responses=responses())
def list_principals(caller: CanReadPrincipals, session: TransactionDep) -> list[PrincipalOut]:
    """List principals."""
    return [_principal_out(p) for p in identity.list_principals(session)]


@router.post("/principals", status_code=201, responses=responses(409, 422))
def create_principal(
    body: PrincipalCreate, caller: CanWritePrincipals, session: TransactionDep
) -> PrincipalOut:
    """Create a principal (a user or a service)."""
    return _principal_out(
        identity.create_principal(session, caller.ctx, name=body.name, kind=body.kind)
    )


@router.post("/principals/{name}/disable", responses=responses(404))
def disable_principal(
    name: str, sessions: SessionsDep, gate: GateDep, caller: CanWritePrincipals
) -> PrincipalOut:
    """Disable a principal: its keys stop working at once."""
    with sessions.begin() as session:
        out = _principal_out(identity.set_disabled(session, caller.ctx, name=name, disabled=True))
    gate.auth_cache.clear()
    return out


@router.post("/principals/{name}/enrolment", status_code=201, responses=responses(404, 409, 422))
def create_enrolment(
    name: str,
    sessions: SessionsDep,
    caller: CanWritePrincipals,
    body: Annotated[EnrolmentCreate, Body()] = _DEFAULT_ENROLMENT,
) -> EnrolmentIssued:
    """A one-time code the person redeems for their own key (a person enrols once)."""
    ttl = timedelta(minutes=body.expires_in_minutes)
    with sessions.begin() as session:
        row, code = enrolments.create(session, caller.ctx, principal=name, ttl=ttl)
        return EnrolmentIssued(principal=name, expires_at=row.expires_at, code=code)


def _totp_out(enrolled: TotpEnrolment | None) -> TotpOut | None:
    return None if enrolled is None else TotpOut(uri=enrolled.uri, qr_svg=enrolled.qr_svg)


def _redeem(
    sessions: sessionmaker[Session], ctx: Context, body: EnrolmentRedeem, gate: Gate, keys: KeysDep
) -> Enrolled:
    with sessions.begin() as session:
        key, person, token = enrolments.redeem(session, ctx, code=body.code)
        totp = None
        if body.password is not None:
            # In the same transaction: a refused password leaves the code unredeemed.
            roles = gate.policy.current.roles_cached(person.name)
            totp = sign_in.set_password(
                session,
                ctx,
                person,
                body.password,
                keys=keys,
                second_factor_needed=sign_in.needs_second_factor(roles),
                now=gate.clock(),
            )
        return Enrolled(
            key_id=key.key_id,
            principal=person.name,
            expires_at=key.expires_at,
            token=token,
            totp=_totp_out(totp),
        )


@router.post("/enrol", status_code=201, responses=responses(422, 429))
async def redeem_enrolment(
    body: EnrolmentRedeem, request: Request, sessions: SessionsDep, gate: GateDep, keys: KeysDep
) -> Enrolled:
    """Redeem an enrolment code for your own API key (no key needed; the code is the proof).

    With a password, the person can also sign in (POST /v1/session); officers, auditors and
    admins then get their TOTP second factor in this answer, shown once.
    """
    # A wrong code counts against the address like a wrong key: nobody guesses codes at will.
    refuse_failing_address(request, gate)
    ctx = Context(source=source_of(request.scope), request_id=facts_of(request.scope).request_id)
    try:
        return await run_in_threadpool(_redeem, sessions, ctx, body, gate, keys)
    except InvalidEnrolmentCode as exc:
        raise await failed_secret(request, gate, "invalid enrolment code", exc) from None


def _set_password(
    sessions: sessionmaker[Session], gate: Gate, keys: KeysDep, caller: Caller, password: str
) -> PasswordSetOut:
    with sessions.begin() as session:
        person = identity.get(session, caller.name)
        totp = sign_in.set_password(
            session,
            caller.ctx,
            person,
            password,
            keys=keys,
            second_factor_needed=sign_in.needs_second_factor(caller.roles),
            now=gate.clock(),
        )
        return PasswordSetOut(principal=person.name, totp=_totp_out(totp))


@router.put("/me/password", responses=responses(403, 422))
async def set_own_password(
    body: PasswordSet, sessions: SessionsDep, gate: GateDep, keys: KeysDep, caller: CanManageOwn
) -> PasswordSetOut:
    """Set your own password (a person only); enrols a new second factor where your roles need
    one, and ends every session of yours."""
    return await run_in_threadpool(_set_password, sessions, gate, keys, caller, body.password)


def _session_out(row: SignInSession, current: str) -> SessionOut:
    out = SessionOut.model_validate(row, from_attributes=True)
    out.current = f"session:{row.id}" == current
    return out


def _sign_in(
    sessions: sessionmaker[Session], gate: Gate, keys: KeysDep, ctx: Context, body: SignInBody
) -> sign_in.Opened:
    with sessions.begin() as session:
        return sign_in.sign_in(
            session,
            ctx,
            name=body.name,
            password=body.password,
            code=body.totp,
            roles=tuple(gate.policy.current.roles_cached(body.name)),
            keys=keys,
            now=gate.clock(),
            lifetimes=gate.session_lifetimes,
        )


def _name_held(facts: RequestFacts, wait: int) -> RateLimited:
    facts.decision = "deny"
    facts.reason = "too many failed sign-ins for this name"
    return RateLimited("too many failed sign-ins for this name", retry_after=wait)


def _bound_to_loopback(request: Request) -> bool:
    """Whether the socket that took this request listens on loopback only (local use, where
    there is no TLS and a Secure cookie would never be sent back)."""
    server = request.scope.get("server")
    if not server or server[0] is None:
        return False
    try:
        return ipaddress.ip_address(server[0]).is_loopback
    except ValueError:
        return False


@router.post("/session", status_code=201, responses=responses(401, 403, 422, 429))
async def open_session(
    body: SignInBody,
    request: Request,
    response: Response,
    sessions: SessionsDep,
    gate: GateDep,
    keys: KeysDep,
) -> SignedIn:
    """Sign in with name, password and (officers, auditors, admins) a TOTP code.

    Sets the ``warden_session`` cookie (HttpOnly, SameSite=Strict, Secure unless the server is
    bound to loopback). Failures count against the address (``failed_auth``) and the name
    (10 in 5 minutes: governance/limits/service.py).
    """
    opened = await sign_in_person(request, body, sessions, gate, keys)
    set_session_cookie(response, request, SESSION_COOKIE, opened.session_id, gate)
    return SignedIn(
        session=_session_out(opened.row, f"session:{opened.row.id}"),
        csrf_token=opened.csrf_token,
        idle_minutes=gate.session_lifetimes.idle.total_seconds() / 60,
    )


async def sign_in_person(
    request: Request,
    body: SignInBody,
    sessions: sessionmaker[Session],
    gate: Gate,
    keys: KeysDep,
) -> sign_in.Opened:
    """Open a session for a person, with the limits every way of signing in shares.

    Raises:
        RateLimited: the address or the name is past its limit of failures.
        SignInFailed: wrong name, password or code (counted against both).
    """
    refuse_failing_address(request, gate)
    facts = facts_of(request.scope)
    facts.resource = {"principal": body.name}
    window = gate.limits.sign_in
    if (wait := window.over(body.name)) is not None:
        raise _name_held(facts, wait)
    ctx = Context(source=source_of(request.scope), request_id=facts.request_id)
    try:
        return await run_in_threadpool(_sign_in, sessions, gate, keys, ctx, body)
    except SignInFailed as exc:
        refusal = await failed_secret(request, gate, "sign-in failed", exc)
        if (wait := await run_in_threadpool(window.take_shared, body.name)) is not None:
            raise _name_held(facts, wait) from None
        raise refusal from None


@dataclass(frozen=True)
class _CliOpened:
    name: str
    row: SignInSession
    session_id: str
    csrf_token: str


def _cli_sign_in(
    sessions: sessionmaker[Session], gate: Gate, ctx: Context, body: CliSignInBody
) -> _CliOpened | None:
    # One transaction: the code is used up whether or not it opens the session.
    now = gate.clock()
    with sessions.begin() as session:
        person = cli_grants.redeem(session, code=body.code, verifier=body.verifier, now=now)
        if person is None:
            return None
        opened = sign_in.open_session(
            session,
            ctx,
            person,
            method="browser",
            details={"cli": True},
            now=now,
            lifetimes=gate.session_lifetimes,
        )
        return _CliOpened(person.name, opened.row, opened.session_id, opened.csrf_token)


@router.post("/session/cli", status_code=201, responses=responses(401, 422, 429))
async def open_cli_session(
    body: CliSignInBody,
    request: Request,
    response: Response,
    sessions: SessionsDep,
    gate: GateDep,
) -> CliSignedIn:
    """Sign the command line in with the code the console showed (``warden login --browser``).

    ``verifier`` is the secret whose base64url SHA-256 was the console page's ``challenge``:
    only the CLI that began the flow holds it. Answers as ``POST /v1/session`` does. A code is
    used up by its first attempt; a refusal counts against the address like a wrong password.
    """
    refuse_failing_address(request, gate)
    facts = facts_of(request.scope)
    ctx = Context(source=source_of(request.scope), request_id=facts.request_id)
    opened = await run_in_threadpool(_cli_sign_in, sessions, gate, ctx, body)
    if opened is None:
        refused = CliGrantRefused()
        raise await failed_secret(request, gate, "command-line sign-in refused", refused)
    facts.resource = {"principal": opened.name}
    set_session_cookie(response, request, SESSION_COOKIE, opened.session_id, gate)
    return CliSignedIn(
        session=_session_out(opened.row, f"session:{opened.row.id}"),
        csrf_token=opened.csrf_token,
        idle_minutes=gate.session_lifetimes.idle.total_seconds() / 60,
        principal=opened.name,
    )


def set_session_cookie(
    response: Response, request: Request, name: str, value: str, gate: Gate
) -> None:
    """Set a cookie that lives as long as a session may: HttpOnly, SameSite=Strict, and Secure
    unless the server listens on loopback only."""
    response.set_cookie(
        name,
        value,
        max_age=int(gate.session_lifetimes.absolute.total_seconds()),
        path="/",
        secure=not _bound_to_loopback(request),
        httponly=True,
        samesite="strict",
    )


def _end(
    sessions: sessionmaker[Session], gate: Gate, caller: Caller, row_id: int, action: str
) -> None:
    with sessions.begin() as session:
        sign_in.end(
            session, caller.ctx, caller.principal_id, row_id, now=gate.clock(), action=action
        )


@router.delete("/session", status_code=204, responses=responses(403, 404))
async def close_session(
    response: Response, sessions: SessionsDep, gate: GateDep, caller: CanManageOwn
) -> None:
    """Sign out: end the session whose cookie made this request."""
    if not caller.key_id.startswith("session:"):
        raise SessionNotFound("this request was not made with a session cookie")
    row_id = int(caller.key_id.removeprefix("session:"))
    await run_in_threadpool(_end, sessions, gate, caller, row_id, "sign-out")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


@router.get("/sessions", responses=responses())
def list_own_sessions(
    caller: CanReadOwn, gate: GateDep, session: TransactionDep
) -> list[SessionOut]:
    """Your own open sessions (marked ``current`` for the one making this request)."""
    rows = sign_in.live(
        session, caller.principal_id, now=gate.clock(), lifetimes=gate.session_lifetimes
    )
    return [_session_out(r, caller.key_id) for r in rows]


@router.delete("/sessions/{session_id}", status_code=204, responses=responses(404))
async def revoke_own_session(
    session_id: DbInt, sessions: SessionsDep, gate: GateDep, caller: CanManageOwn
) -> None:
    """Revoke one of your own sessions (another's answers 404, as an unknown one does)."""
    await run_in_threadpool(_end, sessions, gate, caller, session_id, "revoke")


@router.get("/keys", responses=responses())
def list_keys(caller: CanReadKeys, session: TransactionDep) -> list[KeyOut]:
    """List API keys (ids and dates only; tokens are never stored)."""
    return [
        KeyOut(
            key_id=k.key_id,
            principal=n,
            created_at=k.created_at,
            expires_at=k.expires_at,
            revoked_at=k.revoked_at,
        )
        for k, n in identity.list_keys(session)
    ]


@router.post("/keys", status_code=201, responses=responses(403, 404, 422))
def issue_key(body: KeyIssue, caller: CanIssueKeys, session: TransactionDep) -> KeyIssued:
    """Issue an API key for a service; the token is in this response and nowhere else.

    People obtain their own key by enrolment; a key for a person is refused (403).
    """
    key, token = identity.issue_key(
        session, caller.ctx, principal=body.principal, expires_at=body.expires_at
    )
    return KeyIssued(
        key_id=key.key_id, principal=body.principal, expires_at=key.expires_at, token=token
    )


@router.post("/keys/{key_id}/revoke", responses=responses(404, 409))
def revoke_key(key_id: str, sessions: SessionsDep, gate: GateDep, caller: CanRevokeKeys) -> KeyOut:
    """Revoke an API key: refused from the next request on."""
    with sessions.begin() as session:
        key = identity.revoke_key(session, caller.ctx, key_id=key_id)
        out = KeyOut(
            key_id=key.key_id,
            principal="",
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )
    gate.auth_cache.clear()
    return out


@dataclass(frozen=True)
class _RoleChanges:
    sessions: sessionmaker[Session]
    settings: Settings
    reload: Callable[[], None]


def _role_change(
    deps: _RoleChanges, caller: Caller, body: RoleChange, grant: bool, response: Response
) -> RoleChangeOut:
    vocab, _ = default_policy(deps.settings.policies_dir)
    with deps.sessions.begin() as session:
        # Role grants are the admins' duty and apply at once, except those that widen power
        # over identity, keys, roles, policy or the audit log: a compliance officer approves
        # those (a proposal), whatever WARDEN_REQUIRE_SECOND_APPROVAL says.
        row = change_role(
            session,
            caller.ctx,
            principal=body.principal,
            role=body.role,
            reason=body.reason,
            grant=grant,
            vocab=vocab,
        )
        out = RoleChangeOut(
            principal=body.principal, role=body.role, granted=grant, status="applied"
        )
        if isinstance(row, PolicyVersion):
            out.policy_version = row.version
        else:
            out.status, out.proposal = "pending", row.id
            response.status_code = 202
    if out.status == "applied":
        deps.reload()
    return out


@router.post("/roles/grant", responses=responses(404, 409, 422))
async def grant_role(
    body: RoleChange,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
    reload: ReloadDep,
    caller: CanGrantRoles,
) -> RoleChangeOut:
    """Grant a role: applied at once (200), or pending a compliance officer's approval (202)."""
    deps = _RoleChanges(sessions, settings, reload)
    return await run_in_threadpool(_role_change, deps, caller, body, True, response)


@router.post("/roles/revoke", responses=responses(404, 409, 422))
async def revoke_role(
    body: RoleChange,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
    reload: ReloadDep,
    caller: CanGrantRoles,
) -> RoleChangeOut:
    """Revoke a role (a new policy version)."""
    deps = _RoleChanges(sessions, settings, reload)
    return await run_in_threadpool(_role_change, deps, caller, body, False, response)


# Single sign-on (OpenID Connect, governance/identity/oidc.py; docs/sso.md). Both routes take
# no key: the provider's signed id_token is the proof. Refusals answer problem+json and count
# against the address like a wrong password (``failed_auth``).
OIDC_FLOW_COOKIE = "warden_oidc"
OIDC_PATH = "/v1/session/oidc"
# Where the browser goes once signed in: the console page the person asked for, kept in a
# cookie beside the flow's (checked again by safe_next when read back).
OIDC_NEXT_COOKIE = "warden_oidc_next"


def _relying_party(settings: Settings) -> oidc.RelyingParty:
    if not settings.oidc_issuer:
        raise SsoDisabled()
    return oidc.relying_party(
        settings.oidc_issuer,
        settings.oidc_client_id,
        settings.oidc_client_secret.get_secret_value(),
    )


def _redirect_uri(request: Request, settings: Settings) -> str:
    return settings.oidc_redirect_url or str(request.url_for("oidc_callback"))


def _oidc_begin(
    sessions: sessionmaker[Session], party: oidc.RelyingParty, redirect_uri: str, gate: Gate
) -> oidc.Begun:
    with sessions.begin() as session:
        return oidc.begin(session, party, redirect_uri=redirect_uri, now=gate.clock())


@router.get(
    "/session/oidc/start",
    status_code=302,
    response_class=RedirectResponse,
    responses=responses(404, 429, 503),
)
async def oidc_start(
    request: Request,
    sessions: SessionsDep,
    gate: GateDep,
    settings: SettingsDep,
    next: Annotated[str | None, Query(max_length=512)] = None,
) -> RedirectResponse:
    """Sign in at the identity provider: redirects there (authorization code with PKCE).

    Sets a short-lived ``warden_oidc`` cookie (HttpOnly, SameSite=Lax: the provider's redirect
    back is cross-site) that binds the sign-in to this browser, and one that keeps ``next``,
    the console page to return to. Each start stores a flow until it expires, so an address
    may begin only so many (``limits.SSO_STARTS``), then gets 429.
    """
    refuse_failing_address(request, gate)
    party = _relying_party(settings)
    address = address_subject(source_of(request.scope).ip)
    if (wait := await run_in_threadpool(gate.limits.sso_starts.take_shared, address)) is not None:
        facts = facts_of(request.scope)
        facts.decision = "deny"
        facts.reason = "too many sign-ins begun from this address"
        raise RateLimited(facts.reason, retry_after=wait)
    redirect_uri = _redirect_uri(request, settings)
    begun = await run_in_threadpool(_oidc_begin, sessions, party, redirect_uri, gate)
    response = RedirectResponse(begun.url, status_code=302)
    max_age = int(oidc.FLOW_TTL.total_seconds())
    for name, value in ((OIDC_FLOW_COOKIE, begun.verifier), (OIDC_NEXT_COOKIE, safe_next(next))):
        response.set_cookie(name, value, max_age=max_age, **_flow_cookie(request))
    return response


def _flow_cookie(request: Request) -> dict[str, Any]:
    """Where the flow's cookies live, set and deleted alike."""
    return {
        "path": OIDC_PATH,
        "secure": not _bound_to_loopback(request),
        "httponly": True,
        "samesite": "lax",
    }


@dataclass(frozen=True)
class _Callback:
    sessions: sessionmaker[Session]
    gate: Gate
    party: oidc.RelyingParty
    ctx: Context
    redirect_uri: str


def _oidc_consume(cb: _Callback, state: str, verifier: str | None) -> str:
    # Its own transaction: the flow stays used whatever happens next.
    with cb.sessions.begin() as session:
        return oidc.consume(session, state=state, verifier=verifier, now=cb.gate.clock())


def _oidc_finish(cb: _Callback, code: str, verifier: str, nonce: str) -> sign_in.Opened:
    token = cb.party.exchange(code=code, redirect_uri=cb.redirect_uri, verifier=verifier)
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise SsoRefused("the identity provider answered without an id_token")
    access = token.get("access_token")
    claims = cb.party.verify(
        id_token, nonce=nonce, access_token=access if isinstance(access, str) else None
    )
    now = cb.gate.clock()
    with cb.sessions.begin() as session:
        person = oidc.person_for(session, cb.ctx, issuer=cb.party.issuer, claims=claims, now=now)
        return sign_in.open_session(
            session,
            cb.ctx,
            person,
            method="oidc",
            details={"issuer": cb.party.issuer, "subject": str(claims["sub"])},
            now=now,
            lifetimes=cb.gate.session_lifetimes,
        )


def _provider_error(value: str) -> str:
    # The provider's error code (RFC 6749 4.1.2.1) is ASCII letters and underscores.
    return "".join(c for c in value[:40] if c.isascii() and (c.isalnum() or c == "_"))


def _landing_page(target: str) -> str:
    url = html.escape(safe_next(target))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={url}"><title>Signed in</title></head>'
        f'<body><p>Signed in. <a href="{url}">Continue to the console</a>.</p></body></html>'
    )


@router.get(
    "/session/oidc/callback",
    response_class=HTMLResponse,
    responses=responses(401, 403, 404, 422, 429, 503),
)
async def oidc_callback(
    request: Request,
    sessions: SessionsDep,
    gate: GateDep,
    settings: SettingsDep,
    state: Annotated[str, Query(min_length=1, max_length=512)],
    code: Annotated[str | None, Query(min_length=1, max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> HTMLResponse:
    """Where the identity provider sends the browser back: checks the sign-in, opens a session.

    Sets the ``warden_session`` cookie exactly as password sign-in does and answers a page that
    moves on to the console (a redirect would carry on the provider's cross-site navigation,
    on which the browser withholds the SameSite=Strict cookie just set).
    """
    refuse_failing_address(request, gate)
    party = _relying_party(settings)
    facts = facts_of(request.scope)
    facts.resource = {"sso": party.issuer}
    ctx = Context(source=source_of(request.scope), request_id=facts.request_id)
    cb = _Callback(sessions, gate, party, ctx, _redirect_uri(request, settings))
    verifier = request.cookies.get(OIDC_FLOW_COOKIE)
    try:
        if error is not None:
            raise SsoRefused(f"the identity provider answered {_provider_error(error)!r}")
        if code is None:
            raise SsoRefused("the identity provider answered without a code")
        nonce = await run_in_threadpool(_oidc_consume, cb, state, verifier)
        assert verifier is not None  # consume refuses a flow without its cookie
        opened = await run_in_threadpool(_oidc_finish, cb, code, verifier, nonce)
    except SsoRefused as exc:
        reason = f"single sign-on refused: {exc.message}"
        raise await failed_secret(request, gate, reason, exc) from None
    except SsoNotLinked as exc:
        # A 403 to a caller without a key: the middleware counts it against the address.
        facts.reason = f"single sign-on refused: {exc.message}"
        raise
    facts.resource = {"principal": opened.row.principal_id, "sso": party.issuer}
    response = HTMLResponse(_landing_page(request.cookies.get(OIDC_NEXT_COOKIE, "")))
    set_session_cookie(response, request, SESSION_COOKIE, opened.session_id, gate)
    set_session_cookie(response, request, CSRF_COOKIE, opened.csrf_token, gate)
    for name in (OIDC_FLOW_COOKIE, OIDC_NEXT_COOKIE):
        response.delete_cookie(name, **_flow_cookie(request))
    return response


@router.put("/principals/{name}/sso", responses=responses(403, 404, 422))
def link_sso(
    name: str,
    body: SsoLinkSet,
    caller: CanWritePrincipals,
    session: TransactionDep,
    gate: GateDep,
    settings: SettingsDep,
) -> SsoLinkOut:
    """Link a person to their identity at the provider: its subject, or a verified email that
    binds the subject at their first sign-in. They must also have redeemed their enrolment."""
    if not settings.oidc_issuer:
        raise SsoDisabled()
    row = oidc.set_link(
        session,
        caller.ctx,
        principal=name,
        issuer=settings.oidc_issuer,
        subject=body.subject,
        email=body.email,
        now=gate.clock(),
    )
    return SsoLinkOut(principal=name, issuer=row.issuer, subject=row.subject, email=row.email)
