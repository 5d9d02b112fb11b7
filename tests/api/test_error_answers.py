"""Error answers as the OpenAPI document describes them: every status problem+json, 405 with
every method of its path."""

from __future__ import annotations

from typing import Any

from governance.api.problems import PROBLEM
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
