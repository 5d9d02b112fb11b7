"""Models awaiting approval: each version's gate result, fairness tables and model card, and
the officer's override with a written justification.

Reading is ``GET /v1/models`` and ``GET /v1/fairness/gate/{name}/{version}``; the override is
``POST /v1/fairness/overrides`` (``api:models override``), through the same service and its
separation of duties (never the version's trainer or registrant).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from governance.api.dependencies import PolicyDep
from governance.api.deps import Caller
from governance.console.guard import Page
from governance.console.officer.policy_pages import may
from governance.console.render import render
from governance.errors import WardenError
from governance.fairness.gate import MIN_JUSTIFICATION_LENGTH, gate_status, overrides
from governance.fairness.service import fairness
from governance.kit.transaction import SessionsDep
from governance.policy.engine import PolicyEngine
from governance.registry.import_schema import MODEL_CARD_FILE
from governance.registry.models import REGISTERED, ModelVersion
from governance.registry.service import registry

router = APIRouter()
MODELS = "/console/officer/models"
CanListModels = Annotated[Caller, Depends(Page("api:models", "list"))]
CanReadModels = Annotated[Caller, Depends(Page("api:models", "read"))]
CanOverride = Annotated[Caller, Depends(Page("api:models", "override"))]


def model_card(row: ModelVersion) -> tuple[bool, Any]:
    """``(pinned, card)``: the card the manifest pins by its sha256, or None when there is none
    or the file does not match its pin (an altered card is no evidence)."""
    pinned = (json.loads(row.manifest).get("files") or {}).get(MODEL_CARD_FILE)
    path = Path(row.artifact_dir) / MODEL_CARD_FILE
    if pinned is None or not path.is_file():
        return pinned is not None, None
    data = path.read_bytes()
    return True, json.loads(data) if hashlib.sha256(data).hexdigest() == pinned else None


@router.get("/models")
def models_page(
    request: Request, caller: CanListModels, sessions: SessionsDep, engine: PolicyDep
) -> Response:
    show_gate = may(engine, caller, "api:fairness", "read")
    with sessions() as session:
        waiting = [
            {"row": row, "gate": gate_status(session, row) if show_gate else None}
            for row in registry.list_versions(session)
            if row.stage == REGISTERED
        ]
    return render(
        request,
        "officer/models.html.j2",
        {"waiting": waiting, "show_gate": show_gate},
        caller=caller,
    )


def _model_page(
    request: Request,
    caller: Caller,
    sessions: SessionsDep,
    engine: PolicyEngine,
    name: str,
    version: str,
    *,
    error: str | None = None,
    justification: str = "",
    done: bool = False,
    status_code: int = 200,
) -> Response:
    show_gate = may(engine, caller, "api:fairness", "read")
    with sessions() as session:
        row = registry.get(session, name, version)
        gate = gate_status(session, row) if show_gate else None
        audit = fairness.latest_for_artifact(session, row.artifact_sha256) if show_gate else None
        result = json.loads(audit.result) if audit is not None else None
        manifest = json.loads(row.manifest)
    pinned, card = model_card(row)
    context = {
        "row": row,
        "gate": gate,
        "audit": audit,
        "result": result,
        "training": manifest.get("training") or {},
        "card_pinned": pinned,
        "card": json.dumps(card, indent=2, sort_keys=True) if card is not None else None,
        "can_override": may(engine, caller, "api:models", "override"),
        "min_justification": MIN_JUSTIFICATION_LENGTH,
        "justification": justification,
        "error": error,
        "done": done,
    }
    return render(request, "officer/model.html.j2", context, caller=caller, status_code=status_code)


@router.get("/models/{name}/versions/{version}")
def model_page(
    request: Request,
    name: str,
    version: str,
    caller: CanReadModels,
    sessions: SessionsDep,
    engine: PolicyDep,
    done: str | None = None,
) -> Response:
    return _model_page(request, caller, sessions, engine, name, version, done=done == "overridden")


@router.post("/models/{name}/versions/{version}/override")
def override(
    request: Request,
    name: str,
    version: str,
    caller: CanOverride,
    sessions: SessionsDep,
    engine: PolicyDep,
    justification: Annotated[str, Form(max_length=4000)],
) -> Response:
    try:
        with sessions.begin() as session:
            overrides.override(
                session, caller.ctx, model=name, version=version, justification=justification
            )
    except WardenError as exc:
        return _model_page(
            request,
            caller,
            sessions,
            engine,
            name,
            version,
            error=exc.message,
            justification=justification,
            status_code=exc.status_code,
        )
    where = f"{MODELS}/{quote(name, safe='')}/versions/{quote(version, safe='')}"
    return RedirectResponse(f"{where}?done=overridden", status_code=303)
