"""The OpenAPI document is complete enough for a client generator and a reader.

Every operation has a stable snake_case id, every secured one requires the bearer scheme,
every error answer is the one shared problem schema, every request body has an example that
its own schema accepts, and every schema says what it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from governance.api.app import create_app
from governance.config import Settings
from governance.kit.problems import PROBLEM

_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_METHODS = {"get", "put", "post", "delete", "patch"}
# Routes a caller reaches without an API key: the probes, the enrolment (its code is the
# proof) and sign-in (a password, or the identity provider's id_token): governance/api/app.py.
_OPEN = {
    "healthz",
    "readyz",
    "redeem_enrolment",
    "open_session",
    "open_cli_session",
    "oidc_start",
    "oidc_callback",
}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.conftest import make_settings

    root = tmp_path_factory.mktemp("openapi")
    settings: Settings = make_settings(f"sqlite:///{root}/unused.db", root)
    return create_app(settings).openapi()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in _METHODS:
                yield method.upper(), path, operation


def test_operation_ids_are_readable_and_unique(document: dict[str, Any]) -> None:
    ids = [op.get("operationId") for _, _, op in _operations(document)]
    assert len(ids) >= 70
    bad = [i for i in ids if not isinstance(i, str) or not _ID.fullmatch(i)]
    assert not bad
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    # The names a client author looks for, as the generated methods will be called.
    assert {"predict", "get_model_schema", "list_audit_entries", "change_policy"} <= set(ids)


def test_secured_operations_require_the_bearer_scheme(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for method, path, op in _operations(document):
        if op["operationId"] in _OPEN:
            assert "security" not in op, (method, path)
        else:
            assert op.get("security") == [{"bearer": []}], (method, path)
            assert {"401", "403", "429"} <= set(op["responses"]), (method, path)


def test_every_error_answer_is_the_shared_problem(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    errors = 0
    for method, path, op in _operations(document):
        for status, answer in op["responses"].items():
            if int(status) >= 400:
                errors += 1
                assert answer["content"] == {
                    PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
                assert answer["description"], (method, path, status)
    assert errors > 200


def test_every_request_body_has_an_example_its_schema_accepts(document: dict[str, Any]) -> None:
    bodies = 0
    for method, path, op in _operations(document):
        if "requestBody" not in op:
            continue
        for media_type, media in op["requestBody"]["content"].items():
            bodies += 1
            assert "example" in media, (method, path, media_type)
            # The components travel with the schema so that its $refs resolve.
            schema = {**media["schema"], "components": document["components"]}
            errors = list(jsonschema.Draft202012Validator(schema).iter_errors(media["example"]))
            assert not errors, (method, path, [e.message for e in errors])
    assert bodies >= 30


def test_every_schema_has_a_description(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert not [name for name, schema in schemas.items() if not schema.get("description")]


def _booleans(node: Any, where: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, bool) and key in ("items", "additionalItems", "not"):
                yield f"{where}/{key}"
            yield from _booleans(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _booleans(value, f"{where}/{i}")


def test_no_boolean_schemas_that_generators_refuse(document: dict[str, Any]) -> None:
    # openapi-python-client fails on the whole document at `"items": false`.
    assert not list(_booleans(document, ""))
