"""Models trained elsewhere, imported as ONNX and governed as Warden's own, over HTTP.

A scikit-learn gradient-boosted model and a small torch network are trained on Adult outside
Warden, converted to ONNX and imported; each is audited, gated, mitigated or approved, promoted
and served, and its predictions through Warden equal ONNX Runtime's on the same rows. Every
kind of bad import is refused with a problem and leaves nothing registered and nothing on disk.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import onnxruntime
import pytest
import torch

from governance.datasets.tabular import LoadedDataset, load_adult
from governance.registry.importing import WORK_FOLDER
from inference.postprocess import apply_group_threshold
from tests.conftest import auth
from tests.onnx_graphs import linear_graph
from tests.registry.onnx_models import (
    Trained,
    gradient_boosting,
    schema_doc,
    schema_text,
    torch_network,
)
from tests.servers import SharedServer

pytestmark = pytest.mark.slow

ROWS = 64


@pytest.fixture(scope="module")
def adult() -> LoadedDataset:
    return load_adult()


@pytest.fixture(scope="module")
def hgb(adult: LoadedDataset) -> Trained:
    return gradient_boosting(adult)


@pytest.fixture(scope="module")
def net(adult: LoadedDataset) -> Trained:
    return torch_network(adult)


def _import(
    server: SharedServer,
    token: str,
    name: str,
    graph: bytes,
    schema: str,
    *,
    version: str = "1",
    filename: str = "model.onnx",
) -> httpx.Response:
    return server.http.post(
        "/v1/models/import",
        data={"name": name, "version": version, "schema": schema},
        files={"onnx": (filename, graph, "application/octet-stream")},
        headers=auth(token),
    )


def _audit(server: SharedServer, token: str, name: str, version: str) -> dict[str, Any]:
    r = server.http.post(
        "/v1/fairness/audits",
        json={"model": name, "version": version, "sensitive": ["sex"], "bootstrap": 0},
        headers=auth(token),
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _ratio(audit: dict[str, Any]) -> float:
    (sex,) = [a for a in audit["result"]["audits"] if a["name"] == "sex"]
    return float(sex["disparities"]["demographic_parity_ratio"]["value"])


def _approve(server: SharedServer, name: str, version: str, audit: dict[str, Any]) -> None:
    """A compliance officer accepts a version the audit did not pass (a gate override)."""
    if audit["passed"]:
        return
    r = server.http.post(
        "/v1/fairness/overrides",
        json={
            "model": name,
            "version": version,
            "justification": "Research pilot on recorded decisions only; the residual gap was "
            "reviewed and accepted by the compliance office.",
        },
        headers=auth(server.warden.officer_token()),
    )
    assert r.status_code == 201, r.text


def _serve(server: SharedServer, name: str, version: str) -> str:
    """A compliance officer lets clients call the model; the admin promotes it. A client key."""
    server.warden.policy_change(
        [["g2", f"model:{name}", "group:default-models"]], reason="imported model pilot"
    )
    r = server.http.post(
        f"/v1/models/{name}/versions/{version}/promote", headers=auth(server.admin)
    )
    assert r.status_code == 200, r.text
    return server.warden.principal(server.unique("app"), "client", kind="service")


def _predict(
    server: SharedServer, token: str, name: str, records: list[dict[str, Any]]
) -> dict[str, Any]:
    r = server.http.post(
        f"/v1/models/{name}/predict", json={"records": records}, headers=auth(token)
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _nothing_left(server: SharedServer, engineer: str, name: str) -> None:
    r = server.http.get("/v1/models", headers=auth(engineer))
    assert r.status_code == 200, r.text
    assert name not in {m["name"] for m in r.json()}
    models = server.settings.resolved_models_dir
    assert not (models / name).exists()
    assert not any((models / WORK_FOLDER).iterdir())


def test_gradient_boosting_from_scikit_learn_is_governed_end_to_end(
    shared_server: SharedServer, adult: LoadedDataset, hgb: Trained
) -> None:
    server = shared_server
    engineer = server.warden.principal(server.unique("eng"), "ml_engineer")
    name = server.unique("credit-hgb")
    schema = schema_text(schema_doc(adult, output="probabilities", kind="probabilities"))
    r = _import(server, engineer, name, hgb.onnx, schema)
    assert r.status_code == 201, r.text
    assert r.json()["stage"] == "registered"

    r = server.http.get(f"/v1/models/{name}", params={"version": "1"}, headers=auth(engineer))
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["manifest"]["architecture"]["kind"] == "onnx"
    assert detail["manifest"]["weights"]["file"] == "model.onnx"
    assert detail["dp_claim"]["status"] == "none"

    # The bias audit runs the graph through the same core: it fails the four-fifths rule.
    audit = _audit(server, engineer, name, "1")
    assert audit["passed"] is False and _ratio(audit) < 0.8
    r = server.http.post(f"/v1/models/{name}/versions/1/promote", headers=auth(server.admin))
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("/fairness-gate")

    # Threshold mitigation on the graph's scores makes a new version, which passes.
    r = server.http.post(
        "/v1/fairness/mitigations",
        json={"model": name, "version": "1", "sensitive": "sex"},
        headers=auth(engineer),
    )
    assert r.status_code == 201, r.text
    mitigated = r.json()["version"]
    after = _audit(server, engineer, name, mitigated)
    assert _ratio(after) > _ratio(audit)
    _approve(server, name, mitigated, after)
    client = _serve(server, name, mitigated)

    records = adult.test.features.iloc[:ROWS].to_dict(orient="records")
    served = _predict(server, client, name, records)
    assert served["model_version"] == mitigated
    # ONNX Runtime on the same rows, then the published thresholds: the same probabilities.
    (probs,) = onnxruntime.InferenceSession(hgb.onnx).run(
        ["probabilities"], {"X": hgb.x_test[:ROWS]}
    )
    r = server.http.get(f"/v1/models/{name}", params={"version": mitigated}, headers=auth(engineer))
    manifest = r.json()["manifest"]
    spec = manifest["postprocessing"]
    positive = manifest["labels"][spec["positive_label"]]
    expected, _ = apply_group_threshold(
        spec,
        torch.from_numpy(probs[:, spec["positive_label"]]),
        [str(rec[spec["feature"]]) for rec in records],
        torch.zeros(ROWS, dtype=torch.float64),
    )
    got = [p["probabilities"][positive] for p in served["predictions"]]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-6, rtol=0)

    ready = server.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["runtimes"][name] == "onnxruntime/CPUExecutionProvider"


def test_a_torch_network_exported_to_onnx_serves_as_onnxruntime_runs_it(
    shared_server: SharedServer, adult: LoadedDataset, net: Trained
) -> None:
    server = shared_server
    engineer = server.warden.principal(server.unique("eng"), "ml_engineer")
    name = server.unique("credit-net")
    schema = schema_text(schema_doc(adult, output="logits", kind="logits"))
    r = _import(server, engineer, name, net.onnx, schema)
    assert r.status_code == 201, r.text
    _approve(server, name, "1", _audit(server, engineer, name, "1"))
    client = _serve(server, name, "1")
    records = adult.test.features.iloc[:ROWS].to_dict(orient="records")
    served = _predict(server, client, name, records)
    (logits,) = onnxruntime.InferenceSession(net.onnx).run(["logits"], {"X": net.x_test[:ROWS]})
    expected = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    labels = list(adult.schema.label.names)
    got = np.array([[p["probabilities"][label] for label in labels] for p in served["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    assert [p["label"] for p in served["predictions"]] == [
        labels[int(i)] for i in expected.argmax(axis=1)
    ]


def test_an_incomplete_card_registers_but_may_not_serve(
    shared_server: SharedServer, adult: LoadedDataset, net: Trained
) -> None:
    server = shared_server
    engineer = server.warden.principal(server.unique("eng"), "ml_engineer")
    name = server.unique("credit-nocard")
    schema = schema_text(schema_doc(adult, output="logits", kind="logits", code_version=""))
    r = _import(server, engineer, name, net.onnx, schema)
    assert r.status_code == 201, r.text
    _approve(server, name, "1", _audit(server, engineer, name, "1"))
    r = server.http.post(f"/v1/models/{name}/versions/1/promote", headers=auth(server.admin))
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"].endswith("/incomplete-model-card")
    assert problem["missing"] == ["code_version"]


def _pickled() -> bytes:
    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2), buffer)
    return buffer.getvalue()


# case: (the file from the network's graph and its width, its name, the schema's output and
# kind, what the problem says)
Case = tuple[Callable[[bytes, int], bytes], str, str, str, str]
BAD: dict[str, Case] = {
    "truncated": (lambda g, w: g[: len(g) // 3], "model.onnx", "logits", "logits", "corrupt"),
    "custom-op": (
        lambda g, w: linear_graph(w, domain="com.example.ops"),
        "model.onnx",
        "probabilities",
        "probabilities",
        "custom operator domain",
    ),
    "no-dynamic-batch": (
        lambda g, w: linear_graph(w, batch=1),
        "model.onnx",
        "probabilities",
        "probabilities",
        "fixed batch dimension",
    ),
    "mismatched-schema": (
        lambda g, w: linear_graph(w - 3),
        "model.onnx",
        "probabilities",
        "probabilities",
        "columns but the schema encodes",
    ),
    "not-finite": (
        lambda g, w: linear_graph(w, head="Log", scale=0.0),
        "model.onnx",
        "probabilities",
        "logits",
        "not finite",
    ),
    "pickle": (
        lambda g, w: pickle.dumps({"coef": [1.0]}),
        "model.pkl",
        "logits",
        "logits",
        "convert it to ONNX",
    ),
    "torch-save": (lambda g, w: _pickled(), "model.pt", "logits", "logits", "convert it to ONNX"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_imports_are_refused_and_leave_nothing(
    shared_server: SharedServer, adult: LoadedDataset, net: Trained, case: str
) -> None:
    server = shared_server
    engineer = server.warden.principal(server.unique("eng"), "ml_engineer")
    name = server.unique("bad")
    make, filename, output, kind, says = BAD[case]
    graph = make(net.onnx, net.x_test.shape[1])
    schema = schema_text(schema_doc(adult, output=output, kind=kind))
    r = _import(server, engineer, name, graph, schema, filename=filename)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert re.search(says, r.json()["detail"]), r.json()["detail"]
    _nothing_left(server, engineer, name)


def _endless(chunk: int = 1 << 20) -> Iterator[bytes]:
    """A multipart body that would be 2 GB, generated, never on disk here."""
    yield (
        b'--b\r\nContent-Disposition: form-data; name="onnx"; filename="big.onnx"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    block = b"\x08" * chunk
    for _ in range((2 << 30) // chunk):
        yield block


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_2gb_upload_is_refused_early_and_leaves_nothing(
    shared_server: SharedServer, declared: bool
) -> None:
    server = shared_server
    engineer = server.warden.principal(server.unique("eng"), "ml_engineer")
    headers = {**auth(engineer), "content-type": "multipart/form-data; boundary=b"}
    if declared:
        headers["content-length"] = str(2 << 30)
    sent = 0

    def counted() -> Iterator[bytes]:
        nonlocal sent
        for block in _endless():
            sent += len(block)
            yield block

    try:
        r = server.http.post("/v1/models/import", content=counted(), headers=headers)
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        r = None  # the server answered and closed while the client was still sending
    if r is not None:
        assert r.status_code == 413, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    limit = server.settings.model_import_max_bytes
    assert sent < limit + (64 << 20)  # refused near the limit, not after 2 GB
    assert not any((server.settings.resolved_models_dir / WORK_FOLDER).glob("*"))
