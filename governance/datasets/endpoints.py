"""Routes of the dataset registry.

API registrations read files already on the server, and only inside ``<data_dir>/datasets/``:
an API caller cannot make the service read an arbitrary path. The CLI (the local operator)
may register data anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, status

from governance.api.dependencies import SettingsDep
from governance.api.deps import Authorize, Caller
from governance.datasets.schemas import DatasetCreate, DatasetDetail, DatasetOut
from governance.datasets.service import datasets
from governance.kit.problems import responses
from governance.kit.transaction import SessionsDep, TransactionDep
from governance.privacy.service import training

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

CanRead = Annotated[Caller, Depends(Authorize("api:datasets", "read"))]
CanRegister = Annotated[Caller, Depends(Authorize("api:datasets", "register"))]


def datasets_root(data_dir: Path) -> Path:
    """The only folder API registrations may read from."""
    return data_dir / "datasets"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=responses(404, 409, 422, 503),
)
def register_dataset(
    body: DatasetCreate, sessions: SessionsDep, settings: SettingsDep, caller: CanRegister
) -> DatasetOut:
    """Register a dataset: validate its schema and rows, record its hashes, place its ledger.

    Rows that match an already registered dataset's (in any order or encoding, or a subset or
    superset of them) join that dataset's privacy ledger; ``ledger.shared_with`` names it.
    """
    root = datasets_root(settings.data_dir)
    with sessions.begin() as session:
        row = datasets.register(
            session,
            caller.ctx,
            name=body.name,
            schema_path=root / body.schema_path,
            data_path=root / body.data_path if body.data_path else None,
            replace=body.replace,
            allowed_root=root,
        )
        return DatasetOut.of(row, training.dataset_ledger(session, settings, row))


@router.get("", responses=responses())
def list_datasets(caller: CanRead, session: TransactionDep) -> list[DatasetOut]:
    """List registered datasets."""
    return [DatasetOut.of(r) for r in datasets.list(session)]


@router.get("/{name}", responses=responses(404, 503))
def get_dataset(
    name: str, settings: SettingsDep, caller: CanRead, session: TransactionDep
) -> DatasetDetail:
    """A registered dataset with its schema and the privacy ledger it charges."""
    row = datasets.get(session, name)
    return DatasetDetail.of(row, training.dataset_ledger(session, settings, row))
