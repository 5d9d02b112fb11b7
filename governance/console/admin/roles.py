"""Role grants: who holds which role now, grant or revoke one, and the grants pending a
compliance officer's approval (a grant that widens power over governance is a proposal that
someone other than its author approves, as through the API)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import ReloadDep, SettingsDep
from governance.api.deps import Caller
from governance.config import Settings
from governance.console.guard import Page
from governance.console.permits import may
from governance.console.render import render
from governance.db.base import DbInt
from governance.errors import WardenError
from governance.identity.endpoints import grant_role, revoke_role
from governance.identity.schemas import RoleChange
from governance.kit.transaction import SessionsDep
from governance.policy.endpoints import approve_proposal, get_role_timeline, list_proposals
from governance.policy.schemas import ProposalDecision, ProposalOut
from governance.policy.service import default_policy

router = APIRouter(prefix="/console", include_in_schema=False)
PATH = "/console/admin/roles"

CanRead = Annotated[Caller, Depends(Page("api:roles", "read"))]
CanGrant = Annotated[Caller, Depends(Page("api:roles", "grant"))]
CanApprove = Annotated[Caller, Depends(Page("api:policy", "approve"))]

_OUTCOMES = {
    "applied": "Applied: a new policy version is in force.",
    "pending": "Pending: a compliance officer other than you approves it before it applies.",
    "approved": "Approved and applied.",
}


def _role_rules(p: ProposalOut) -> list[tuple[str, str, str]]:
    """``(grant|revoke, principal, role)`` for a proposal that changes only role membership."""
    if p.kind != "change":
        return []
    out: list[tuple[str, str, str]] = []
    for verb, key in (("grant", "add"), ("revoke", "remove")):
        for rule in p.changes.get(key, ()):
            if len(rule) != 3 or rule[0] != "g" or not str(rule[2]).startswith("role:"):
                return []
            out.append((verb, str(rule[1]), str(rule[2]).removeprefix("role:")))
    return out


def _page(
    request: Request,
    caller: Caller,
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    holdings = [h for h in get_role_timeline(sessions, caller) if h.revoked_at is None]
    pending: list[tuple[ProposalOut, list[tuple[str, str, str]]]] = []
    if may(request, caller, "api:policy", "read"):
        with sessions() as session:
            for p in list_proposals(caller, session, status="pending"):
                if rules := _role_rules(p):
                    pending.append((p, rules))
    vocab, _ = default_policy(settings.policies_dir)
    return render(
        request,
        "admin/roles.html.j2",
        {
            "holdings": sorted(holdings, key=lambda h: (h.member, h.role)),
            "pending": pending,
            "roles": sorted(vocab.roles),
            "can_grant": may(request, caller, "api:roles", "grant"),
            "can_approve": may(request, caller, "api:policy", "approve"),
            "error": error,
            "notice": notice,
        },
        caller=caller,
        status_code=status_code,
    )


@router.get("/admin/roles")
def roles_page(
    request: Request,
    caller: CanRead,
    sessions: SessionsDep,
    settings: SettingsDep,
    done: str | None = None,
) -> Response:
    return _page(request, caller, sessions, settings, notice=_OUTCOMES.get(done or ""))


@router.post("/admin/roles")
async def change(
    request: Request,
    caller: CanGrant,
    sessions: SessionsDep,
    settings: SettingsDep,
    reload: ReloadDep,
    principal: Annotated[str, Form(min_length=1, max_length=64)],
    role: Annotated[str, Form(min_length=1, max_length=64)],
    reason: Annotated[str, Form(min_length=1, max_length=2000)],
    change: Annotated[Literal["grant", "revoke"], Form()] = "grant",
) -> Response:
    body = RoleChange(principal=principal.strip(), role=role, reason=reason)
    route = grant_role if change == "grant" else revoke_role
    try:
        out = await route(body, Response(), sessions, settings, reload, caller)
    except WardenError as exc:
        return _page(
            request, caller, sessions, settings, error=exc.message, status_code=exc.status_code
        )
    return RedirectResponse(f"{PATH}?done={out.status}", status_code=303)


@router.post("/admin/roles/proposals/{proposal_id}/approve")
def approve(
    request: Request,
    proposal_id: DbInt,
    caller: CanApprove,
    sessions: SessionsDep,
    settings: SettingsDep,
    reload: ReloadDep,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        approve_proposal(
            proposal_id, ProposalDecision(reason=note), sessions, settings, reload, caller
        )
    except WardenError as exc:
        return _page(
            request, caller, sessions, settings, error=exc.message, status_code=exc.status_code
        )
    return RedirectResponse(f"{PATH}?done=approved", status_code=303)
