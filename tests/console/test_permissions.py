"""Each console page asks for a permission that an API route asks for too: a page can show or
do nothing its API call could not (issue 29: "allowed by the same Casbin permission")."""

from __future__ import annotations

from fastapi.routing import APIRoute

from governance.api.app import create_app
from governance.api.deps import Authorize, AuthorizeOwn
from governance.config import Settings
from governance.console.guard import OwnPage, Page
from governance.kit.routes import api_routes


def _guards(dependant) -> list[Authorize]:  # type: ignore[no-untyped-def]
    found = [d.call for d in dependant.dependencies if isinstance(d.call, Authorize)]
    for sub in dependant.dependencies:
        found += _guards(sub)
    return found


def test_every_console_page_uses_a_permission_of_the_api(settings: Settings) -> None:
    api: set[tuple[str, str]] = set()
    console: dict[str, tuple[str, str]] = {}
    for path, route in api_routes(create_app(settings)):
        if not isinstance(route, APIRoute):
            continue
        for guard in _guards(route.dependant):
            pair = (guard.obj, guard.action)
            if path.startswith("/console/"):
                assert isinstance(guard, (Page, OwnPage)), f"{path} is not guarded as a page"
                console[f"{sorted(route.methods)} {path}"] = pair
            else:
                assert not isinstance(guard, (Page, OwnPage)), f"{path} takes only a session"
                if not isinstance(guard, AuthorizeOwn):
                    api.add(pair)
    assert len(console) >= 20
    own = {("self", "read"), ("self", "write")}
    stray = {page: pair for page, pair in console.items() if pair not in api | own}
    assert stray == {}
