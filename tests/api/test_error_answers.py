"""Error answers as the OpenAPI document describes them: every status problem+json, 405 with
every method of its path."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from starlette.routing import Route

from governance.audit.models import AuditEntry
from governance.kit.problems import PROBLEM
from governance.kit.routes import api_routes
from tests.conftest import auth


def _operations(app: Any) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
    ]


def test_every_error_status_is_documented_as_a_problem(app_client: Any) -> None:
    operations = _operations(app_client.app)
    assert len(operations) > 50
    for path, method, operation in operations:
        answers = operation["responses"]
        # The NUL refusal and parameter validation can answer 422 anywhere.
        assert "422" in answers, (method, path)
        if "requestBody" in operation:
            assert "400" in answers, (method, path)
        for status, answer in answers.items():
            if status.startswith(("4", "5")):
                assert list(answer["content"]) == [PROBLEM], (method, path, status)


def test_a_405_lists_every_method_of_its_path(app_client: Any, admin_token: str) -> None:
    # GET /v1/keys lists keys and POST /v1/keys issues one: two routes, one resource.
    r = app_client.request("OPTIONS", "/v1/keys", headers=auth(admin_token))
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    assert r.headers["content-type"] == PROBLEM and r.json()["status"] == 405
    r = app_client.put("/v1/models/m/predict", headers=auth(admin_token))
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_no_parameter_takes_another_routes_path_for_a_value(app_client: Any) -> None:
    routes = [r for _, r in api_routes(app_client.app) if isinstance(r, Route)]
    literal = [r.path for r in routes if not r.param_convertors]
    taken = [
        (r.path_format, path)
        for r in routes
        if r.param_convertors
        for path in literal
        if r.path_regex.match(path)
    ]
    assert taken == []


def test_a_literal_path_beside_a_parameter_answers_405(app_client: Any, admin_token: str) -> None:
    # POST /v1/records/purge and POST /v1/policy/tests/run sit beside GET /v1/records/{id}
    # and DELETE /v1/policy/tests/{id}: neither "purge" nor "run" is an id.
    r = app_client.get("/v1/records/purge", headers=auth(admin_token))
    assert r.status_code == 405 and r.headers["allow"] == "POST", r.text
    r = app_client.delete("/v1/policy/tests/run", params={"reason": "x"}, headers=auth(admin_token))
    assert r.status_code == 405 and r.headers["allow"] == "POST", r.text
    assert "/v1/records/{record_id}" in app_client.app.openapi()["paths"]


def test_a_route_with_a_convertor_is_named_by_its_template(
    app_client: Any, admin_token: str
) -> None:
    # The admin may read record metadata; the id is well formed and names no record.
    record_id = "rec_" + "0" * 32
    r = app_client.get(f"/v1/records/{record_id}", headers=auth(admin_token))
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    request_id = r.headers["x-request-id"]
    with app_client.app.state.runtime.sessions() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.request_id == request_id)).one()
    assert entry.action == "GET /v1/records/{record_id}"
    assert record_id not in entry.canonical
    assert json.loads(entry.canonical)["resource"]["path"] == "/v1/records/{record_id}"
    # A segment that cannot be a record id is not routed: the router's own 404.
    r = app_client.get("/v1/records/not-an-id", headers=auth(admin_token))
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def test_a_body_that_is_not_text_gets_the_documented_400(app_client: Any, admin_token: str) -> None:
    operation = app_client.app.openapi()["paths"]["/v1/principals"]["post"]
    assert "400" in operation["responses"]
    r = app_client.post(
        "/v1/principals",
        content=b'{"name": "\xff"}',
        headers={**auth(admin_token), "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == PROBLEM
    # Malformed JSON text, by contrast, names what is wrong with a 422.
    r = app_client.post(
        "/v1/principals",
        content=b'{"name": ',
        headers={**auth(admin_token), "content-type": "application/json"},
    )
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
