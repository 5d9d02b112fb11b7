"""Routes of training runs and the privacy-budget ledger.

``POST /v1/training/runs`` trains synchronously in a worker thread, once the heavy-job queue
(:mod:`governance.jobs`) gives it a slot, and answers when the run has finished (tens of
seconds for Adult on CPU). The ledger reservation is committed before
training starts, so a client that disconnects, or a server that dies, still leaves the planned
budget charged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, status
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import JobsDep, PolicyDep, SettingsDep
from governance.api.deps import Authorize, Caller
from governance.config import Settings
from governance.db.base import DbInt
from governance.errors import Forbidden
from governance.kit.problems import responses
from governance.kit.transaction import SessionsDep, TransactionDep
from governance.policy.engine import PolicyEngine
from governance.privacy.schemas import LedgerOut, TrainingRunCreate, TrainingRunOut
from governance.privacy.service import training

router = APIRouter(tags=["training", "privacy"])

CanTrain = Annotated[Caller, Depends(Authorize("api:training", "train"))]
CanReadRuns = Annotated[Caller, Depends(Authorize("api:training", "read"))]
CanReadLedger = Annotated[Caller, Depends(Authorize("api:privacy", "read"))]


@dataclass(frozen=True)
class _Training:
    sessions: sessionmaker[Session]
    settings: Settings
    policy: PolicyEngine


def _train(deps: _Training, caller: Caller, body: TrainingRunCreate) -> TrainingRunOut:
    if body.register_model:
        # Registering the artifact is the registry's own right: training does not imply it.
        decision = deps.policy.current.enforce(caller.name, "api:models", "register")
        if not decision.allowed:
            raise Forbidden(f"{caller.name} may not register models; train with register=false")
    run = training.run(deps.sessions, caller.ctx, settings=deps.settings, request=body.to_request())
    with deps.sessions.begin() as session:
        found, dataset = training.get(session, run.id)
        return TrainingRunOut.of(found, dataset)


@router.post(
    "/v1/training/runs",
    operation_id="create_training_run",
    status_code=status.HTTP_201_CREATED,
    responses=responses(404, 409, 422, 500, 503),
)
async def create_run(
    body: TrainingRunCreate,
    jobs: JobsDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    policy: PolicyDep,
    caller: CanTrain,
) -> TrainingRunOut:
    """Train a model (DP-SGD unless private is false) under the dataset's privacy budget."""
    # The run's transactions are short (reserve, then charge); the training between them waits
    # its turn in the heavy-job queue, so a burst of runs cannot starve predictions of CPU.
    deps = _Training(sessions, settings, policy)
    return await jobs.run("training", _train, deps, caller, body)


@router.get("/v1/training/runs", operation_id="list_training_runs", responses=responses())
def list_runs(
    caller: CanReadRuns, session: TransactionDep, dataset: str | None = None
) -> list[TrainingRunOut]:
    """List training runs (every run that touched a dataset, failed or aborted ones included)."""
    return [TrainingRunOut.of(r, d) for r, d in training.list(session, dataset)]


@router.get("/v1/training/runs/{run_id}", operation_id="get_training_run", responses=responses(404))
def get_run(run_id: DbInt, caller: CanReadRuns, session: TransactionDep) -> TrainingRunOut:
    """One training run."""
    run, dataset = training.get(session, run_id)
    return TrainingRunOut.of(run, dataset)


@router.get(
    "/v1/privacy/ledger/{dataset}", operation_id="get_privacy_ledger", responses=responses(404, 503)
)
def get_ledger(
    dataset: str, settings: SettingsDep, caller: CanReadLedger, session: TransactionDep
) -> LedgerOut:
    """A dataset's privacy budget: its cap, and ε spent, recomposed and summed."""
    return LedgerOut.of(training.ledger(session, settings, dataset))
