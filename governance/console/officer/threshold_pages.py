"""Fairness thresholds: the version the gate uses, its history, and an edit with a reason.

Reading is ``GET /v1/fairness/thresholds`` and its ``/versions``; the edit is
``PUT /v1/fairness/thresholds`` (``api:fairness write``) through the same store, which
validates the document and refuses an edit of a version that is no longer the latest.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from governance.api.dependencies import PolicyDep, SettingsDep
from governance.api.deps import Caller
from governance.config import Settings
from governance.console.guard import Page
from governance.console.officer.policy_pages import may
from governance.console.render import render
from governance.errors import WardenError
from governance.fairness.errors import FairnessPolicyError
from governance.fairness.thresholds.versions import MIN_REASON_LENGTH, thresholds_store
from governance.kit.transaction import SessionsDep
from governance.policy.engine import PolicyEngine

router = APIRouter()
THRESHOLDS = "/console/officer/thresholds"
CanReadFairness = Annotated[Caller, Depends(Page("api:fairness", "read"))]
CanWriteThresholds = Annotated[Caller, Depends(Page("api:fairness", "write"))]
HISTORY = 50
# A thresholds document is a few dozen lines; this bounds what the YAML parser is given.
MAX_DOCUMENT = 50_000


def parse_document(text: str) -> dict[str, Any]:
    """The thresholds document an officer typed (YAML, as ``policies/fairness.yaml``).

    Raises:
        FairnessPolicyError: not YAML, or not a mapping (422).
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise FairnessPolicyError(
            f"the document is not valid YAML{where}", status_code=422
        ) from None
    if not isinstance(doc, dict):
        raise FairnessPolicyError("the document must be a mapping of settings", status_code=422)
    return doc


def _page(
    request: Request,
    caller: Caller,
    sessions: SessionsDep,
    settings: Settings,
    engine: PolicyEngine,
    *,
    text: str | None = None,
    error: str | None = None,
    done: bool = False,
    status_code: int = 200,
) -> Response:
    # As the API's read: the first read seeds version 1 from policies/fairness.yaml.
    with sessions.begin() as session:
        current = thresholds_store.current(session, policies_dir=settings.policies_dir)
        history = thresholds_store.history(session, limit=HISTORY)
        document = json.loads(current.document)
        versions = [{"row": row, "diff": json.loads(row.diff)} for row in history]
    context = {
        "current": current,
        "versions": versions,
        "can_write": may(engine, caller, "api:fairness", "write"),
        "text": text if text is not None else yaml.safe_dump(document, sort_keys=True),
        "min_reason": MIN_REASON_LENGTH,
        "error": error,
        "done": done,
    }
    return render(
        request, "officer/thresholds.html.j2", context, caller=caller, status_code=status_code
    )


@router.get("/thresholds")
def thresholds_page(
    request: Request,
    caller: CanReadFairness,
    sessions: SessionsDep,
    settings: SettingsDep,
    engine: PolicyDep,
    done: str | None = None,
) -> Response:
    return _page(request, caller, sessions, settings, engine, done=done == "saved")


@router.post("/thresholds")
def update_thresholds(
    request: Request,
    caller: CanWriteThresholds,
    sessions: SessionsDep,
    settings: SettingsDep,
    engine: PolicyDep,
    document: Annotated[str, Form(max_length=MAX_DOCUMENT)],
    reason: Annotated[str, Form(max_length=2000)],
    base_version: Annotated[int | None, Form(ge=1)] = None,
) -> Response:
    try:
        with sessions.begin() as session:
            thresholds_store.update(
                session,
                caller.ctx,
                document=parse_document(document),
                reason=reason,
                base_version=base_version,
                policies_dir=settings.policies_dir,
            )
    except WardenError as exc:
        return _page(
            request,
            caller,
            sessions,
            settings,
            engine,
            text=document,
            error=exc.message,
            status_code=exc.status_code,
        )
    return RedirectResponse(f"{THRESHOLDS}?done=saved", status_code=303)
