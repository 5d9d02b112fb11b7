"""API schemas of the dataset registry."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from governance.datasets.models import Dataset

# A relative path as text: no control characters (NUL is refused before any route).
PATH_TEXT = r"^[^\x00-\x1f\x7f]+$"


class DatasetCreate(BaseModel):
    """Register data already on the server, inside ``<data_dir>/datasets/``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    schema_path: str = Field(
        max_length=1024,
        pattern=PATH_TEXT,
        description="the schema YAML, relative to <data_dir>/datasets/",
    )
    data_path: str | None = Field(
        default=None,
        max_length=1024,
        pattern=PATH_TEXT,
        description="the data file for a split.kind: random schema, relative to "
        "<data_dir>/datasets/ (default: the file the schema names)",
    )
    replace: StrictBool = Field(
        default=False, description="register again under an existing name (the ledger is kept)"
    )


class DatasetLedger(BaseModel):
    """The privacy ledger a dataset charges: it belongs to the rows, not to the name."""

    id: int
    shared_with: list[str] = Field(
        description="other datasets holding the same rows (or a subset or superset of them): "
        "training on any of them charges this one ledger"
    )
    epsilon_spent: float | None = Field(
        description="ε spent so far, all runs under every name composed (null: unbounded, "
        "after a non-private run)"
    )
    cap_epsilon: float = Field(description="the strictest cap of the names sharing it")
    cap_delta: float
    remaining: float
    runs: int


class DatasetOut(BaseModel):
    """A registered dataset: its hashes, sizes, privacy unit and ledger."""

    name: str
    content_hash: str
    file_hashes: dict[str, str]
    privacy_unit: str
    source: dict[str, Any]
    bundled: bool
    train_rows: int
    test_rows: int
    registered_by: str
    registered_at: datetime
    updated_at: datetime
    row_fingerprint: str | None = Field(
        description="sha256 of the parsed rows' multiset: the same rows in any order or "
        "encoding have the same one (null: registered before fingerprints, until re-registered)"
    )
    ledger: DatasetLedger | None = Field(
        default=None, description="the privacy ledger (on registration and on a single dataset)"
    )
    values_clipped: dict[str, dict[str, int]] | None = Field(
        default=None,
        description="per split and column, how many values were clipped to the schema's "
        "public bounds (columns with out_of_bounds: clip); null: registered before bounds "
        "were enforced",
    )

    @classmethod
    def of(cls, row: Dataset, ledger: DatasetLedger | None = None) -> DatasetOut:
        return cls(
            name=row.name,
            content_hash=row.content_hash,
            file_hashes=json.loads(row.file_hashes),
            privacy_unit=row.privacy_unit,
            source=json.loads(row.source),
            bundled=row.bundled,
            train_rows=row.train_rows,
            test_rows=row.test_rows,
            registered_by=row.registered_by,
            registered_at=row.registered_at,
            updated_at=row.updated_at,
            row_fingerprint=row.row_fingerprint,
            ledger=ledger,
            values_clipped=None if row.values_clipped is None else json.loads(row.values_clipped),
        )


class DatasetDetail(DatasetOut):
    """A registered dataset with its schema document."""

    schema_doc: dict[str, Any] = Field(description="the registered schema document")

    @classmethod
    def of(cls, row: Dataset, ledger: DatasetLedger | None = None) -> DatasetDetail:
        return cls(**DatasetOut.of(row, ledger).model_dump(), schema_doc=json.loads(row.schema))
