"""Datasets with their privacy budget, training runs (polled while one is in progress), and
the model registry's versions and stages: each the API's own read behind its permission."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from governance.api.dependencies import SettingsDep
from governance.api.deps import Caller
from governance.console.guard import Page
from governance.console.render import render
from governance.datasets.endpoints import get_dataset, list_datasets
from governance.datasets.schemas import DatasetOut
from governance.errors import WardenError
from governance.kit.transaction import SessionsDep
from governance.privacy.endpoints import list_runs
from governance.privacy.models import RESERVED
from governance.registry.endpoints import list_models

router = APIRouter(prefix="/console", include_in_schema=False)
DATASETS = "/console/engineer/datasets"
RUNS = "/console/engineer/runs"
MODELS = "/console/engineer/models"

CanReadDatasets = Annotated[Caller, Depends(Page("api:datasets", "read"))]
CanReadRuns = Annotated[Caller, Depends(Page("api:training", "read"))]
CanListModels = Annotated[Caller, Depends(Page("api:models", "list"))]


@router.get("/engineer/datasets")
def datasets_page(
    request: Request, caller: CanReadDatasets, sessions: SessionsDep, settings: SettingsDep
) -> Response:
    rows: list[tuple[DatasetOut, str | None]] = []
    with sessions() as session:
        for listed in list_datasets(caller, session):
            try:
                rows.append((get_dataset(listed.name, settings, caller, session), None))
            except WardenError as exc:
                # One unreadable ledger must not hide the other datasets.
                rows.append((listed, exc.message))
    return render(
        request,
        "engineer/datasets.html.j2",
        {"datasets": sorted(rows, key=lambda r: r[0].name)},
        caller=caller,
    )


def _runs(request: Request, caller: Caller, sessions: SessionsDep, template: str) -> Response:
    with sessions() as session:
        runs = list_runs(caller, session)
    runs.sort(key=lambda r: r.id, reverse=True)
    return render(
        request,
        template,
        {"runs": runs, "in_progress": any(r.status == RESERVED for r in runs)},
        caller=caller,
    )


@router.get("/engineer/runs")
def runs_page(request: Request, caller: CanReadRuns, sessions: SessionsDep) -> Response:
    return _runs(request, caller, sessions, "engineer/runs.html.j2")


@router.get("/engineer/runs/table")
def runs_table(request: Request, caller: CanReadRuns, sessions: SessionsDep) -> Response:
    """The runs table alone, which the page polls while a run is in progress."""
    return _runs(request, caller, sessions, "engineer/runs_table.html.j2")


@router.get("/engineer/models")
def models_page(request: Request, caller: CanListModels, sessions: SessionsDep) -> Response:
    with sessions() as session:
        versions = list_models(caller, session)
    versions.sort(key=lambda m: (m.name, m.registered_at))
    return render(request, "engineer/models.html.j2", {"versions": versions}, caller=caller)
