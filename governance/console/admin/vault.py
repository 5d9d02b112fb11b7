"""Key rotation state: the KEK in use, the versions still available, the data keys under each,
when the schedule retires the current KEK, the rotations so far; rotating the KEK is an action.
Metadata only: no page ever holds key material."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import KeysDep, RecordsDep
from governance.api.deps import Caller
from governance.console.guard import Page
from governance.console.permits import may
from governance.console.render import render
from governance.errors import WardenError
from governance.kit.transaction import SessionsDep
from governance.records.recorder import RecordStore
from governance.vault.endpoints import kek_status, list_rotations, rotate_key_encryption_key
from governance.vault.providers import ServiceKeyProvider
from governance.vault.schemas import KekRotateRequest

router = APIRouter(prefix="/console", include_in_schema=False)
PATH = "/console/admin/vault"

CanRead = Annotated[Caller, Depends(Page("api:vault", "read"))]
CanRotate = Annotated[Caller, Depends(Page("api:vault", "rotate"))]


def _page(
    request: Request,
    caller: Caller,
    sessions: sessionmaker[Session],
    records: RecordStore,
    keys: ServiceKeyProvider,
    *,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    status = kek_status(sessions, records, keys, caller)
    with sessions() as session:
        rotations = list_rotations(caller, session, limit=50)
    return render(
        request,
        "admin/vault.html.j2",
        {
            "kek": status,
            "rotations": rotations,
            "can_rotate": may(request, caller, "api:vault", "rotate"),
            "error": error,
            "notice": notice,
        },
        caller=caller,
        status_code=status_code,
    )


@router.get("/admin/vault")
def vault_page(
    request: Request,
    caller: CanRead,
    sessions: SessionsDep,
    records: RecordsDep,
    keys: KeysDep,
    rotated: bool = False,
) -> Response:
    notice = "The KEK was rotated and every live data key rewrapped onto it." if rotated else None
    return _page(request, caller, sessions, records, keys, notice=notice)


@router.post("/admin/vault/kek/rotate")
async def rotate(
    request: Request,
    caller: CanRotate,
    sessions: SessionsDep,
    records: RecordsDep,
    keys: KeysDep,
    reason: Annotated[str, Form(min_length=3, max_length=200)],
) -> Response:
    try:
        await rotate_key_encryption_key(KekRotateRequest(reason=reason), sessions, keys, caller)
    except WardenError as exc:
        return _page(
            request,
            caller,
            sessions,
            records,
            keys,
            error=exc.message,
            status_code=exc.status_code,
        )
    return RedirectResponse(f"{PATH}?rotated=true", status_code=303)
