"""Middleware a deployment adds wraps every route, predict included: standard ASGI composition."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from governance.api.app import create_app
from governance.config import Settings
from tests.conftest import ArtifactBuilder, WardenFactory, auth, serve_toy
from tests.factories import toy_record

ORIGIN = "https://console.example"


class Tracing:
    """A pure-ASGI middleware, as a tracer is: sees every request and tags every answer."""

    def __init__(self, app: ASGIApp, *, seen: list[tuple[str, str, int]]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def traced_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], message["status"]))
                message["headers"] = [*message.get("headers", []), (b"x-trace", b"t-1")]
            await send(message)

        await self.app(scope, receive, traced_send)


@pytest.fixture
def composed(
    settings: Settings, admin_token: str, make_artifact: ArtifactBuilder
) -> Iterator[tuple[TestClient, list[tuple[str, str, int]], str, str]]:
    app: FastAPI = create_app(settings)
    app.add_middleware(GZipMiddleware, minimum_size=1)
    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_methods=["*"])
    seen: list[tuple[str, str, int]] = []
    app.add_middleware(Tracing, seen=seen)
    with TestClient(app, raise_server_exceptions=False) as http:
        factory = WardenFactory(http, admin_token)
        client, _ = serve_toy(factory, make_artifact)
        auditor = factory.principal("aud", "auditor")
        yield http, seen, client, auditor


def _wrapped(r: Any) -> None:
    """The answer went through all three middlewares and Warden's own."""
    assert r.headers["x-trace"] == "t-1"
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["x-request-id"]  # Warden's middleware, inside them


def test_added_middleware_wraps_predict_and_other_routes(composed: Any) -> None:
    http, seen, client, auditor = composed
    seen.clear()
    headers = {"Origin": ORIGIN, "Accept-Encoding": "gzip"}
    rows = [toy_record(i) for i in range(3)]
    predict = http.post(
        "/v1/models/toy/predict", json={"records": rows}, headers={**auth(client), **headers}
    )
    assert predict.status_code == 200, predict.text
    _wrapped(predict)
    assert len(predict.json()["predictions"]) == 3  # decoded by the client

    refused = http.post("/v1/models/toy/predict", json={"record": toy_record()}, headers=headers)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    _wrapped(refused)

    entries = http.get(
        "/v1/audit/entries", params={"limit": 1000}, headers={**auth(auditor), **headers}
    )
    assert entries.status_code == 200
    _wrapped(entries)
    # The predict call's entry is in the log the other route reads.
    predicted = [
        e["document"]
        for e in entries.json()["entries"]
        if e["document"]["request_id"] == predict.headers["x-request-id"]
        and e["document"]["event_type"] == "api.call"
    ]
    assert [e["action"] for e in predicted] == ["predict"]

    assert seen == [
        ("POST", "/v1/models/toy/predict", 200),
        ("POST", "/v1/models/toy/predict", 401),
        ("GET", "/v1/audit/entries", 200),
    ]


def test_a_preflight_is_answered_by_the_added_cors_middleware(composed: Any) -> None:
    http, seen, _, _ = composed
    seen.clear()
    r = http.options(
        "/v1/models/toy/predict",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
    assert seen == [("OPTIONS", "/v1/models/toy/predict", 200)]


def test_gzip_is_on_the_wire(composed: Any) -> None:
    http, _, client, _ = composed
    with http.stream(
        "POST",
        "/v1/models/toy/predict",
        json={"record": toy_record()},
        headers={**auth(client), "Accept-Encoding": "gzip"},
    ) as r:
        body = b"".join(r.iter_raw())
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert gzip.decompress(body).startswith(b'{"request_id":')
