"""Times a caller sends: read as UTC when they carry no offset, refused when UTC cannot hold them.

A key's ``expires_at`` without an offset was compared with an aware "now" (TypeError), and a
time with an offset within hours of year 1 or 9999 overflowed when converted to UTC: both
500s. Every time an API route takes is a ``UtcDatetime`` (or, where an offset is required, an
aware one held as UTC): the extremes of the calendar get a 4xx, never a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import WardenFactory, auth

EXTREMES = [
    "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "0001-01-01",
    "9999-12-31T23:59:59",
]


def test_times_at_the_ends_of_the_calendar_never_make_a_5xx(
    app_client: Any, admin_token: str
) -> None:
    token = WardenFactory(app_client, admin_token).principal(
        "p", "admin", "auditor", "compliance_officer", "ml_engineer"
    )
    h = auth(token)
    # (name, method, path, the request's arguments for one time value)
    requests: list[tuple[str, str, str, Callable[[str], dict[str, Any]]]] = [
        ("entries since", "GET", "/v1/audit/entries", lambda v: {"params": {"since": v}}),
        ("entries until", "GET", "/v1/audit/entries", lambda v: {"params": {"until": v}}),
        ("export", "POST", "/v1/audit/export", lambda v: {"json": {"since": v, "until": v}}),
        ("key", "POST", "/v1/keys", lambda v: {"json": {"principal": "p", "expires_at": v}}),
        (
            "monitor",
            "POST",
            "/v1/fairness/monitor",
            lambda v: {"json": {"model": "m", "since": v, "until": v}},
        ),
        ("report", "POST", "/v1/reports", lambda v: {"json": {"from": v, "to": v}}),
    ]
    for value in EXTREMES:
        for name, method, path, arguments in requests:
            r = app_client.request(method, path, headers=h, **arguments(value))
            assert r.status_code < 500, (name, value, r.text)
            if r.status_code >= 400:
                assert r.headers["content-type"].startswith("application/problem+json")
            if value.endswith(("+05:00", "-05:00")):
                assert r.status_code == 422, (name, value, r.text)
                assert "outside what UTC can represent" in r.text, (name, r.text)


def test_a_key_expiry_without_an_offset_is_read_as_utc(app_client: Any, admin_token: str) -> None:
    WardenFactory(app_client, admin_token).principal("svc", kind="service")
    r = app_client.post(
        "/v1/keys",
        json={"principal": "svc", "expires_at": "2999-01-02T03:04:05"},
        headers=auth(admin_token),
    )
    assert r.status_code == 201, r.text
    assert r.json()["expires_at"] == "2999-01-02T03:04:05Z"
    r = app_client.post(
        "/v1/keys",
        json={"principal": "svc", "expires_at": "2000-01-01T00:00:00"},
        headers=auth(admin_token),
    )
    assert r.status_code == 422 and "future" in r.json()["detail"], r.text
