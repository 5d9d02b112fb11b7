"""A JSON value of the wrong type in a request body is refused (422), never coerced.

A time is never read from a number either, in a body or in a query.

Pydantic's lax mode reads ``{"dry_run": 0}`` as ``false`` (a real purge where the caller's
client may have meant anything), ``"5"`` and ``5.0`` as ``5`` and ``true`` as ``1``. Every
boolean, integer and number field of every request body is strict; this walks the app's routes, so a
field added later cannot forget it.
"""

from __future__ import annotations

import types
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from governance.api.app import create_app
from governance.config import Settings
from governance.kit.problems import PROBLEM
from governance.kit.routes import api_routes
from tests.conftest import WardenFactory, auth

WRONG: dict[type, list[Any]] = {
    bool: [0, 1, "true", "false"],
    int: [True, "5", 5.0],
    float: [True, "0.5"],  # a JSON integer is a number: 1 stays a valid float
    datetime: [0.5, "1700000000", True],  # pydantic would read seconds since 1970
}


def _bare(annotation: Any) -> Any:
    """``int`` for ``Annotated[int, ...]``, ``int | None`` and ``Optional[int]``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _typed_paths(model: type[BaseModel], prefix: tuple[Any, ...] = ()) -> list[tuple[Any, type]]:
    """Every (location, bool, int or float) inside a body model, nested models and lists too."""
    found: list[tuple[Any, type]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        bare = _bare(field.annotation)
        if get_origin(bare) is list:
            loc: tuple[Any, ...] = (*prefix, key, 0)
            bare = _bare(get_args(bare)[0])
        else:
            loc = (*prefix, key)
        if bare in WRONG:
            found.append((loc, bare))
        elif isinstance(bare, type) and issubclass(bare, BaseModel):
            found.extend(_typed_paths(bare, loc))
    return found


def _document(loc: tuple[Any, ...], value: Any) -> Any:
    """The smallest body that puts ``value`` at ``loc``."""
    for part in reversed(loc):
        value = [value] if isinstance(part, int) else {part: value}
    return value


def _body_models(settings: Settings) -> dict[str, type[BaseModel]]:
    app = create_app(settings)
    return {
        f"{sorted(route.methods)[0]} {path}": route.body_field.field_info.annotation
        for path, route in api_routes(app)
        # The console's HTML forms are not JSON bodies: their fields arrive as text.
        if isinstance(route, APIRoute)
        and route.body_field is not None
        and not path.startswith("/console/")
    }


def test_every_boolean_and_number_of_a_body_takes_only_its_own_json_type(
    settings: Settings,
) -> None:
    checked, coerced = 0, []
    for operation, model in _body_models(settings).items():
        for loc, kind in _typed_paths(model):
            for wrong in WRONG[kind]:
                checked += 1
                try:
                    model.model_validate(_document(loc, wrong))
                except ValidationError as exc:
                    if any(tuple(e["loc"]) == loc for e in exc.errors()):
                        continue
                coerced.append(f"{operation} {'.'.join(map(str, loc))} = {wrong!r}")
    assert checked > 50
    assert coerced == []


def test_every_body_refuses_fields_it_does_not_know(settings: Settings) -> None:
    # A misspelt field ("from" for "from_seq") must not be dropped in silence.
    loose = [
        operation
        for operation, model in _body_models(settings).items()
        if model.model_config.get("extra") != "forbid"
    ]
    assert loose == []


@pytest.mark.parametrize("dry_run", [0, "false"])
def test_a_purge_with_a_flag_of_the_wrong_type_is_refused(
    app_client: Any, admin_token: str, dry_run: object
) -> None:
    r = app_client.post("/v1/records/purge", json={"dry_run": dry_run}, headers=auth(admin_token))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    assert "dry_run" in r.text


def test_a_time_in_a_query_is_never_read_from_a_number(
    app_client: Any, warden: WardenFactory
) -> None:
    auditor = warden.principal("aud", "auditor")
    for until in ("0.5", "1700000000"):
        r = app_client.get("/v1/audit/entries", params={"until": until}, headers=auth(auditor))
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    r = app_client.get(
        "/v1/audit/entries", params={"until": "2026-01-31T12:00:00Z"}, headers=auth(auditor)
    )
    assert r.status_code == 200, r.text
