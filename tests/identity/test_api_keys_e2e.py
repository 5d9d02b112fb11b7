"""The API key lifecycle against a real server: issue, use, revoke, expire, disable."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx

from governance.db.base import utcnow
from tests.conftest import LiveServer, auth
from tests.servers import SharedServer

GENERIC_401 = "a valid API key is required (Authorization: Bearer <key>)"


def _issue(server: LiveServer, admin: str, principal: str, **body: object) -> dict:  # type: ignore[type-arg]
    r = httpx.post(
        f"{server.url}/v1/keys", json={"principal": principal, **body}, headers=auth(admin)
    )
    assert r.status_code == 201, r.text
    return r.json()


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == GENERIC_401  # never says which of the causes it was
    assert response.headers["www-authenticate"] == "Bearer"


def test_key_lifecycle(common_server: SharedServer) -> None:
    live_server, admin_token, settings = (
        common_server.server,
        common_server.admin,
        common_server.settings,
    )
    url, app = live_server.url, common_server.unique("app")
    r = httpx.post(
        f"{url}/v1/principals", json={"name": app, "kind": "service"}, headers=auth(admin_token)
    )
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{url}/v1/roles/grant",
        json={"principal": app, "role": "client", "reason": f"onboarding {app}"},
        headers=auth(admin_token),
    )
    assert r.status_code == 200, r.text

    issued = _issue(live_server, admin_token, app)
    token = issued["token"]
    assert token.startswith("wdn_") and len(token) >= 4 + 8 + 1 + 43
    assert httpx.get(f"{url}/v1/models", headers=auth(token)).status_code == 200

    # Listing never shows tokens, and the database never holds one.
    listing = httpx.get(f"{url}/v1/keys", headers=auth(admin_token)).text
    assert token not in listing and issued["key_id"] in listing

    # Every kind of bad key gets the same 401.
    _assert_401(httpx.get(f"{url}/v1/models"))
    _assert_401(httpx.get(f"{url}/v1/models", headers={"Authorization": "Basic abc"}))
    _assert_401(httpx.get(f"{url}/v1/models", headers=auth("wdn_nothex_short")))
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    _assert_401(httpx.get(f"{url}/v1/models", headers=auth(forged)))

    r = httpx.post(f"{url}/v1/keys/{issued['key_id']}/revoke", headers=auth(admin_token))
    assert r.status_code == 200
    _assert_401(httpx.get(f"{url}/v1/models", headers=auth(token)))

    soon = (utcnow() + timedelta(seconds=1)).isoformat()
    expiring = _issue(live_server, admin_token, app, expires_at=soon)["token"]
    assert httpx.get(f"{url}/v1/models", headers=auth(expiring)).status_code == 200
    deadline = time.monotonic() + 10  # refused once its second is over
    while httpx.get(f"{url}/v1/models", headers=auth(expiring)).status_code == 200:
        assert time.monotonic() < deadline, "the expired key still authenticates"
        time.sleep(0.05)
    _assert_401(httpx.get(f"{url}/v1/models", headers=auth(expiring)))

    fresh = _issue(live_server, admin_token, app)["token"]
    assert (
        httpx.post(f"{url}/v1/principals/{app}/disable", headers=auth(admin_token)).status_code
        == 200
    )
    _assert_401(httpx.get(f"{url}/v1/models", headers=auth(fresh)))

    if settings.is_sqlite:
        db_path = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
        blob = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
        for t in (token, expiring, fresh):
            assert t.encode() not in blob
    assert token not in live_server.log_path.read_text()


def test_expiry_in_the_past_is_refused(common_server: SharedServer) -> None:
    past = (utcnow() - timedelta(days=1)).isoformat()
    r = httpx.post(
        f"{common_server.url}/v1/keys",
        json={"principal": "admin", "expires_at": past},
        headers=auth(common_server.admin),
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
