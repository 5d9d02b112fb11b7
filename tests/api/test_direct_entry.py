"""The lean routes entered directly: the same answers and audit entries as through the stack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, Request, Response
from fastapi.testclient import TestClient
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Receive, Scope, Send

from governance.api.app import WardenApp, create_app
from governance.api.deps import Authorize, Caller
from governance.api.direct import DirectEntry
from governance.api.lean_route import LeanRoute
from governance.config import Settings
from governance.predict.schemas import PredictRequest
from tests.conftest import ArtifactBuilder, WardenFactory, auth, serve_toy
from tests.factories import toy_record

PROBLEM = "application/problem+json"
CanPredict = Annotated[Caller, Depends(Authorize("model:{name}", "predict"))]


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def test_only_a_lean_route_with_its_method_is_claimed(settings: Settings) -> None:
    app = create_app(settings)
    assert isinstance(app, WardenApp) and app.direct is not None
    scope = _scope("POST", "/v1/models/adult-mlp/predict")
    assert app.direct.claim(scope)
    assert scope["path_params"] == {"name": "adult-mlp"}
    assert scope["route"].path == "/v1/models/{name}/predict" and scope["app"] is app
    for method, path in (
        ("GET", "/v1/models/adult-mlp/predict"),  # the route's path, not its method: 405
        ("POST", "/v1/models/adult-mlp/predict/"),  # the router's redirect
        ("POST", "/v1/models"),  # a route that is not lean
        ("POST", "/v1/models/a/b/predict"),
    ):
        assert not app.direct.claim(_scope(method, path)), (method, path)
    assert not app.direct.claim({"type": "lifespan"})


def test_middleware_the_entry_would_skip_is_refused(settings: Settings) -> None:
    app = create_app(settings)
    with pytest.raises(RuntimeError, match="direct entry"):
        app.add_middleware(GZipMiddleware)
    app.direct = None
    app.add_middleware(GZipMiddleware)
    with pytest.raises(TypeError, match="GovernedRequestMiddleware only"):
        DirectEntry(app, max_body_bytes=settings.max_body_bytes)


class Counted:
    """Counts the requests that reach the direct entry's own chain."""

    def __init__(self, direct: DirectEntry) -> None:
        self.inner = direct.governed
        self.paths: list[str] = []
        direct.governed = self  # type: ignore[assignment]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await self.inner(scope, receive, send)


@pytest.fixture
def toy_client(
    app_client: Any, warden: WardenFactory, make_artifact: ArtifactBuilder
) -> Iterator[tuple[Any, str, str, str]]:
    client, stranger = serve_toy(warden, make_artifact)
    warden.policy_change([["g2", "model:ghost", "group:default-models"]])
    auditor = warden.principal("aud", "auditor")
    yield app_client, client, stranger, auditor


def _cases(client: str, stranger: str) -> dict[str, tuple[str, dict[str, str], bytes]]:
    json_type = {"content-type": "application/json"}
    ok = b'{"record": {"age": 30, "hours": 40, "sex": "Male", "job": "a"}}'
    row = '{"age": 30, "hours": 40, "sex": "Male", "job": "a"}'
    return {
        "ok": ("toy", {**auth(client), **json_type}, ok),
        "batch": (
            "toy",
            {**auth(client), **json_type},
            ('{"records": [' + ", ".join([row] * 3) + '], "subject_id": "s-1"}').encode(),
        ),
        "no key": ("toy", json_type, ok),
        "forged key": ("toy", {**auth("wdn_" + "A" * 43), **json_type}, ok),
        "no right": ("toy", {**auth(stranger), **json_type}, ok),
        "unknown model": ("ghost", {**auth(client), **json_type}, ok),
        "malformed json": ("toy", {**auth(client), **json_type}, b'{"record": {'),
        "not utf-8": ("toy", {**auth(client), **json_type}, b'{"record": \xff}'),
        "not json": ("toy", {**auth(client), "content-type": "text/plain"}, ok),
        "bad field": ("toy", {**auth(client), **json_type}, ok.replace(b"30", b'"x"')),
        "nul": ("toy", {**auth(client), **json_type}, ok.replace(b'"a"', b'"a\\u0000"')),
        "too big": ("toy", {**auth(client), **json_type}, ok + b" " * 2_000_000),
        "too many": (
            "toy",
            {**auth(client), **json_type},
            ('{"records": [' + ", ".join([row] * 1025) + "]}").encode(),
        ),
    }


_VOLATILE = {"request_id", "audit_seq", "record_id"}


