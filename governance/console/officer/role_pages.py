"""The role timeline: grants and revocations over time, as ``GET /v1/policy/role-timeline``
reads them from the policy's history (``api:roles read``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from governance.api.dependencies import SettingsDep
from governance.api.deps import Caller
from governance.console.guard import Page
from governance.console.officer.policy_pages import vocabulary
from governance.console.render import render
from governance.kit.transaction import SessionsDep
from governance.policy.timeline import role_timeline

router = APIRouter()
ROLES = "/console/officer/roles"
CanReadRoles = Annotated[Caller, Depends(Page("api:roles", "read"))]
Filter = Annotated[str, Query(max_length=128)]


@router.get("/roles")
def roles_page(
    request: Request,
    caller: CanReadRoles,
    sessions: SessionsDep,
    settings: SettingsDep,
    principal: Filter = "",
    role: Filter = "",
) -> Response:
    with sessions() as session:
        periods = role_timeline(session, member=principal.strip() or None, role=role or None)
    return render(
        request,
        "officer/roles.html.j2",
        {
            # Newest grant first: an access review starts with what changed lately.
            "periods": [p.as_dict() for p in reversed(periods)],
            "roles": sorted(vocabulary(settings).roles),
            "principal": principal,
            "role": role,
        },
        caller=caller,
    )
