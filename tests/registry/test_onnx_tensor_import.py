"""A model that is not tabular: a small torch conv net taking a [N, 1, 4, 4] float32 tensor.

Imported with a tensor input, refused a bias audit (it has no features to audit), let through
the fairness gate by a compliance officer's override, promoted and served over HTTP: its
predictions equal ONNX Runtime's on the same tensors, bad tensors are 422s naming the problem,
and a schema that does not match the graph is refused leaving nothing behind.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
import yaml

from tests.conftest import auth
from tests.registry.onnx_models import CARD
from tests.registry.test_onnx_import import _import, _nothing_left, _serve
from tests.servers import SharedServer

LABELS = ["circle", "square", "line"]
SHAPE = [1, 4, 4]


@pytest.fixture(scope="module")
def conv_net() -> bytes:
    """An untrained conv net: the weights do not matter, only that Warden runs them exactly."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(64, len(LABELS)),
    ).eval()
    buffer = io.BytesIO()
    torch.onnx.export(
        net,
        (torch.zeros(2, *SHAPE),),
        buffer,
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    return buffer.getvalue()


def _schema(dtype: str = "float32", shape: list[Any] | None = None) -> str:
    doc = {
        "input": {
            "name": "pixels",
            "kind": "tensor",
            "dtype": dtype,
            "shape": shape or [None, *SHAPE],
        },
        "output": {"name": "logits", "kind": "logits", "labels": LABELS},
        "card": CARD,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _override(server: SharedServer, name: str) -> None:
    r = server.http.post(
        "/v1/fairness/overrides",
        json={
            "model": name,
            "version": "1",
            "justification": "Shape classifier for scanned forms: it sees no person and no "
            "attribute of one; reviewed by the compliance office.",
        },
        headers=auth(server.warden.officer_token()),
    )
    assert r.status_code == 201, r.text


def test_a_tensor_model_is_imported_gated_by_override_and_served(
    common_server: SharedServer, conv_net: bytes
) -> None:
    server = common_server
    engineer = server.warden.principal(server.unique("eng"), "ml_engineer")
    name = server.unique("shapes")
    r = _import(server, engineer, name, conv_net, _schema())
    assert r.status_code == 201, r.text

    # No bias audit is possible: the model takes pixels, not the dataset's attributes.
    r = server.http.post(
        "/v1/fairness/audits",
        json={"model": name, "version": "1", "sensitive": ["sex"], "bootstrap": 0},
        headers=auth(engineer),
    )
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/fairness-not-tabular")
    assert "override" in r.json()["detail"]
    # So the gate refuses it until a compliance officer overrides it.
    r = server.http.post(f"/v1/models/{name}/versions/1/promote", headers=auth(server.admin))
    assert r.status_code == 409, r.text
    _override(server, name)
    client = _serve(server, name, "1")

    described = server.http.get(f"/v1/models/{name}/schema", headers=auth(client))
    assert described.status_code == 200, described.text
    schema = described.json()
    assert schema["input"] == {"kind": "tensor", "dtype": "float32", "shape": [None, *SHAPE]}
    assert schema["features"] == [] and schema["labels"] == LABELS
    r = server.http.post(f"/v1/models/{name}/predict", json=schema["example"], headers=auth(client))
    assert r.status_code == 200, r.text

    x = np.random.default_rng(1).normal(size=(8, *SHAPE)).astype(np.float32)
    r = server.http.post(
        f"/v1/models/{name}/predict", json={"inputs": x.tolist()}, headers=auth(client)
    )
    assert r.status_code == 200, r.text
    served = r.json()
    # Sealed and audited as a tabular call: an auditor reads back the tensors as sent.
    auditor = server.warden.principal(server.unique("aud"), "auditor")
    opened = server.http.post(
        f"/v1/records/{served['record_id']}/decrypt",
        json={"purpose": "review of the shape pilot"},
        headers=auth(auditor),
    )
    assert opened.status_code == 200, opened.text
    assert opened.json()["record"]["audit_seq"] == served["audit_seq"]
    assert np.array_equal(np.array(opened.json()["request"]["inputs"], dtype=np.float32), x)
    assert opened.json()["response"]["predictions"] == served["predictions"]
    (logits,) = onnxruntime.InferenceSession(conv_net).run(["logits"], {"pixels": x})
    expected = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    got = np.array([[p["probabilities"][label] for label in LABELS] for p in served["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    assert [p["label"] for p in served["predictions"]] == [LABELS[i] for i in expected.argmax(1)]

    bad = {
        "shape": ({"inputs": [x[0, :, :3].tolist()]}, r"input 0: has shape \[1, 3, 4\]"),
        "dtype": ({"inputs": [[[["a"] * 4] * 4]]}, "float32: every value must be a number"),
        "records": ({"records": [{"pixels": 1.0}]}, "takes a tensor: send 'inputs'"),
    }
    for case, (body, says) in bad.items():
        r = server.http.post(f"/v1/models/{name}/predict", json=body, headers=auth(client))
        assert r.status_code == 422, (case, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("/invalid-record"), case
        assert re.search(says, r.json()["detail"]), (case, r.json()["detail"])


MISMATCHED = {
    "dtype": ({"dtype": "int64"}, "not a tensor of int64"),
    "shape": ({"shape": [None, 1, 4, 5]}, r"has shape \['batch', 1, 4, 4\]"),
    "rank": ({"shape": [None, 16]}, "not of rank 2"),
}


@pytest.mark.parametrize("case", sorted(MISMATCHED))
def test_a_tensor_schema_the_graph_does_not_match_is_refused_and_leaves_nothing(
    common_server: SharedServer, conv_net: bytes, case: str
) -> None:
    server = common_server
    engineer = server.warden.principal(server.unique("eng"), "ml_engineer")
    name = server.unique("mismatch")
    change, says = MISMATCHED[case]
    r = _import(server, engineer, name, conv_net, _schema(**change))
    assert r.status_code == 422, r.text
    assert re.search(says, r.json()["detail"]), r.json()["detail"]
    _nothing_left(server, engineer, name)
