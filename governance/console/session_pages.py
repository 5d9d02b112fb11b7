"""Signing in and out of the console, the home page, and a person's own sessions.

Sign-in is the API's (``POST /v1/session``): the same check of password and one-time code,
the same limits per address and per name, the same audit entry. The console keeps the
session's CSRF token in a second HttpOnly cookie, so that each page it renders can put the
token into its forms.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import Gate, GateDep, KeysDep, SettingsDep
from governance.api.deps import SESSION_COOKIE, Caller
from governance.config import Settings
from governance.console.guard import CSRF_COOKIE, HOME, Person, PersonActing, safe_next
from governance.console.render import render
from governance.db.base import DbInt
from governance.errors import WardenError
from governance.identity import sign_in
from governance.identity.endpoints import set_session_cookie, sign_in_person
from governance.identity.schemas import SignInBody
from governance.kit.transaction import SessionsDep

router = APIRouter(prefix="/console", include_in_schema=False)
SIGN_IN = "/console/sign-in"


def _form(settings: Settings, next_path: str | None, **extra: Any) -> dict[str, Any]:
    # Single sign-on is offered only where an identity provider is configured (docs/sso.md).
    sso = bool(settings.oidc_issuer)
    return {"next": safe_next(next_path), "error": None, "sso": sso, **extra}


@router.get("/sign-in")
def sign_in_page(request: Request, settings: SettingsDep, next: str | None = None) -> Response:
    return render(request, "sign_in.html.j2", _form(settings, next))


@router.post("/sign-in")
async def sign_in_form(
    request: Request,
    sessions: SessionsDep,
    gate: GateDep,
    keys: KeysDep,
    settings: SettingsDep,
    name: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
    code: Annotated[str, Form(max_length=16)] = "",
    next: Annotated[str, Form(max_length=512)] = HOME,
) -> Response:
    body = SignInBody(name=name, password=password, totp=code.strip() or None)
    try:
        opened = await sign_in_person(request, body, sessions, gate, keys)
    except WardenError as exc:
        headers = {}
        if (retry := getattr(exc, "retry_after", None)) is not None:
            headers["Retry-After"] = str(retry)
        return render(
            request,
            "sign_in.html.j2",
            _form(settings, next, error=exc.message, name=name),
            status_code=exc.status_code,
            headers=headers,
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, request, SESSION_COOKIE, opened.session_id, gate)
    set_session_cookie(response, request, CSRF_COOKIE, opened.csrf_token, gate)
    return response


def _end(
    sessions: sessionmaker[Session], gate: Gate, caller: Caller, row_id: int, action: str
) -> None:
    with sessions.begin() as session:
        sign_in.end(
            session, caller.ctx, caller.principal_id, row_id, now=gate.clock(), action=action
        )


def _current_row(caller: Caller) -> int:
    return int(caller.key_id.removeprefix("session:"))


@router.post("/sign-out")
async def sign_out(caller: PersonActing, sessions: SessionsDep, gate: GateDep) -> Response:
    await run_in_threadpool(_end, sessions, gate, caller, _current_row(caller), "sign-out")
    response = RedirectResponse(SIGN_IN, status_code=303)
    for cookie in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(cookie, path="/", httponly=True, samesite="strict")
    return response


@router.get("/")
def home(request: Request, caller: Person, gate: GateDep, sessions: SessionsDep) -> Response:
    with sessions() as session:
        rows = sign_in.live(
            session, caller.principal_id, now=gate.clock(), lifetimes=gate.session_lifetimes
        )
    return render(
        request,
        "home.html.j2",
        {"sessions": rows, "current": _current_row(caller)},
        caller=caller,
    )


@router.post("/sessions/{session_id}/revoke")
async def revoke_session(
    session_id: DbInt, caller: PersonActing, sessions: SessionsDep, gate: GateDep
) -> Response:
    await run_in_threadpool(_end, sessions, gate, caller, session_id, "revoke")
    if session_id == _current_row(caller):
        return RedirectResponse(SIGN_IN, status_code=303)
    return RedirectResponse(HOME, status_code=303)
