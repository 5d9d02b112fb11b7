"""Predict's answers through the ordinary stack: each a problem+json with its own audit entry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, Request, Response
from fastapi.testclient import TestClient

from governance.api.app import create_app
from governance.api.deps import Authorize, Caller
from governance.config import Settings
from tests.conftest import ArtifactBuilder, WardenFactory, auth, serve_toy
from tests.factories import toy_record

PROBLEM = "application/problem+json"
CanPredict = Annotated[Caller, Depends(Authorize("model:{name}", "predict"))]


@pytest.fixture
def toy_client(
    app_client: Any, warden: WardenFactory, make_artifact: ArtifactBuilder
) -> Iterator[tuple[Any, str, str, str]]:
    client, stranger = serve_toy(warden, make_artifact)
    warden.policy_change([["g2", "model:ghost", "group:default-models"]])
    auditor = warden.principal("aud", "auditor")
    yield app_client, client, stranger, auditor


def _cases(client: str, stranger: str) -> dict[str, tuple[str, dict[str, str], bytes, int]]:
    json_type = {"content-type": "application/json"}
    ok = b'{"record": {"age": 30, "hours": 40, "sex": "Male", "job": "a"}}'
    row = '{"age": 30, "hours": 40, "sex": "Male", "job": "a"}'
    mine = {**auth(client), **json_type}
    return {
        "ok": ("toy", mine, ok, 200),
        "batch": (
            "toy",
            mine,
            ('{"records": [' + ", ".join([row] * 3) + '], "subject_id": "s-1"}').encode(),
            200,
        ),
        "no key": ("toy", json_type, ok, 401),
        "forged key": ("toy", {**auth("wdn_" + "A" * 43), **json_type}, ok, 401),
        "no right": ("toy", {**auth(stranger), **json_type}, ok, 403),
        "unknown model": ("ghost", mine, ok, 404),
        "malformed json": ("toy", mine, b'{"record": {', 422),
        "not utf-8": ("toy", mine, b'{"record": \xff}', 422),
        "not json": ("toy", {**auth(client), "content-type": "text/plain"}, ok, 422),
        "bad field": ("toy", mine, ok.replace(b"30", b'"x"'), 422),
        "nul": ("toy", mine, ok.replace(b'"a"', b'"a\\u0000"'), 422),
        "too big": ("toy", mine, ok + b" " * 2_000_000, 413),
        "too many": (
            "toy",
            mine,
            ('{"records": [' + ", ".join([row] * 1025) + "]}").encode(),
            413,
        ),
    }


def _entry(http: Any, auditor: str, request_id: str) -> dict[str, Any]:
    """The call's ``api.call`` entry (the first call for a subject also creates its data key)."""
    r = http.get("/v1/audit/entries", params={"limit": 1000}, headers=auth(auditor))
    found = [
        e["document"]
        for e in r.json()["entries"]
        if e["document"]["request_id"] == request_id and e["document"]["event_type"] == "api.call"
    ]
    assert len(found) == 1, (request_id, found)
    return dict(found[0])


def test_every_answer_is_audited_once(toy_client: Any) -> None:
    http, client, stranger, auditor = toy_client
    for name, (model, headers, body, status) in _cases(client, stranger).items():
        # Each 401 here is the first from this client in its window, audited in full
        # (further ones are counted for a summary entry: governance/limits/summary.py).
        http.app.state.runtime.limits.summaries.take_due(everything=True)
        r = http.post(f"/v1/models/{model}/predict", content=body, headers=headers)
        assert r.status_code == status, (name, r.text)
        request_id = r.headers["x-request-id"]
        assert request_id, name
        if status != 200:
            problem = r.json()
            assert r.headers["content-type"] == PROBLEM, name
            assert problem["status"] == status and problem["request_id"] == request_id, name
        if status == 401:
            assert r.headers["www-authenticate"] == "Bearer", name
        entry = _entry(http, auditor, request_id)
        assert entry["outcome"] == status, name
        if status == 200:
            assert entry["action"] == "predict" and entry["decision"] == "allow", name
            assert entry["input_digest"] and entry["output_digest"], name
            assert entry["actor"]["name"] == "app", name
        elif status in (401, 403):
            assert entry["decision"] == "deny", name
            assert entry["action"] == "POST /v1/models/{name}/predict", name
        elif name == "too big":
            # Refused on its declared length, before routing or authentication.
            assert entry["action"] == "POST (no matching route)", entry
            assert entry["actor"]["name"] is None and entry["decision"] == "n/a"
        else:
            # Authorized, then refused: the entry names the caller and the route, never the path.
            assert entry["decision"] == "allow" and entry["actor"]["name"] == "app", name
            assert entry["action"] == "POST /v1/models/{name}/predict", name
            assert "ghost" not in entry["action"], name


def test_an_unexpected_error_is_an_audited_500_problem(
    settings: Settings,
    admin_token: str,
    make_artifact: ArtifactBuilder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(settings)
    router = APIRouter()

    @router.post("/v1/models/{name}/explode")
    async def explode(name: str, request: Request, caller: CanPredict) -> Response:
        raise RuntimeError("a bug, with a secret in its message: s3cr3t")

    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as http:
        factory = WardenFactory(http, admin_token)
        client, _ = serve_toy(factory, make_artifact)
        auditor = factory.principal("aud", "auditor")
        r = http.post("/v1/models/toy/explode", json={"record": toy_record()}, headers=auth(client))
        assert r.status_code == 500 and r.headers["content-type"] == PROBLEM
        assert "s3cr3t" not in r.text
        entry = _entry(http, auditor, r.headers["x-request-id"])
        assert entry["outcome"] == 500 and entry["decision"] == "allow"
        assert entry["resource"]["path"] == "/v1/models/{name}/explode"
    # The log line names the route's template, never the raw path (it can hold personal data).
    bugs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("unhandled")]
    assert bugs == ["unhandled RuntimeError on /v1/models/{name}/explode"]


def test_the_predict_route_is_documented(settings: Settings) -> None:
    app = create_app(settings)
    document = app.openapi()
    operation = document["paths"]["/v1/models/{name}/predict"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/PredictRequest"}
    schema = document["components"]["schemas"]["PredictRequest"]
    assert schema["title"] == "PredictRequest"
    assert {"record", "records", "subject_id"} <= set(schema["properties"])
    assert {"400", "401", "403", "404", "413", "422", "503"} <= set(operation["responses"])
