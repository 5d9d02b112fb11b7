"""LeanRoute: declared like any FastAPI route, refuses to build what it cannot resolve."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute

from governance.api.app import create_app
from governance.api.deps import Authorize, Caller
from governance.api.lean_route import LeanRoute
from governance.config import Settings
from governance.predict.schemas import PredictRequest

CanRead = Annotated[Caller, Depends(Authorize("model:{name}", "read"))]


def test_the_predict_route_is_lean_and_documented(settings: Settings) -> None:
    app = create_app(settings)
    routes = [r for r in app.routes if getattr(r, "path", "") == "/v1/models/{name}/predict"]
    assert len(routes) == 1 and isinstance(routes[0], LeanRoute)
    operation = app.openapi()["paths"]["/v1/models/{name}/predict"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictRequest"
    )
    assert {"401", "403", "404", "413", "422", "503"} <= set(operation["responses"])


def test_a_route_it_cannot_resolve_is_refused_at_build_time() -> None:
    router = APIRouter(route_class=LeanRoute)

    async def with_query(
        name: str, body: PredictRequest, request: Request, caller: CanRead, limit: int = 3
    ) -> Response:
        return Response()

    async def without_guard(name: str, body: PredictRequest, request: Request) -> Response:
        return Response()

    async def without_body(name: str, request: Request, caller: CanRead) -> Response:
        return Response()

    for endpoint in (with_query, without_guard, without_body):
        with pytest.raises(TypeError, match="LeanRoute"):
            router.add_api_route("/m/{name}", endpoint, methods=["POST"])
    # The same endpoints are fine as plain routes.
    plain = APIRouter()
    plain.add_api_route("/m/{name}", with_query, methods=["POST"])
    assert isinstance(plain.routes[0], APIRoute)
