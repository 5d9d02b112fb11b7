"""Tensor inputs: the manifest's declaration, the import schema's, and untrusted nested lists."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from governance.registry.import_schema import ImportSchemaError, parse_import_schema
from inference.errors import InputValidationError, ManifestError
from inference.manifest import TensorInput, parse_manifest
from inference.tensors import encode_tensors

IMAGE = TensorInput(dtype="float32", shape=(1, 2, 2))
TOKENS = TensorInput(dtype="int32", shape=(3,))


def _schema(input_doc: str) -> bytes:
    return f"input: {input_doc}\noutput: {{name: y, kind: logits, labels: [a, b]}}\n".encode()


def test_inputs_are_stacked_flat_in_the_declared_dtype() -> None:
    x = encode_tensors(IMAGE, [[[[1, 2], [3, 4]]], [[[0.5, -1.0], [0.0, 2.5]]]])
    assert x.dtype == torch.float32
    assert x.tolist() == [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.5]]
    tokens = encode_tensors(TOKENS, [[1, 2, 3]])
    assert tokens.dtype == torch.int32 and tokens.tolist() == [[1, 2, 3]]


BAD: dict[str, tuple[TensorInput, Any, str]] = {
    "wrong-shape": (IMAGE, [[[1, 2]]], r"has shape \[1, 1, 2\], the model takes \[1, 2, 2\]"),
    "ragged": (IMAGE, [[[1, 2], [3]]], "not a rectangular nested list"),
    "scalar": (IMAGE, 3.0, "expected a nested list"),
    "strings": (IMAGE, [[["a", "b"], ["c", "d"]]], "every value must be a number"),
    "booleans": (IMAGE, [[[True, False], [True, True]]], "every value must be a number"),
    "null": (IMAGE, [[[None, 1], [2, 3]]], "every value must be a number"),
    "not-finite": (IMAGE, [[[float("nan"), 1], [2, 3]]], "finite"),
    "past-float32": (IMAGE, [[[1e39, 1], [2, 3]]], "finite"),
    "floats-for-integers": (TOKENS, [1.5, 2, 3], "int32: every value must be an integer"),
    "past-int32": (TOKENS, [1, 2, 1 << 40], "outside the range of int32"),
    "past-int64": (TOKENS, [1, 2, 1 << 70], "every value must be an integer"),
    "past-json": (TensorInput("int64", (3,)), [1, 2, -(1 << 63)], r"beyond 2\*\*53 - 1"),
    "past-json-as-float": (IMAGE, [[[1 << 60, 1], [2, 3]]], r"beyond 2\*\*53 - 1"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_are_refused_naming_the_problem(case: str) -> None:
    spec, value, says = BAD[case]
    with pytest.raises(InputValidationError, match=says) as info:
        encode_tensors(spec, [np.zeros(spec.shape).astype(spec.dtype).tolist(), value])
    assert info.value.record == 1


def test_the_import_schema_declares_a_tensor_and_the_manifest_round_trips() -> None:
    schema = parse_import_schema(
        _schema("{name: pixels, kind: tensor, dtype: float32, shape: [null, 1, 4, 4]}")
    )
    manifest = parse_manifest(schema.manifest_doc("digits", "1"))
    assert manifest.input_tensor == TensorInput(dtype="float32", shape=(1, 4, 4))
    assert manifest.architecture.input_dim == 16 and manifest.features == ()
    assert parse_manifest(manifest.to_dict()) == manifest


SCHEMA_PROBLEMS = {
    "fixed batch": ("{name: p, kind: tensor, dtype: float32, shape: [2, 4]}", "must be dynamic"),
    "dtype": ("{name: p, kind: tensor, dtype: float16, shape: [null, 4]}", "input.dtype"),
    "no sizes": ("{name: p, kind: tensor, dtype: int64, shape: [null]}", "input.shape"),
    "dynamic size": ("{name: p, kind: tensor, dtype: int64, shape: [null, null]}", "input.shape"),
    "features too": (
        "{name: p, kind: tensor, dtype: int64, shape: [null, 3], features: []}",
        "input.features: unknown key for a tensor input",
    ),
    "kind": ("{name: p, kind: image}", "input.kind: features or tensor"),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_PROBLEMS))
def test_a_bad_tensor_declaration_is_refused(case: str) -> None:
    doc, says = SCHEMA_PROBLEMS[case]
    with pytest.raises(ImportSchemaError, match=says):
        parse_import_schema(_schema(doc))


def test_the_manifest_refuses_a_tensor_with_features_or_outside_an_onnx_graph() -> None:
    doc = parse_import_schema(
        _schema("{name: p, kind: tensor, dtype: int64, shape: [null, 3]}")
    ).manifest_doc("m", "1")
    with_features = {
        **doc,
        "input_schema": {**doc["input_schema"], "features": [{"name": "age", "type": "numeric"}]},
    }
    with pytest.raises(ManifestError, match="no features"):
        parse_manifest(with_features)
    torch_model = {**doc, "architecture": {**doc["architecture"], "kind": "logreg"}}
    with pytest.raises(ManifestError, match="only an imported"):
        parse_manifest(torch_model)
