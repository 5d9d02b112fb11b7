"""The app's routes as one flat list, and what they say about a path.

FastAPI keeps an included router as one entry of the app's routes; its own routes are inside.
The permission tests walk every route through :func:`api_routes`, and a 405 answer lists every
method of its path through :func:`allowed_methods`. Audit entries and log lines name a request's
route by its template (:func:`route_template`).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Route, compile_path
from starlette.types import ASGIApp, Scope

from governance.kit.request_facts import facts_of


def _with_prefixes(app: ASGIApp) -> list[tuple[str, BaseRoute]]:
    """Every route with the prefix its including routers add to it, at every level of
    nesting, as FastAPI applies them when it matches a request."""
    found: list[tuple[str, BaseRoute]] = []

    def walk(routes: list[BaseRoute], context: Any) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                included = route.include_context  # type: ignore[attr-defined]
                walk(list(inner.routes), included if context is None else context.combine(included))
            else:
                found.append((context.prefix if context is not None else "", route))

    walk(list(getattr(app, "routes", [])), None)
    return found


def api_routes(app: ASGIApp) -> list[tuple[str, BaseRoute]]:
    """Every route of the app as ``(path, route)``, looking inside included routers."""
    return [(prefix + _template(route), route) for prefix, route in _with_prefixes(app)]


def allowed_methods(app: ASGIApp, path: str) -> list[str]:
    """The methods of every route whose template matches ``path``, sorted.

    A resource is often served by several routes (``GET /v1/keys`` lists, ``POST /v1/keys``
    issues). Starlette's 405 names the methods of the one route it matched first; the ``Allow``
    header must list all of them (RFC 9110, section 10.2.1).
    """
    methods: set[str] = set()
    for prefix, route in _with_prefixes(app):
        if not (isinstance(route, Route) and route.methods):
            continue
        # With its convertors: ``{record_id:record_id}`` does not match ``purge``.
        regex = compile_path(prefix + route.path)[0] if prefix else route.path_regex
        if regex.match(path):
            methods |= route.methods
    return sorted(methods)


def route_template(scope: Scope) -> str:
    """The template of the route a request matched (``/v1/subjects/{subject_id}``), never its
    raw path: a raw path can carry a subject id or other personal data."""
    route = scope.get("route")
    template = _template(route) if route is not None else facts_of(scope).route
    return str(template)[:120] if template else "(no matching route)"


def _template(route: BaseRoute) -> str:
    """A route's path as its callers see it: ``/v1/records/{record_id}``, without the
    convertor that ``/v1/records/{record_id:record_id}`` declares."""
    return str(getattr(route, "path_format", None) or getattr(route, "path", ""))
