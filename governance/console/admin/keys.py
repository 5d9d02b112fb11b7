"""Service keys: list every API key, issue one to a service (its token shown once), revoke.

People obtain their own key by enrolment: the service refuses a key for a person, as the API
does. Each action is the API route's own function.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import GateDep
from governance.api.deps import Caller
from governance.console.guard import Page
from governance.console.permits import may
from governance.console.render import render
from governance.errors import WardenError
from governance.identity.endpoints import issue_key, list_keys, list_principals, revoke_key
from governance.identity.schemas import KeyIssue
from governance.kit.transaction import SessionsDep

router = APIRouter(prefix="/console", include_in_schema=False)
PATH = "/console/admin/keys"

CanRead = Annotated[Caller, Depends(Page("api:keys", "read"))]
CanIssue = Annotated[Caller, Depends(Page("api:keys", "issue"))]
CanRevoke = Annotated[Caller, Depends(Page("api:keys", "revoke"))]


def _listing(
    request: Request,
    caller: Caller,
    sessions: sessionmaker[Session],
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    can_issue = may(request, caller, "api:keys", "issue")
    with sessions() as session:
        keys = list_keys(caller, session)
        services = []
        if can_issue and may(request, caller, "api:principals", "read"):
            services = [
                p.name
                for p in list_principals(caller, session)
                if p.kind == "service" and not p.disabled
            ]
    return render(
        request,
        "admin/keys.html.j2",
        {
            "keys": sorted(keys, key=lambda k: k.created_at, reverse=True),
            "services": sorted(services),
            "can_issue": can_issue,
            "can_revoke": may(request, caller, "api:keys", "revoke"),
            "error": error,
        },
        caller=caller,
        status_code=status_code,
    )


@router.get("/admin/keys")
def keys_page(request: Request, caller: CanRead, sessions: SessionsDep) -> Response:
    return _listing(request, caller, sessions)


@router.post("/admin/keys")
def issue(
    request: Request,
    caller: CanIssue,
    sessions: SessionsDep,
    principal: Annotated[str, Form(min_length=1, max_length=64)],
) -> Response:
    try:
        with sessions.begin() as session:
            issued = issue_key(KeyIssue(principal=principal), caller, session)
    except WardenError as exc:
        return _listing(request, caller, sessions, error=exc.message, status_code=exc.status_code)
    # The token is rendered here rather than after a redirect: it must never sit in a URL.
    return render(
        request,
        "admin/key_issued.html.j2",
        {"issued": issued},
        caller=caller,
        status_code=201,
    )


@router.post("/admin/keys/{key_id}/revoke")
def revoke(
    request: Request, key_id: str, caller: CanRevoke, sessions: SessionsDep, gate: GateDep
) -> Response:
    try:
        revoke_key(key_id, sessions, gate, caller)
    except WardenError as exc:
        return _listing(request, caller, sessions, error=exc.message, status_code=exc.status_code)
    return RedirectResponse(PATH, status_code=303)
