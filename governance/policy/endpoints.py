"""Routes for reading and changing the access policy."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from governance.api.deps import Authorize, Caller, RuntimeDep, transaction
from governance.api.problems import responses
from governance.policy.models import PolicyVersion
from governance.policy.schemas import PolicyChange, PolicyOut, PolicyVersionOut
from governance.policy.service import default_policy, policy
from governance.runtime import Runtime

router = APIRouter(prefix="/v1/policy", tags=["policy"])

CanReadPolicy = Annotated[Caller, Depends(Authorize("api:policy", "read"))]
CanWritePolicy = Annotated[Caller, Depends(Authorize("api:policy", "write"))]


def version_out(row: PolicyVersion) -> PolicyVersionOut:
    return PolicyVersionOut(
        version=row.version, parent=row.parent, created_at=row.created_at, author=row.author,
        approved_by=row.approved_by, reason=row.reason, kind=row.kind, sha256=row.sha256,
        diff=json.loads(row.diff),
    )


def policy_out(row: PolicyVersion) -> PolicyOut:
    return PolicyOut(**version_out(row).model_dump(), rules=json.loads(row.rules))


@router.get("", responses=responses())
def current_policy(runtime: RuntimeDep, caller: CanReadPolicy) -> PolicyOut:
    """The current policy version with all its rules."""
    with transaction(runtime) as session:
        return policy_out(policy.current(session))


def _apply(runtime: Runtime, caller: Caller, body: PolicyChange) -> PolicyOut:
    vocab, _ = default_policy(runtime.settings.policies_dir)
    with transaction(runtime) as session:
        row = policy.apply(session, caller.ctx, add=body.add, remove=body.remove,
                           reason=body.reason, vocab=vocab, base_version=body.base_version)
        out = policy_out(row)
    runtime.refresh()
    return out


@router.post("/changes", status_code=201, responses=responses(409, 422))
async def apply_change(body: PolicyChange, runtime: RuntimeDep, caller: CanWritePolicy) -> PolicyOut:
    """Apply a change (add/remove rules) with a reason; creates a new immutable version."""
    return await run_in_threadpool(_apply, runtime, caller, body)
