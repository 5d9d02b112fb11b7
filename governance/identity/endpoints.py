"""Routes for principals, API keys and role grants (role grants are policy changes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import GateDep, ReloadDep, SettingsDep
from governance.api.deps import (
    Authorize,
    Caller,
    failed_secret,
    refuse_failing_address,
)
from governance.config import Settings
from governance.identity.duties import change_role
from governance.identity.enrolment import enrolments
from governance.identity.errors import InvalidEnrolmentCode
from governance.identity.schemas import (
    EnrolmentCreate,
    EnrolmentIssued,
    EnrolmentRedeem,
    KeyIssue,
    KeyIssued,
    KeyOut,
    PrincipalCreate,
    PrincipalOut,
    RoleChange,
    RoleChangeOut,
)
from governance.identity.service import identity
from governance.kit.context import Context
from governance.kit.middleware import source_of
from governance.kit.problems import responses
from governance.kit.request_facts import facts_of
from governance.kit.transaction import SessionsDep, TransactionDep
from governance.policy.models import PolicyVersion
from governance.policy.service import default_policy

router = APIRouter(prefix="/v1", tags=["identity"])

CanReadPrincipals = Annotated[Caller, Depends(Authorize("api:principals", "read"))]
CanWritePrincipals = Annotated[Caller, Depends(Authorize("api:principals", "write"))]
CanReadKeys = Annotated[Caller, Depends(Authorize("api:keys", "read"))]
CanIssueKeys = Annotated[Caller, Depends(Authorize("api:keys", "issue"))]
CanRevokeKeys = Annotated[Caller, Depends(Authorize("api:keys", "revoke"))]
CanGrantRoles = Annotated[Caller, Depends(Authorize("api:roles", "grant"))]


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


def _redeem(sessions: sessionmaker[Session], ctx: Context, code: str) -> KeyIssued:
    with sessions.begin() as session:
        key, person, token = enrolments.redeem(session, ctx, code=code)
        return KeyIssued(
            key_id=key.key_id, principal=person.name, expires_at=key.expires_at, token=token
        )


@router.post("/enrol", status_code=201, responses=responses(422, 429))
async def redeem_enrolment(
    body: EnrolmentRedeem, request: Request, sessions: SessionsDep, gate: GateDep
) -> KeyIssued:
    """Redeem an enrolment code for your own API key (no key needed; the code is the proof)."""
    # A wrong code counts against the address like a wrong key: nobody guesses codes at will.
    refuse_failing_address(request, gate)
    ctx = Context(source=source_of(request.scope), request_id=facts_of(request.scope).request_id)
    try:
        return await run_in_threadpool(_redeem, sessions, ctx, body.code)
    except InvalidEnrolmentCode as exc:
        raise await failed_secret(request, gate, "invalid enrolment code", exc) from None


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
