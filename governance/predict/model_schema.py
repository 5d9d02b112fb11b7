"""What a serving model takes, told to those who may predict with it.

Built from the manifest's input schema only. The example uses no value learned from data: a
bounded number is its bounds' midpoint (the bounds are public by the manifest's contract), an
unbounded one is 0, a category is the first listed.
"""

from __future__ import annotations

from typing import Any

from governance.predict.schemas import ModelSchema
from inference.manifest import Feature, Manifest


def _field_schema(feature: Feature, *, closed: bool) -> dict[str, Any]:
    if feature.type == "categorical":
        schema: dict[str, Any] = {"type": "string"}
        if closed:
            schema["enum"] = list(feature.categories)
        return schema
    schema = {"type": "number"}
    if feature.lo is not None and feature.hi is not None and feature.out_of_bounds == "refuse":
        schema.update(minimum=feature.lo, maximum=feature.hi)
    if feature.transform == "log1p":
        schema["exclusiveMinimum"] = -1
    return schema


def _example_value(feature: Feature) -> str | float:
    if feature.type == "categorical":
        return feature.categories[0] if feature.categories else ""
    if feature.lo is not None and feature.hi is not None:
        return (feature.lo + feature.hi) / 2
    return 0.0


def describe(manifest: Manifest) -> ModelSchema:
    """The input schema and an example request of the model version ``manifest`` describes."""
    closed = manifest.unknown_category == "error"
    names = [f.name for f in manifest.features]
    record_schema = {
        "type": "object",
        "properties": {f.name: _field_schema(f, closed=closed) for f in manifest.features},
        "required": names,
        "additionalProperties": False,
    }
    return ModelSchema(
        model=manifest.name,
        model_version=manifest.version,
        labels=list(manifest.labels),
        features=[f.schema_entry() for f in manifest.features],
        record_schema=record_schema,
        example={"record": {f.name: _example_value(f) for f in manifest.features}},
    )
