"""RFC 9457 problem+json for every error, from one place.

Every WardenError renders with its own status. FastAPI's request-validation errors become 422s
naming the field. Anything else is a bug: it is logged by type only (never with the request
body) and answered with a generic 500 problem.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from governance.errors import WardenError
from governance.kit.request_facts import facts_of
from governance.kit.routes import allowed_methods, api_routes, route_template

logger = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
TYPE_BASE = "https://warden.dev/problems/"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    request: Request | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
        request_id = facts_of(request.scope).request_id
        if request_id:
            body["request_id"] = request_id
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def internal_error(request: Request) -> JSONResponse:
    """The answer to a bug: a generic 500 that says nothing of what went wrong."""
    return problem(
        500,
        "Internal error",
        "an internal error occurred; it has been logged",
        slug="internal",
        request=request,
    )


def problem_schema() -> dict[str, Any]:
    """OpenAPI response entry for an error status."""
    return {
        "description": "Problem details (RFC 9457)",
        "content": {
            PROBLEM: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string"},
                        "request_id": {"type": "string"},
                    },
                    "required": ["type", "title", "status", "detail"],
                }
            }
        },
    }


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the error statuses it may answer, all problem+json."""
    return {s: problem_schema() for s in (401, 403, *statuses)}


def document(app: FastAPI) -> None:
    """Document the error answers every route can give, whatever it declared.

    - 422, on every route: the middleware refuses NUL in any path, query or body, and FastAPI
      would otherwise document its own 422 as ``application/json`` where the app answers
      problem+json.
    - 400, on every route that takes a JSON body: FastAPI answers it for a body that is not
      text (not UTF-8, say), where malformed JSON text gets a 422.
    """
    for _, route in api_routes(app):
        if not isinstance(route, APIRoute):
            continue
        route.responses.setdefault(422, problem_schema())
        if route.body_field is not None:
            route.responses.setdefault(400, problem_schema())


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""

    @app.exception_handler(WardenError)
    async def _warden(request: Request, exc: WardenError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:  # a full queue says when to come back (RFC 9110 10.2.3)
            headers = {"Retry-After": str(retry_after)}
        return problem(
            exc.status_code,
            exc.title,
            exc.message,
            slug=exc.type_slug,
            request=request,
            extra=exc.extra,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "location": [str(p) for p in err.get("loc", ())],
                "message": str(err.get("msg", "invalid")),
            }
            for err in exc.errors()[:20]
        ]
        first = errors[0] if errors else {"location": [], "message": "invalid request"}
        detail = f"{'.'.join(first['location'])}: {first['message']}"
        return problem(
            422,
            "Invalid request",
            detail,
            slug="invalid-request",
            request=request,
            extra={"errors": errors},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {
            404: "Not found",
            405: "Method not allowed",
            413: "Payload too large",
            422: "Invalid request",
        }
        # What the exception carries for the client. A 405 must send ``Allow`` (RFC 9110,
        # section 15.5.6): every method of the path, not only the first route's.
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope["path"]))
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail),
            slug=f"http-{exc.status_code}",
            request=request,
            headers=headers or None,
        )

    @app.exception_handler(OperationalError)
    async def _database(request: Request, exc: OperationalError) -> JSONResponse:
        # The database is down, locked past its timeout, or out of space: nothing was
        # committed, so the caller may retry. Fail closed with 503, never a 500.
        logger.warning(
            "database unavailable on %s: %s",
            route_template(request.scope),
            type(exc.orig).__name__ if exc.orig is not None else "error",
        )
        return problem(
            503,
            "Service unavailable",
            "the database is unavailable or busy; retry shortly",
            slug="unavailable",
            request=request,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled %s on %s", type(exc).__name__, route_template(request.scope))
        return internal_error(request)
