"""The enrolment page: a person redeems their one-time code, sets a password and, where their
roles need one, receives a TOTP second factor as a QR code, shown once.

Open without a session (the code is the proof). Redeeming is the API's ``POST /v1/enrol``
itself, so the same failed-attempt limit per address applies and the same entries are audited.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from governance.api.dependencies import GateDep, KeysDep
from governance.console.render import render
from governance.errors import WardenError
from governance.identity.endpoints import redeem_enrolment
from governance.identity.schemas import EnrolmentRedeem
from governance.kit.transaction import SessionsDep

router = APIRouter(prefix="/console", include_in_schema=False)
PATH = "/console/enrol"
TEMPLATE = "admin/enrol.html.j2"
# Secrets shown once: no cache and no back-button copy may keep them.


def _secret_of(uri: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlparse(uri).query).get("secret", [""])[0]


@router.get("/enrol")
def enrol_page(request: Request) -> Response:
    return render(request, TEMPLATE, {"error": None})


@router.post("/enrol")
async def enrol(
    request: Request,
    sessions: SessionsDep,
    gate: GateDep,
    keys: KeysDep,
    code: Annotated[str, Form(min_length=1, max_length=128)],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
    again: Annotated[str, Form(min_length=1, max_length=1024)],
) -> Response:
    if password != again:
        # Caught before the code is tried: a typo must not cost the person their code.
        return render(
            request,
            TEMPLATE,
            {"error": "the two passwords differ; nothing was redeemed"},
            status_code=422,
        )
    body = EnrolmentRedeem(code=code.strip(), password=password)
    try:
        enrolled = await redeem_enrolment(body, request, sessions, gate, keys)
    except WardenError as exc:
        headers = {}
        if (retry := getattr(exc, "retry_after", None)) is not None:
            headers["Retry-After"] = str(retry)
        return render(
            request,
            TEMPLATE,
            {"error": exc.message},
            status_code=exc.status_code,
            headers=headers,
        )
    totp = enrolled.totp
    return render(
        request,
        "admin/enrolled.html.j2",
        {
            "name": enrolled.principal,
            "token": enrolled.token,
            "qr": totp.qr_svg if totp is not None else None,
            "secret": _secret_of(totp.uri) if totp is not None else None,
        },
        status_code=201,
    )
