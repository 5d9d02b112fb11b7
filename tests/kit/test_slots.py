"""Typed slots: an endpoint gets what the wiring point put, and a 503 where nothing was put."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from governance.kit import problems
from governance.kit.slots import Slot

GREETING: Slot[str] = Slot("greeting")
Greeting = Annotated[str, Depends(GREETING)]


def app_with(value: str | None) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    if value is not None:
        GREETING.put(app, value)

    @app.get("/greet")
    async def greet(greeting: Greeting) -> dict[str, str]:
        return {"greeting": greeting}

    return app


def test_an_endpoint_gets_what_the_wiring_point_put() -> None:
    with TestClient(app_with("hello")) as client:
        assert client.get("/greet").json() == {"greeting": "hello"}


def test_an_unwired_slot_is_a_503_problem_not_a_crash() -> None:
    with TestClient(app_with(None), raise_server_exceptions=False) as client:
        answer = client.get("/greet")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_find_answers_none_where_nothing_was_put() -> None:
    assert GREETING.find(app_with(None)) is None
    assert GREETING.find(object()) is None
    assert GREETING.find(app_with("hi")) == "hi"
