"""What a serving model takes, told to those who may predict with it.

Built from the manifest's input schema only. The example uses no value learned from data: a
bounded number is its bounds' midpoint (the bounds are public by the manifest's contract), an
unbounded one is 0, a category is the first listed; a tensor input's example is zeros.
"""

from __future__ import annotations

from typing import Any

from governance.predict.schemas import ModelSchema
from inference.manifest import Feature, Manifest, TensorInput


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


def _tensor_schema(spec: TensorInput) -> dict[str, Any]:
    integer = spec.dtype.startswith(("int", "uint"))
    schema: dict[str, Any] = {"type": "integer" if integer else "number"}
    for size in reversed(spec.shape):
        schema = {"type": "array", "items": schema, "minItems": size, "maxItems": size}
    return schema


def _zeros(shape: tuple[int, ...], zero: float) -> Any:
    if not shape:
        return zero
    return [_zeros(shape[1:], zero) for _ in range(shape[0])]


def _describe_tensor(manifest: Manifest, spec: TensorInput) -> ModelSchema:
    zero = 0 if spec.dtype.startswith(("int", "uint")) else 0.0
    return ModelSchema(
        model=manifest.name,
        model_version=manifest.version,
        labels=list(manifest.labels),
        features=[],
        input={"kind": "tensor", **spec.to_dict()},
        record_schema=_tensor_schema(spec),
        example={"inputs": [_zeros(spec.shape, zero)]},
    )


def describe(manifest: Manifest) -> ModelSchema:
    """The input schema and an example request of the model version ``manifest`` describes."""
    if manifest.input_tensor is not None:
        return _describe_tensor(manifest, manifest.input_tensor)
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
        input={"kind": "features"},
        record_schema=record_schema,
        example={"record": {f.name: _example_value(f) for f in manifest.features}},
    )
