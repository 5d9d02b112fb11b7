"""Datasets: schemas (public bounds and categories), tabular loading, hashing and encoding."""

from governance.datasets.declaration import DatasetSchema, FeatureSpec, load_schema, parse_schema
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
