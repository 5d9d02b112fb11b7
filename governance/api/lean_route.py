"""A route class for the hot path: FastAPI declares the route, a fixed resolver serves it.

FastAPI's generic handler re-discovers on every call how to fill each endpoint parameter
(content-type parsing, ``json.loads``, ``solve_dependencies``, a second validation), a visible
share of a prediction's CPU. A :class:`LeanRoute` is declared like any route
(``APIRouter(route_class=LeanRoute)``), so OpenAPI and the permission walk see it as before; at
build time it refuses an endpoint taking anything but path parameters, one JSON body model, the
``Request`` and exactly one :class:`~governance.api.deps.Authorize` guard. Per request it calls
the guard (before reading the body), validates the body once with pydantic's JSON parser and
calls the endpoint; errors are FastAPI's own, rendered by the app's problem+json handlers.

The app enters it directly (:mod:`governance.api.direct`) and awaits
:attr:`LeanRoute.lean_handler`; in any other app FastAPI's request wrapper serves the same
handler.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.types import Receive

from governance.api.deps import Authorize
from governance.api.middleware import header

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _is_json(content_type: str) -> bool:
    # As FastAPI: application/json or any application/*+json, parameters ignored.
    media = content_type.split(";", 1)[0].strip().lower()
    if not media.startswith("application/"):
        return False
    subtype = media[len("application/") :]
    return subtype == "json" or subtype.endswith("+json")


async def _read_body(receive: Receive) -> bytes:
    """The whole body, as ``Request.body()`` reads it, without its async generator.

    Raises:
        HTTPException: 400, the client went away before its body was whole (FastAPI's answer
            for a body it cannot read; nobody receives it, but the call is audited with it).
    """
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPException(400, "There was an error parsing the body")
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)  # one chunk: the same bytes, not a copy


def _body_error(kind: str, message: str) -> Exception:
    return RequestValidationError([{"type": kind, "loc": ("body",), "msg": message, "input": None}])


class LeanRoute(APIRoute):
    """An :class:`APIRoute` whose handler resolves a fixed set of parameters directly.

    Raises:
        TypeError: at build time, if the endpoint takes a parameter the resolver cannot fill.
    """

    _lean: Handler | None = None

    @property
    def lean_handler(self) -> Handler:
        """The handler: takes the ``Request``, returns the ``Response`` or raises."""
        if self._lean is None:
            self._lean = self.get_route_handler()
        return self._lean

    def get_route_handler(self) -> Handler:
        dependant = self.dependant
        unsupported = [
            f.name
            for f in (*dependant.query_params, *dependant.header_params, *dependant.cookie_params)
        ]
        guards = [d for d in dependant.dependencies if isinstance(d.call, Authorize)]
        if len(guards) != 1 or len(dependant.dependencies) != 1:
            unsupported.append("dependencies other than one Authorize guard")
        if len(dependant.body_params) != 1:
            unsupported.append("a body other than one model")
        body_model = (
            dependant.body_params[0].field_info.annotation if dependant.body_params else None
        )
        if not (isinstance(body_model, type) and issubclass(body_model, BaseModel)):
            unsupported.append("a body that is not a pydantic model")
        if unsupported or dependant.call is None or dependant.request_param_name is None:
            raise TypeError(
                f"LeanRoute {self.path}: cannot resolve {unsupported or 'the endpoint'}; "
                "declare it as a plain APIRoute"
            )
        assert isinstance(body_model, type) and issubclass(body_model, BaseModel)
        guard = guards[0].call
        assert isinstance(guard, Authorize) and guards[0].name is not None
        guard_name = guards[0].name
        body_name = dependant.body_params[0].name
        request_name = dependant.request_param_name
        endpoint = dependant.call
        path_names = tuple(f.name for f in dependant.path_params)
        validate_json = body_model.model_validate_json

        async def handle(request: Request) -> Response:
            # The guard first (FastAPI's generic handler parses the body before it runs the
            # dependencies): a caller without a key or the right learns nothing about how
            # their body would have been judged, and no unauthenticated body is parsed.
            caller = await guard(request)
            raw = await _read_body(request.receive)
            if not raw:
                raise _body_error("missing", "Field required")
            content_type = header(request.scope, b"content-type")
            if content_type is None or not _is_json(content_type.decode("latin-1")):
                raise _body_error("model_attributes_type", "the body must be application/json")
            try:
                body = validate_json(raw)
            except ValidationError as exc:
                raise RequestValidationError(
                    [
                        {**err, "loc": ("body", *err.get("loc", ()))}
                        for err in exc.errors(include_url=False, include_input=False)
                    ]
                ) from None
            params = request.path_params
            kwargs: dict[str, Any] = {name: params[name] for name in path_names}
            kwargs[guard_name] = caller
            kwargs[body_name] = body
            kwargs[request_name] = request
            response: Response = await endpoint(**kwargs)
            return response

        self._lean = handle
        return handle
