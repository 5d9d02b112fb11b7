"""Every integer a caller can send fits the database column it meets.

An integer that does not fit reaches SQLite as ``OverflowError`` and PostgreSQL as "integer out
of range": a 500 for a bad request. Bounds are declared where the value enters (path, query and
body alike, with ``DbInt`` or ``DbBigInt``), so the caller gets a 422 that names the field. The
first test walks the OpenAPI document, as the permission test walks the routes, and names every
integer a route accepts without bounds; the second sends each GET route's integers just past
their declared bounds, and at them, to a real server on both databases.
"""

from __future__ import annotations

from typing import Any

from governance.api.app import create_app
from governance.config import Settings
from governance.db.base import DB_BIGINT_MAX, DB_BIGINT_MIN
from tests.conftest import auth
from tests.servers import SharedServer


def _integers(
    schema: Any, defs: dict[str, Any], where: str, seen: set[str]
) -> list[tuple[str, dict[str, Any]]]:
    """(location, schema) of every integer schema reachable from ``schema``."""
    if isinstance(schema, list):
        return [i for item in schema for i in _integers(item, defs, where, seen)]
    if not isinstance(schema, dict):
        return []
    ref = schema.get("$ref")
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return []
        return _integers(defs[name], defs, f"{where} -> {name}", seen | {name})
    found = [(where, schema)] if schema.get("type") == "integer" else []
    for key, value in schema.items():
        if key == "properties":
            for prop, sub in value.items():
                found += _integers(sub, defs, f"{where}.{prop}", seen)
        elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems", "additionalProperties"):
            found += _integers(value, defs, where, seen)
    return found


def _in_range(schema: dict[str, Any]) -> bool:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    # Body schemas may render the bounds as floats: 2**63 - 1 becomes 2.0**63.
    if low is None or high is None:
        return False
    return bool(low >= DB_BIGINT_MIN and high <= float(DB_BIGINT_MAX))


def test_every_integer_a_route_accepts_is_bounded(settings: Settings) -> None:
    spec = create_app(settings).openapi()
    defs = spec.get("components", {}).get("schemas", {})
    unbounded, checked = [], 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                where = f"{method.upper()} {path} {param['in']} {param['name']}"
                for loc, schema in _integers(param["schema"], defs, where, set()):
                    checked += 1
                    if not _in_range(schema):
                        unbounded.append(loc)
            content = op.get("requestBody", {}).get("content", {})
            for media in content.values():
                for loc, schema in _integers(
                    media["schema"], defs, f"{method.upper()} {path} body", set()
                ):
                    checked += 1
                    if not _in_range(schema):
                        unbounded.append(loc)
    assert checked >= 10
    assert not unbounded, "integers without bounds within 64 bits:\n" + "\n".join(unbounded)


def _integer_params(spec: dict[str, Any]) -> list[tuple[str, str, str, int, int]]:
    """(path, where, name, minimum, maximum) of every integer parameter of a GET route."""
    found = []
    for path, ops in spec["paths"].items():
        for param in ops.get("get", {}).get("parameters", []):
            schema = param["schema"]
            for kind in (schema, *schema.get("anyOf", [])):
                if kind.get("type") == "integer":
                    low, high = int(kind["minimum"]), int(kind["maximum"])
                    found.append((path, param["in"], param["name"], low, high))
    return found


def _url(path: str, where: str, name: str, value: int) -> tuple[str, dict[str, str]]:
    filled = path.replace("{" + name + "}", str(value)) if where == "path" else path
    for other in ("name", "model", "version", "seq", "run_id", "audit_id", "proposal_id"):
        filled = filled.replace("{" + other + "}", "1")  # the route's other path parameters
    return filled, ({name: str(value)} if where == "query" else {})


def test_integers_past_their_bounds_get_422_and_at_them_no_5xx(
    common_server: SharedServer,
) -> None:
    live_server, http = common_server.server, common_server.http
    token = common_server.warden.principal(
        common_server.unique("reader"), "admin", "compliance_officer", "auditor", "ml_engineer"
    )
    spec = http.get("/openapi.json").json()
    params = _integer_params(spec)
    assert len(params) >= 10
    for path, where, name, low, high in params:
        for value in (high + 1, low - 1, 2**64):
            url, query = _url(path, where, name, value)
            r = http.get(url, params=query, headers=auth(token))
            assert r.status_code == 422, (url, query, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert name in r.text, r.text  # the problem names the field
        for value in (high, low):
            url, query = _url(path, where, name, value)
            r = http.get(url, params=query, headers=auth(token))
            assert r.status_code < 500, (url, query, r.status_code, r.text)
    # Bodies too: a policy change against a base version no column can hold.
    r = http.post(
        "/v1/policy/changes",
        json={"add": [], "remove": [], "reason": "r", "base_version": 2**31},
        headers=auth(token),
    )
    assert r.status_code == 422, r.text
    assert "base_version" in r.text
    r = http.post("/v1/audit/export", json={"from_seq": 2**63}, headers=auth(token))
    assert r.status_code == 422, r.text
    assert "unhandled" not in live_server.log_path.read_text()
