"""The privacy ledger of a dataset: its ε cap, what its training runs spent, what remains.

The same ledger as ``GET /v1/privacy/ledger/{dataset}``, under the same permission
(``api:privacy read``), shaped by the same schema.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from governance.api.dependencies import SettingsDep
from governance.api.deps import Caller
from governance.console.guard import Page
from governance.console.render import render
from governance.datasets.service import BUNDLED, DatasetNotRegistered
from governance.kit.transaction import TransactionDep
from governance.privacy.schemas import LedgerOut
from governance.privacy.service import training

router = APIRouter(prefix="/console", include_in_schema=False)
LEDGER = "/console/privacy"

ReadsLedger = Annotated[Caller, Depends(Page("api:privacy", "read"))]


@router.get("/privacy")
def privacy_ledger(
    request: Request,
    caller: ReadsLedger,
    settings: SettingsDep,
    session: TransactionDep,
    dataset: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    name = dataset.strip()
    context: dict[str, Any] = {
        "dataset": name,
        "bundled": BUNDLED,
        "ledger": None,
        "error": None,
    }
    if name:
        try:
            context["ledger"] = LedgerOut.of(training.ledger(session, settings, name))
        except DatasetNotRegistered as exc:
            context["error"] = exc.message
            return render(
                request, "auditor/ledger.html.j2", context, caller=caller, status_code=404
            )
    return render(request, "auditor/ledger.html.j2", context, caller=caller)
