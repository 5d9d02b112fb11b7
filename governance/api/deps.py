"""Guards: authentication and the one Casbin permission check every route declares.

A route states its permission in its signature::

    @router.post("/v1/models/{name}/predict")
    async def predict(name: str, caller: CanPredict) -> ...

where ``CanPredict = Annotated[Caller, Depends(Authorize("model:{name}", "predict"))]``. The
object template is filled from the path parameters. A test walks every route and fails if one
lacks an ``Authorize`` dependency (health, readiness and the OpenAPI document are exempt).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.types import Scope

from governance.api.dependencies import GATE, Gate
from governance.db.base import utcnow
from governance.errors import Forbidden, ServiceUnavailable, WardenError
from governance.identity import sign_in
from governance.identity.cache import CachedIdentity
from governance.identity.errors import AuthenticationFailed, CsrfRefused, SessionEnded
from governance.identity.service import identity as identity_service
from governance.identity.tokens import token_hash, well_formed
from governance.kit import tracing
from governance.kit.context import Context
from governance.kit.events import Actor, Source
from governance.kit.middleware import header, source_of
from governance.kit.request_facts import RequestFacts, facts_of
from governance.limits import RateLimited, address_subject
from governance.limits.window import SharedWindow
from governance.policy.engine import CompiledPolicy


@dataclass(frozen=True)
class Caller:
    """An authenticated, authorized caller, and the context services stamp events with."""

    principal_id: int
    name: str
    key_id: str
    roles: tuple[str, ...]
    ctx: Context


def _lookup(gate: Gate, hashed: str) -> CachedIdentity | None:
    with gate.read_sessions() as session:
        found = identity_service.lookup(session, hashed)
        if found is None:
            return None
        principal, key = found
        # A key row the log does not vouch for (inserted or edited by hand) opens nothing.
        if not gate.anchoring.key_anchored(session, key):
            return None
        return CachedIdentity(principal.id, principal.name, key.key_id, key.expires_at)


_ANONYMOUS = Actor(principal_id=None, name=None, roles=(), auth_method="none")


def _summarised(
    gate: Gate,
    facts: RequestFacts,
    window: SharedWindow,
    subject: str,
    *,
    status: int,
    actor: Actor,
    source: Source,
) -> None:
    """Count a refusal for its source's summary; all but the first in a window are then not
    audited one by one (governance/limits/summary.py)."""
    first = gate.limits.summaries.note(
        window.name,
        subject,
        status=status,
        per_seconds=window.limit.per_seconds,
        actor=actor,
        source=source,
    )
    if not first:
        facts.audited = True


async def _failed(
    request: Request, gate: Gate, reason: str, refusal: WardenError | None = None
) -> WardenError:
    """A failed authentication: counted against the client's address, in every process.

    Args:
        refusal: the 401 to answer while under the limit (an invalid API key's by default).

    Returns:
        The 401, or the 429 once the address is past ``failed_auth`` (policies/limits.yaml).
    """
    window = gate.limits.failed_auth
    scope = request.scope
    facts = facts_of(scope)
    source = source_of(scope)
    address = address_subject(source.ip)
    wait = await run_in_threadpool(window.take_shared, address)
    if wait is None:
        facts.reason = reason
        _summarised(gate, facts, window, address, status=401, actor=_ANONYMOUS, source=source)
        return refusal or AuthenticationFailed()
    return _too_many_failures(gate, facts, address, source, wait)


def _too_many_failures(
    gate: Gate, facts: RequestFacts, address: str, source: Source, wait: int
) -> RateLimited:
    window = gate.limits.failed_auth
    facts.decision = "deny"
    facts.reason = "too many failed authentication attempts from this address"
    _summarised(gate, facts, window, address, status=429, actor=_ANONYMOUS, source=source)
    return RateLimited(
        "too many failed authentication attempts from this address", retry_after=wait
    )


def refuse_failing_address(request: Request, gate: Gate) -> None:
    """429 for an address past its limit of failed attempts, before it may try another secret.

    Raises:
        RateLimited: the address is over ``failed_auth``.
    """
    failed_auth = gate.limits.failed_auth
    if failed_auth.watching:
        # Only while some address has failed lately: the hot path skips this.
        scope = request.scope
        source = source_of(scope)
        address = address_subject(source.ip)
        wait = failed_auth.over(address)
        if wait is not None:
            raise _too_many_failures(gate, facts_of(scope), address, source, wait)


async def failed_secret(
    request: Request, gate: Gate, reason: str, refusal: WardenError
) -> WardenError:
    """A wrong secret other than an API key (an enrolment code): counted like a wrong key.

    Returns:
        ``refusal``, or the 429 once the address is past ``failed_auth``.
    """
    return await _failed(request, gate, reason, refusal)


async def authenticate(request: Request, gate: Gate) -> CachedIdentity:
    """Resolve ``Authorization: Bearer <key>`` or answer 401 (one message for every cause).

    An address past its limit of failed attempts gets 429 before any key it sends is looked
    at, so that it cannot go on guessing (policies/limits.yaml, ``failed_auth``).
    """
    refuse_failing_address(request, gate)
    value = header(request.scope, b"authorization")
    if value is None and SESSION_COOKIE in request.cookies:
        sent = header(request.scope, CSRF_HEADER)
        csrf = sent.decode("latin-1") if sent else None
        return await session_identity(request, gate, request.cookies[SESSION_COOKIE], csrf)
    value = value or b""
    scheme, _, token = value.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not well_formed(token.strip()):
        raise await _failed(request, gate, "missing or malformed API key")
    if (down := gate.database.problem()) is not None:
        # At once: every route goes on to the database (a lookup, a session, the audit
        # write), and a database that answers nobody would hold each request until it did.
        raise ServiceUnavailable(down)
    hashed = token_hash(token.strip())
    ident = gate.auth_cache.get(hashed)
    if ident is None:
        try:
            # One lookup for every request that wants this key now (see AuthCache); a frozen
            # database answers nobody, so this request waits at most the audit deadline.
            ident = await asyncio.wait_for(
                gate.auth_cache.get_or_fetch(
                    hashed, lambda: run_in_threadpool(_lookup, gate, hashed)
                ),
                gate.lookup_deadline,
            )
        except WardenError:
            raise
        except Exception:
            raise ServiceUnavailable("the identity store is not reachable") from None
    if ident is None or (ident.expires_at is not None and ident.expires_at <= utcnow()):
        raise await _failed(request, gate, "unknown, revoked or expired API key")
    return ident


SESSION_COOKIE = "warden_session"
CSRF_HEADER = b"x-csrf-token"
# Methods that change state: with a session cookie they must carry the session's CSRF token.
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _resolve_session(gate: Gate, session_id: str) -> sign_in.Resolved | None:
    if gate.sessions is None:
        return None
    with gate.sessions.begin() as session:
        return sign_in.resolve(
            session, session_id, now=gate.clock(), lifetimes=gate.session_lifetimes
        )


async def session_identity(
    request: Request, gate: Gate, session_id: str, csrf_token: str | None
) -> CachedIdentity:
    """The person a ``warden_session`` cookie names, or 401; a change without CSRF token, 403.

    Args:
        csrf_token: the token the request carries (the API's header, a console form's field).
    """
    if (down := gate.database.problem()) is not None:
        raise ServiceUnavailable(down)
    try:
        found = await asyncio.wait_for(
            run_in_threadpool(_resolve_session, gate, session_id), gate.lookup_deadline
        )
    except WardenError:
        raise
    except Exception:
        raise ServiceUnavailable("the identity store is not reachable") from None
    if found is None:
        raise await _failed(request, gate, "unknown, ended or expired session", SessionEnded())
    if request.method in _CHANGES and not sign_in.csrf_matches(csrf_token, found.csrf_hash):
        facts_of(request.scope).reason = "session change without its CSRF token"
        raise CsrfRefused()
    return CachedIdentity(
        found.principal_id, found.name, f"session:{found.session_row_id}", None, "session"
    )


# A principal's audit actor (its roles) changes only with the policy, so one Actor serves
# every request it makes under a policy version: kept with that version, for authenticated
# principals only, and dropped whole at the bound.
_ACTORS_MAX = 10_000


def _actor(compiled: CompiledPolicy, ident: CachedIdentity) -> Actor:
    derived = compiled.derived
    key = ("actor", ident.principal_id, ident.name, ident.method)
    actor: Actor | None = derived.get(key)
    if actor is None:
        if len(derived) >= _ACTORS_MAX:
            derived.clear()
        roles = tuple(compiled.roles_cached(ident.name))
        actor = Actor(
            principal_id=ident.principal_id, name=ident.name, roles=roles, auth_method=ident.method
        )
        derived[key] = actor
    return actor


class _Kept(dict[str, str]):
    """Path parameters for a template, leaving a placeholder it lacks as it is."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Authorize:
    """Dependency: authenticate, then ``enforce(principal, object, action)`` with Casbin.

    Args:
        obj: the object, a template over path parameters (``"model:{name}"``).
        action: the action (``"predict"``, ``"read"`` ...).
    """

    def __init__(self, obj: str, action: str) -> None:
        self.obj = obj
        self.action = action

    def __repr__(self) -> str:
        return f"Authorize({self.obj!r}, {self.action!r})"

    async def __call__(self, request: Request) -> Caller:
        if not tracing.enabled():
            return await self._authorize(request)
        with tracing.span("warden.authorize", {"warden.action": self.action}) as span:
            try:
                return await self._authorize(request)
            finally:
                facts = facts_of(request.scope)
                span.set_attributes(
                    {
                        "warden.object": self.obj.format_map(_Kept(request.path_params)),
                        "warden.decision": facts.decision or "deny",
                        "warden.policy_version": facts.policy_version or 0,
                    }
                )

    async def identify(self, request: Request, gate: Gate) -> CachedIdentity:
        """Who is calling: an API key or a session cookie (the console narrows this)."""
        return await authenticate(request, gate)

    async def _authorize(self, request: Request) -> Caller:
        # Authentication is called directly rather than as a sub-dependency: one guard, one
        # dependency to resolve per request on the hot path.
        gate = GATE.get(request.app)
        ident = await self.identify(request, gate)
        try:
            obj = self.obj.format(**request.path_params)
        except (KeyError, IndexError):
            obj = self.obj
        compiled: CompiledPolicy = gate.policy.current
        decision = compiled.enforce(ident.name, obj, self.action)
        actor = _actor(compiled, ident)
        roles = actor.roles
        scope = request.scope
        route = scope.get("route")
        facts = facts_of(scope)
        facts.actor = actor
        facts.policy_version = decision.policy_version
        facts.decision = "allow" if decision.allowed else "deny"
        facts.reason = decision.reason
        facts.resource = {"object": obj, "action": self.action}
        # The route template, never the raw path.
        facts.route = route.path_format if route is not None else scope["path"]
        # Counted whatever the decision: past its limit a principal's denials are summarised
        # too, where below it each stays one entry.
        limits = gate.limits
        if self.action == "predict":
            wait = limits.predict.take(str(ident.principal_id))
            if wait is not None:
                self._limited(gate, scope, limits.predict, ident, actor, wait)
        elif (self.obj, self.action) in limits.job_actions:
            wait = await run_in_threadpool(limits.jobs.take_shared, str(ident.principal_id))
            if wait is not None:
                self._limited(gate, scope, limits.jobs, ident, actor, wait)
        if not decision.allowed:
            raise Forbidden(f"{ident.name} may not {self.action} {obj}")
        ctx = Context(
            actor=actor,
            source=source_of(scope),
            request_id=facts.request_id,
            policy_version=decision.policy_version,
        )
        return Caller(ident.principal_id, ident.name, ident.key_id, roles, ctx)

    def _limited(
        self,
        gate: Gate,
        scope: Scope,
        window: SharedWindow,
        ident: CachedIdentity,
        actor: Actor,
        wait: int,
    ) -> None:
        what = "predictions" if window.name == "predict" else "heavy jobs"
        facts = facts_of(scope)
        facts.decision = "deny"
        facts.reason = f"rate limit: {window.name}"
        source = source_of(scope)
        _summarised(
            gate,
            facts,
            window,
            str(ident.principal_id),
            status=429,
            actor=actor,
            source=source,
        )
        raise RateLimited(
            f"{ident.name} is over its limit of {what} "
            f"({window.limit.requests} per {window.limit.per_seconds} s)",
            retry_after=wait,
        )


class AuthorizeOwn(Authorize):
    """Dependency: authenticate only, for what any principal may do to its own account (its
    password, its sessions); the route acts on the caller's own rows and no one else's."""

    def __init__(self, action: str) -> None:
        super().__init__("self", action)

    async def _authorize(self, request: Request) -> Caller:
        gate = GATE.get(request.app)
        ident = await self.identify(request, gate)
        compiled: CompiledPolicy = gate.policy.current
        actor = _actor(compiled, ident)
        scope = request.scope
        route = scope.get("route")
        facts = facts_of(scope)
        facts.actor = actor
        facts.policy_version = compiled.version
        facts.decision = "allow"
        facts.reason = "a principal's own account"
        facts.resource = {"object": self.obj, "action": self.action}
        facts.route = route.path_format if route is not None else scope["path"]
        ctx = Context(
            actor=actor,
            source=source_of(scope),
            request_id=facts.request_id,
            policy_version=compiled.version,
        )
        return Caller(ident.principal_id, ident.name, ident.key_id, actor.roles, ctx)
