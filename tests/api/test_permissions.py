"""Every route declares its (object, action); only an explicit list is exempt."""

from __future__ import annotations

from fastapi.routing import APIRoute

from governance.api.app import EXEMPT_PATHS, create_app
from governance.api.deps import Authorize
from governance.config import Settings
from governance.kit.routes import api_routes


def _authorizers(dependant) -> list[Authorize]:  # type: ignore[no-untyped-def]
    found = [d.call for d in dependant.dependencies if isinstance(d.call, Authorize)]
    for sub in dependant.dependencies:
        found += _authorizers(sub)
    return found


def test_every_route_declares_a_permission(settings: Settings) -> None:
    app = create_app(settings)
    missing, checked = [], 0
    for path, route in api_routes(app):
        if path in EXEMPT_PATHS:
            continue
        assert isinstance(route, APIRoute), f"unexpected non-API route {path}"
        checked += 1
        guards = _authorizers(route.dependant)
        if len(guards) != 1:
            missing.append(f"{sorted(route.methods)} {path}: {len(guards)} guards")
    assert checked >= 10
    assert not missing, "routes without exactly one permission guard:\n" + "\n".join(missing)


def test_exempt_routes_are_only_health_and_docs(settings: Settings) -> None:
    app = create_app(settings)
    unguarded = {
        path
        for path, route in api_routes(app)
        if not (isinstance(route, APIRoute) and _authorizers(route.dependant))
    }
    assert unguarded <= EXEMPT_PATHS
    assert {"/healthz", "/readyz", "/openapi.json"} <= unguarded


def test_the_predict_route_is_matched_first(settings: Settings) -> None:
    # Routes are tried in order: the hot path comes before FastAPI's own docs routes.
    app = create_app(settings)
    first = app.router.routes[0]
    assert isinstance(first, APIRoute) and first.path == "/v1/models/{name}/predict"
