"""Principals and enrolments: list, create a person or a service, issue a person's one-time
enrolment code (shown once), disable. Each action is the API route's own function."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import GateDep
from governance.api.deps import Caller
from governance.console.guard import Page
from governance.console.permits import may
from governance.console.render import render
from governance.errors import WardenError
from governance.identity.endpoints import (
    create_enrolment,
    create_principal,
    disable_principal,
    list_principals,
)
from governance.identity.schemas import EnrolmentCreate, PrincipalCreate
from governance.kit.transaction import SessionsDep

router = APIRouter(prefix="/console", include_in_schema=False)
PATH = "/console/admin/principals"

CanRead = Annotated[Caller, Depends(Page("api:principals", "read"))]
CanWrite = Annotated[Caller, Depends(Page("api:principals", "write"))]


def _listing(
    request: Request,
    caller: Caller,
    sessions: sessionmaker[Session],
    *,
    error: str | None = None,
    created: str | None = None,
    status_code: int = 200,
) -> Response:
    with sessions() as session:
        rows = list_principals(caller, session)
    # Only a name that exists: the query string must not put words in the page's mouth.
    notice = f"Created {created}." if created in {p.name for p in rows} else None
    return render(
        request,
        "admin/principals.html.j2",
        {
            "principals": sorted(rows, key=lambda p: p.name),
            "can_write": may(request, caller, "api:principals", "write"),
            "error": error,
            "notice": notice,
        },
        caller=caller,
        status_code=status_code,
    )


@router.get("/admin/principals")
def principals_page(
    request: Request, caller: CanRead, sessions: SessionsDep, created: str | None = None
) -> Response:
    return _listing(request, caller, sessions, created=created)


@router.post("/admin/principals")
def create(
    request: Request,
    caller: CanWrite,
    sessions: SessionsDep,
    name: Annotated[str, Form(min_length=1, max_length=64)],
    kind: Annotated[Literal["user", "service"], Form()] = "user",
) -> Response:
    try:
        with sessions.begin() as session:
            made = create_principal(PrincipalCreate(name=name, kind=kind), caller, session)
    except WardenError as exc:
        return _listing(request, caller, sessions, error=exc.message, status_code=exc.status_code)
    return RedirectResponse(f"{PATH}?created={made.name}", status_code=303)


@router.post("/admin/principals/{name}/enrolment")
def enrolment(
    request: Request,
    name: str,
    caller: CanWrite,
    sessions: SessionsDep,
    minutes: Annotated[int, Form(ge=1, le=10080)] = EnrolmentCreate().expires_in_minutes,
) -> Response:
    try:
        body = EnrolmentCreate(expires_in_minutes=minutes)
        issued = create_enrolment(name, sessions, caller, body)
    except WardenError as exc:
        return _listing(request, caller, sessions, error=exc.message, status_code=exc.status_code)
    # The code is rendered here rather than after a redirect: it must never sit in a URL.
    return render(
        request,
        "admin/enrolment_code.html.j2",
        {"issued": issued},
        caller=caller,
        status_code=201,
    )


@router.post("/admin/principals/{name}/disable")
def disable(
    request: Request, name: str, caller: CanWrite, sessions: SessionsDep, gate: GateDep
) -> Response:
    try:
        disable_principal(name, sessions, gate, caller)
    except WardenError as exc:
        return _listing(request, caller, sessions, error=exc.message, status_code=exc.status_code)
    return RedirectResponse(PATH, status_code=303)
