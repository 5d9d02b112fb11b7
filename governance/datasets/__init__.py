"""Datasets: schemas (public bounds and categories), tabular loading, hashing and encoding.

The names below load on first use (PEP 562): the dataset and ledger tables
(``governance.datasets.models``) are imported by every server start and CLI command, which
must not pay for pandas and torch, which loading and encoding need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from governance.datasets.declaration import (
        DatasetSchema,
        FeatureSpec,
        load_schema,
        parse_schema,
    )
    from governance.datasets.encoding import (
        PREPROCESSING_PROVENANCE,
        encode_features,
        input_width,
        manifest_features,
        manifest_sections,
    )
    from governance.datasets.errors import DatasetChanged, DatasetError, DatasetFileMissing
    from governance.datasets.tabular import (
        ADULT_SCHEMA,
        LoadedDataset,
        TabularSplit,
        content_hash,
        load_adult,
        load_dataset,
        verify_hash,
    )

_WHERE = {
    "DatasetSchema": "declaration",
    "FeatureSpec": "declaration",
    "load_schema": "declaration",
    "parse_schema": "declaration",
    "PREPROCESSING_PROVENANCE": "encoding",
    "encode_features": "encoding",
    "input_width": "encoding",
    "manifest_features": "encoding",
    "manifest_sections": "encoding",
    "DatasetChanged": "errors",
    "DatasetError": "errors",
    "DatasetFileMissing": "errors",
    "ADULT_SCHEMA": "tabular",
    "LoadedDataset": "tabular",
    "TabularSplit": "tabular",
    "content_hash": "tabular",
    "load_adult": "tabular",
    "load_dataset": "tabular",
    "verify_hash": "tabular",
}

__all__ = [
    "ADULT_SCHEMA",
    "PREPROCESSING_PROVENANCE",
    "DatasetChanged",
    "DatasetError",
    "DatasetFileMissing",
    "DatasetSchema",
    "FeatureSpec",
    "LoadedDataset",
    "TabularSplit",
    "content_hash",
    "encode_features",
    "input_width",
    "load_adult",
    "load_dataset",
    "load_schema",
    "manifest_features",
    "manifest_sections",
    "parse_schema",
    "verify_hash",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
