"""The session cookie is Secure unless the listening socket is loopback-only."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from governance.identity.endpoints import _bound_to_loopback


@pytest.mark.parametrize(
    ("server", "loopback"),
    [
        (("127.0.0.1", 8000), True),
        (("::1", 8000), True),
        (("0.0.0.0", 8000), False),  # noqa: S104 (an address to judge, not to bind)
        (("10.1.2.3", 443), False),
        (("::", 8000), False),
        # A name (an in-process client, a unix socket's path) is not known to be loopback.
        (("testserver", 80), False),
        (None, False),
    ],
)
def test_secure_unless_bound_to_loopback(server: tuple[str, int] | None, loopback: bool) -> None:
    request = Request({"type": "http", "server": server, "headers": []})
    assert _bound_to_loopback(request) is loopback
