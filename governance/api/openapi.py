"""The OpenAPI document, complete enough for a client generator (openapi-python-client).

FastAPI builds the document from the routes; :func:`install` then adds what it cannot know:

- every operation's id is its route's name (``predict``, ``list_audit_entries``), unless the
  decorator names one: stable across path changes, readable as a generated method;
- the bearer scheme (``Authorization: Bearer <API key>``), required by every route that
  declares a permission, so that ``/docs`` has an Authorize button and clients send the key;
- one ``Problem`` schema (RFC 9457) that every 4xx and 5xx answer references;
- an example body for every request body (:mod:`governance.api.openapi_examples`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from governance.api.deps import Authorize
from governance.api.openapi_examples import BODIES
from governance.kit.problems import PROBLEM
from governance.kit.routes import api_routes
from governance.predict.schemas import PredictRequest

BEARER = "bearer"
PROBLEM_REF = "#/components/schemas/Problem"

# RFC 9457 members, and the extensions Warden adds (request_id on every problem, errors on a
# 422); other extensions a problem type documents may follow.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "Problem details (RFC 9457): every error answer of the API.",
    "properties": {
        "type": {"type": "string", "description": "URI naming the kind of problem"},
        "title": {"type": "string", "description": "short summary of the kind"},
        "status": {"type": "integer", "description": "the HTTP status"},
        "detail": {"type": "string", "description": "what went wrong with this request"},
        "instance": {"type": "string", "description": "the request's path"},
        "request_id": {"type": "string", "description": "the request id, as audited"},
        "errors": {
            "type": "array",
            "description": "on a 422: each invalid field and why",
            "items": {
                "type": "object",
                "properties": {
                    "location": {"type": "array", "items": {"type": "string"}},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}

# Any guarded route may answer these, whatever it declares: a client past its limit of
# failed authentications or requests (429), a database that answers nobody (503).
_GUARDED_ANSWERS = {429: "Too many requests", 503: "Service unavailable"}


def _guarded(dependant: Dependant) -> bool:
    return any(isinstance(d.call, Authorize) or _guarded(d) for d in dependant.dependencies)


def install(app: FastAPI) -> None:
    """Name every operation and complete the app's document when it is first asked for.

    Call once every route is included.
    """
    guarded: set[str] = set()
    for _, route in api_routes(app):
        if isinstance(route, APIRoute) and route.include_in_schema:
            route.operation_id = route.operation_id or route.name
            if _guarded(route.dependant):
                guarded.add(route.operation_id)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            complete(build(), guarded)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], guarded: set[str]) -> None:
    """Add the security scheme, the shared problem schema and the examples to ``document``.

    Args:
        document: FastAPI's document, changed in place.
        guarded: the ids of the operations that require an API key.
    """
    components = document.setdefault("components", {})
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: issued by `warden keys issue` or `POST /v1/keys`, or "
            "the key an enrolment code is redeemed for (`POST /v1/enrol`).",
        }
    }
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    # The predict route reads its own body (after the guard), so FastAPI does not list it.
    schemas["PredictRequest"] = PredictRequest.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            _complete_operation(operation, guarded)


def _complete_operation(operation: dict[str, Any], guarded: set[str]) -> None:
    operation_id = operation["operationId"]
    responses = operation.setdefault("responses", {})
    if operation_id in guarded:
        operation["security"] = [{BEARER: []}]
        for status, title in _GUARDED_ANSWERS.items():
            responses.setdefault(str(status), {"description": title})
    for status, answer in responses.items():
        if int(status) >= 400:
            answer.setdefault("description", "Problem details (RFC 9457)")
            answer["content"] = {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}}
    if operation_id in BODIES:
        for media in operation.get("requestBody", {}).get("content", {}).values():
            media["example"] = BODIES[operation_id]