def _answer(r: Any) -> tuple[Any, ...]:
    body = r.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in _VOLATILE}
    return (
        r.status_code,
        r.headers["content-type"],
        r.headers.get("www-authenticate"),
        bool(r.headers.get("x-request-id")),
        body,
    )


def _entry(http: Any, auditor: str, request_id: str) -> dict[str, Any]:
    """The call's ``api.call`` entry (the first call for a subject also creates its data key)."""
    r = http.get("/v1/audit/entries", params={"limit": 1000}, headers=auth(auditor))
    found = [
        e["document"]
        for e in r.json()["entries"]
        if e["document"]["request_id"] == request_id and e["document"]["event_type"] == "api.call"
    ]
    assert len(found) == 1, (request_id, found)
    return {k: v for k, v in found[0].items() if k not in {"seq", "time", "request_id"}}


def test_answers_and_entries_are_those_of_the_stack(toy_client: Any) -> None:
    http, client, stranger, auditor = toy_client
    app = http.app
    counted = Counted(app.direct)
    answers: dict[str, dict[str, Any]] = {"direct": {}, "stack": {}}
    entries: dict[str, dict[str, Any]] = {"direct": {}, "stack": {}}
    direct = app.direct
    for way in ("direct", "stack"):
        app.direct = direct if way == "direct" else None
        for name, (model, headers, body) in _cases(client, stranger).items():
            # Each 401 here is the first from this client in its window, audited in full
            # (further ones are counted for a summary entry: governance/limits/summary.py).
            app.state.runtime.limits.summaries.take_due(everything=True)
            r = http.post(f"/v1/models/{model}/predict", content=body, headers=headers)
            answers[way][name] = _answer(r)
            entries[way][name] = _entry(http, auditor, r.headers["x-request-id"])
    app.direct = direct
    cases = _cases(client, stranger)
    assert len(counted.paths) == len(cases)  # every case took the direct entry once
    # The stack refuses a declared length over the limit before its router runs, so its entry
    # names no route; the direct entry has matched the route by then, and names it.
    routed = entries["direct"]["too big"]
    assert routed["action"] == "POST /v1/models/{name}/predict"
    assert routed["resource"] == {"path": "/v1/models/{name}/predict"}
    entries["direct"]["too big"] = {
        **routed,
        "action": "POST (no matching route)",
        "resource": {"path": "(no matching route)"},
    }
    for name in cases:
        assert answers["direct"][name] == answers["stack"][name], name
        assert entries["direct"][name] == entries["stack"][name], name
    statuses = {name: answer[0] for name, answer in answers["direct"].items()}
    assert statuses == {
        "ok": 200,
        "batch": 200,
        "no key": 401,
        "forged key": 401,
        "no right": 403,
        "unknown model": 404,
        "malformed json": 422,
        "not utf-8": 422,
        "not json": 422,
        "bad field": 422,
        "nul": 422,
        "too big": 413,
        "too many": 413,
    }
    for name, answer in answers["direct"].items():
        if answer[0] != 200:
            assert answer[1] == PROBLEM, name


def test_an_unexpected_error_is_an_audited_500_problem(
    settings: Settings,
    admin_token: str,
    make_artifact: ArtifactBuilder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(settings)
    router = APIRouter(route_class=LeanRoute)

    @router.post("/v1/models/{name}/explode")
    async def explode(
        name: str, body: PredictRequest, request: Request, caller: CanPredict
    ) -> Response:
        raise RuntimeError("a bug, with a secret in its message: s3cr3t")

    app.router.routes[0:0] = router.routes
    app.direct = DirectEntry(app, max_body_bytes=settings.max_body_bytes)
    assert len(app.direct.routes) == 2
    with TestClient(app, raise_server_exceptions=False) as http:
        factory = WardenFactory(http, admin_token)
        client, _ = serve_toy(factory, make_artifact)
        auditor = factory.principal("aud", "auditor")
        direct = app.direct
        for way in (direct, None):
            app.direct = way
            r = http.post(
                "/v1/models/toy/explode", json={"record": toy_record()}, headers=auth(client)
            )
            assert r.status_code == 500 and r.headers["content-type"] == PROBLEM
            assert "s3cr3t" not in r.text
            entry = _entry(http, auditor, r.headers["x-request-id"])
            assert entry["outcome"] == 500 and entry["decision"] == "allow"
            assert entry["resource"]["path"] == "/v1/models/{name}/explode"
    # The log line names the route's template, never the raw path (it can hold personal data).
    bugs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("unhandled")]
    assert bugs == ["unhandled RuntimeError on /v1/models/{name}/explode"] * 2
