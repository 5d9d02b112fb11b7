"""Routes for principals, API keys and role grants (role grants are policy changes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from governance.api.deps import Authorize, Caller, RuntimeDep, transaction
from governance.api.problems import responses
from governance.identity.schemas import (
    KeyIssue,
    KeyIssued,
    KeyOut,
    PrincipalCreate,
    PrincipalOut,
    RoleChange,
)
from governance.identity.service import identity
from governance.policy.rules import role_subject
from governance.policy.service import default_policy, policy
from governance.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["identity"])

CanReadPrincipals = Annotated[Caller, Depends(Authorize("api:principals", "read"))]
CanWritePrincipals = Annotated[Caller, Depends(Authorize("api:principals", "write"))]
CanReadKeys = Annotated[Caller, Depends(Authorize("api:keys", "read"))]
CanIssueKeys = Annotated[Caller, Depends(Authorize("api:keys", "issue"))]
CanRevokeKeys = Annotated[Caller, Depends(Authorize("api:keys", "revoke"))]
CanGrantRoles = Annotated[Caller, Depends(Authorize("api:roles", "grant"))]


def _principal_out(p: object) -> PrincipalOut:
    return PrincipalOut.model_validate(p, from_attributes=True)


@router.get("/principals", responses=responses())
def list_principals(runtime: RuntimeDep, caller: CanReadPrincipals) -> list[PrincipalOut]:
    """List principals."""
    with transaction(runtime) as session:
        return [_principal_out(p) for p in identity.list_principals(session)]


@router.post("/principals", status_code=201, responses=responses(409, 422))
def create_principal(
    body: PrincipalCreate, runtime: RuntimeDep, caller: CanWritePrincipals
) -> PrincipalOut:
    """Create a principal (a user or a service)."""
    with transaction(runtime) as session:
        return _principal_out(
            identity.create_principal(session, caller.ctx, name=body.name, kind=body.kind)
        )


@router.post("/principals/{name}/disable", responses=responses(404))
def disable_principal(name: str, runtime: RuntimeDep, caller: CanWritePrincipals) -> PrincipalOut:
    """Disable a principal: its keys stop working at once."""
    with transaction(runtime) as session:
        out = _principal_out(identity.set_disabled(session, caller.ctx, name=name, disabled=True))
    runtime.auth_cache.clear()
    return out


@router.get("/keys", responses=responses())
def list_keys(runtime: RuntimeDep, caller: CanReadKeys) -> list[KeyOut]:
    """List API keys (ids and dates only; tokens are never stored)."""
    with transaction(runtime) as session:
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


@router.post("/keys", status_code=201, responses=responses(404, 422))
def issue_key(body: KeyIssue, runtime: RuntimeDep, caller: CanIssueKeys) -> KeyIssued:
    """Issue an API key; the token is in this response and nowhere else."""
    with transaction(runtime) as session:
        key, token = identity.issue_key(
            session, caller.ctx, principal=body.principal, expires_at=body.expires_at
        )
        return KeyIssued(
            key_id=key.key_id, principal=body.principal, expires_at=key.expires_at, token=token
        )


@router.post("/keys/{key_id}/revoke", responses=responses(404))
def revoke_key(key_id: str, runtime: RuntimeDep, caller: CanRevokeKeys) -> KeyOut:
    """Revoke an API key: refused from the next request on."""
    with transaction(runtime) as session:
        key = identity.revoke_key(session, caller.ctx, key_id=key_id)
        out = KeyOut(
            key_id=key.key_id,
            principal="",
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )
    runtime.auth_cache.clear()
    return out


def _role_change(
    runtime: Runtime, caller: Caller, body: RoleChange, grant: bool
) -> dict[str, object]:
    vocab, _ = default_policy(runtime.settings.policies_dir)
    rule = ["g", body.principal, role_subject(body.role)]
    add, remove = ([rule], []) if grant else ([], [rule])
    with transaction(runtime) as session:
        identity.get(session, body.principal)
        # Role grants are the admins' duty and apply at once (audited, never to oneself, and
        # checked against the policy tests). The second-approval setting governs compliance
        # officers' policy changes: applying it here too would leave a fresh deployment
        # unable to appoint its first two officers.
        row = policy.apply(
            session, caller.ctx, add=add, remove=remove, reason=body.reason, vocab=vocab
        )
        version = row.version
    runtime.refresh()
    return {
        "policy_version": version,
        "principal": body.principal,
        "role": body.role,
        "granted": grant,
    }


@router.post("/roles/grant", responses=responses(404, 409, 422))
async def grant_role(
    body: RoleChange, runtime: RuntimeDep, caller: CanGrantRoles
) -> dict[str, object]:
    """Grant a role (a new policy version; nobody can grant a role to themselves)."""
    return await run_in_threadpool(_role_change, runtime, caller, body, True)


@router.post("/roles/revoke", responses=responses(404, 409, 422))
async def revoke_role(
    body: RoleChange, runtime: RuntimeDep, caller: CanGrantRoles
) -> dict[str, object]:
    """Revoke a role (a new policy version)."""
    return await run_in_threadpool(_role_change, runtime, caller, body, False)
