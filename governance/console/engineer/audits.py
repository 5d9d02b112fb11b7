"""Bias audits: the list (per model, passed or not), and one audit's metrics per group and its
disparities beside the bounds of the thresholds version it was judged under."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from governance.api.deps import Caller
from governance.console.guard import Page
from governance.console.render import render
from governance.db.base import DbInt
from governance.fairness.endpoints import get_audit, list_audits, list_threshold_versions
from governance.fairness.schemas import AuditOut
from governance.kit.transaction import SessionsDep

router = APIRouter(prefix="/console", include_in_schema=False)
PATH = "/console/engineer/audits"

CanRead = Annotated[Caller, Depends(Page("api:fairness", "read"))]


@router.get("/engineer/audits")
def audits_page(
    request: Request,
    caller: CanRead,
    sessions: SessionsDep,
    model: Annotated[str | None, Query(max_length=128)] = None,
    version: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    with sessions() as session:
        # Every argument named: the route's defaults are Query markers, not values.
        rows = list_audits(
            caller, session, model=model or None, version=version or None, kind=None, limit=200
        )
    return render(
        request,
        "engineer/audits.html.j2",
        {"audits": rows, "model": model or "", "version": version or ""},
        caller=caller,
    )


def _bounds(audit: AuditOut, document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The bound of each measure for the audit's model: its own entry over the defaults."""
    bounds: dict[str, dict[str, Any]] = dict(document.get("defaults") or {})
    own = (document.get("models") or {}).get(audit.model)
    if isinstance(own, dict):
        bounds.update({k: v for k, v in own.items() if isinstance(v, dict)})
    return bounds


@router.get("/engineer/audits/{audit_id}")
def audit_page(
    request: Request, audit_id: DbInt, caller: CanRead, sessions: SessionsDep
) -> Response:
    with sessions() as session:
        audit = get_audit(audit_id, caller, session)
        versions = list_threshold_versions(caller, session, limit=1000)
    judged = next((v for v in versions if v.version == audit.thresholds_version), None)
    failing = {(f.get("feature"), f.get("measure")): f for f in audit.failures}
    return render(
        request,
        "engineer/audit.html.j2",
        {
            "audit": audit,
            "result": audit.result,
            "bounds": _bounds(audit, judged.document) if judged is not None else {},
            "failing": failing,
        },
        caller=caller,
    )
