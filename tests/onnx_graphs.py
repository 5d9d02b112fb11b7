"""Small ONNX graphs built with onnx.helper, good ones and each kind of bad one an import refuses."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inference.manifest import Architecture, Feature, Manifest


def numeric_manifest(
    width: int = 3, *, output: str = "probabilities", kind: str = "probabilities"
) -> Manifest:
    """A manifest of ``width`` numeric features taken as they are, two labels."""
    return Manifest(
        name="imported",
        version="1",
        architecture=Architecture(
            kind="onnx",
            input_dim=width,
            output_dim=2,
            input="X",
            output=output,
            output_kind=kind,
        ),
        features=tuple(Feature(f"f{i}", "numeric", lo=-10.0, hi=10.0) for i in range(width)),
        labels=("no", "yes"),
    )


def linear_schema(**card: str) -> dict[str, Any]:
    """The import schema of :func:`linear_graph` (three numeric features), a full card."""
    return {
        "input": {
            "name": "X",
            "features": [{"name": f"f{i}", "type": "numeric", "lo": -1, "hi": 1} for i in range(3)],
        },
        "output": {"name": "probabilities", "kind": "probabilities", "labels": ["no", "yes"]},
        "card": {
            "trained_by": "risk team",
            "training_data": "bureau extract",
            "code_version": "v1",
            "intended_use": "research",
            "out_of_scope_uses": "decisions about people",
            **card,
        },
    }


def linear_graph(
    width: int = 3,
    *,
    batch: Any = "N",
    domain: str = "",
    opset: int = 17,
    head: str = "Softmax",
    scale: float = 1.0,
    external: bool = False,
    output: str = "probabilities",
) -> bytes:
    """``head(X @ W + b)`` as ONNX bytes: X ``[batch, width]`` float32 → ``[batch, 2]``.

    ``head`` is ``Softmax`` (probabilities), ``Identity`` (logits, or out-of-range values
    declared as probabilities) or ``Log`` (-inf where a logit is 0 with ``scale`` 0).
    """
    rng = np.random.default_rng(7)
    weights = numpy_helper.from_array((rng.normal(size=(width, 2)) * scale).astype(np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "B")
    if external:
        weights.data_location = TensorProto.EXTERNAL
        weights.external_data.add(key="location", value="../../etc/weights.bin")
        weights.ClearField("raw_data")
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["Z"], domain=domain),
        helper.make_node(head, ["Z"], [output], **({"axis": 1} if head == "Softmax" else {})),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch, width])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, 2])],
        [weights, bias],
    )
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="warden-tests")
    model.ir_version = min(model.ir_version, 10)
    return model.SerializeToString()


def check(data: bytes) -> onnx.ModelProto:
    """The parsed model, for tests that edit one."""
    return onnx.load_model_from_string(data)
