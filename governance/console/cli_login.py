"""``warden login --browser``: a signed-in person allows their command line to act as them.

The CLI opens ``/console/cli-login?challenge=C``; the person confirms with a form (CSRF token,
as every console action) and is shown a one-time code once, which they paste into the CLI. The
code opens a session only with the verifier behind C (governance/identity/cli_grants.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from governance.api.dependencies import GateDep
from governance.console.guard import Person, PersonActing
from governance.console.render import render
from governance.errors import Unprocessable
from governance.identity import cli_grants
from governance.kit.transaction import SessionsDep

router = APIRouter(prefix="/console", include_in_schema=False)
PATH = "/console/cli-login"


def _checked(challenge: str) -> str:
    if not cli_grants.well_formed_challenge(challenge):
        raise Unprocessable(
            "this link is not one warden login --browser makes: run the command again"
        )
    return challenge


@router.get("/cli-login")
def ask(request: Request, caller: Person, challenge: str = "") -> Response:
    return render(
        request,
        "cli_login.html.j2",
        {"challenge": _checked(challenge), "code": None},
        caller=caller,
    )


@router.post("/cli-login")
def allow(
    request: Request,
    caller: PersonActing,
    sessions: SessionsDep,
    gate: GateDep,
    challenge: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    checked = _checked(challenge)
    with sessions.begin() as session:
        code = cli_grants.create(session, caller.ctx, challenge=checked, now=gate.clock())
    # Rendered here rather than after a redirect: the code must never sit in a URL. Every
    # console page answers Cache-Control: no-store (governance/kit/security_headers.py).
    return render(
        request,
        "cli_login.html.j2",
        {"challenge": checked, "code": code, "minutes": _minutes()},
        caller=caller,
        status_code=201,
    )


def _minutes() -> int:
    return int(cli_grants.GRANT_TTL.total_seconds() // 60)
