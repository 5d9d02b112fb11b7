"""From a dataset schema to the model manifest's input sections, and to tensors.

Training encodes with :func:`inference.preprocessing.encode_columns`, the same code that
serving uses, through the manifest features built here, so the two cannot disagree. The
standardisation statistics come from the schema's PUBLIC bounds (see
:meth:`governance.datasets.declaration.FeatureSpec.standardisation`), never from the rows: they
cost no privacy budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from governance.datasets.declaration import DatasetSchema
from inference.manifest import Architecture, Feature, Manifest
from inference.preprocessing import encode_columns

if TYPE_CHECKING:
    import pandas as pd

PREPROCESSING_PROVENANCE = (
    "Numeric features are standardised as (t(x) - mean) / std, where t is the declared "
    "transform (identity or log1p), mean = (t(lo) + t(hi)) / 2 and std = (t(hi) - t(lo)) / 2 "
    "for the PUBLIC bounds lo and hi declared in the dataset schema; categorical features are "
    "one-hot encoded over the PUBLIC category list declared in the schema. No statistic was "
    "computed from the private rows, so preprocessing spends no privacy budget."
)


def manifest_features(schema: DatasetSchema) -> tuple[Feature, ...]:
    """The manifest features (order, statistics, categories) for a schema."""
    out: list[Feature] = []
    for spec in schema.features:
        if spec.type == "numeric":
            mean, std = spec.standardisation()
            out.append(
                Feature(
                    name=spec.name,
                    type="numeric",
                    mean=mean,
                    std=std,
                    transform=spec.transform,
                    lo=spec.lo,
                    hi=spec.hi,
                    out_of_bounds=spec.out_of_bounds,
                )
            )
        else:
            out.append(Feature(name=spec.name, type="categorical", categories=spec.categories))
    return tuple(out)


def input_width(schema: DatasetSchema) -> int:
    """Width of the encoded input vector."""
    return sum(f.width for f in manifest_features(schema))


def manifest_sections(schema: DatasetSchema) -> dict[str, Any]:
    """The ``input_schema``, ``preprocessing`` and ``labels`` sections of a model manifest.

    Args:
        schema: the dataset schema.

    Returns:
        A dict with those three keys, ready to merge into a ``warden.model/1`` document.
    """
    features = manifest_features(schema)
    # Numeric features carry the schema's public bounds, so serving refuses (or clips) what
    # the data could never have held.
    return {
        "input_schema": {"features": [f.schema_entry() for f in features]},
        "preprocessing": {
            "numeric": {f.name: f.statistics() for f in features if f.type == "numeric"},
            "unknown_category": "error",
        },
        "labels": list(schema.label.names),
    }


def encode_features(schema: DatasetSchema, features: pd.DataFrame) -> torch.Tensor:
    """Encode a features frame exactly as a served model will encode its requests.

    Args:
        schema: the dataset schema.
        features: one column per schema feature.

    Returns:
        float32 tensor ``[rows, input_width(schema)]``.
    """
    feats = manifest_features(schema)
    width = sum(f.width for f in feats)
    # encode_columns reads only the features; the remaining fields describe no artifact yet.
    view = Manifest(
        name=schema.name,
        version="encoding",
        architecture=Architecture(kind="logreg", input_dim=width, output_dim=2),
        features=feats,
        labels=schema.label.names,
        weights_file="",
        weights_sha256="",
    )
    return encode_columns(view, {name: features[name].to_numpy() for name in schema.feature_names})
