"""Forwarding headers, as the spoofing they must not allow, against live servers (item 11).

A client writes ``X-Forwarded-For`` (or ``Forwarded``) itself. Unless its TCP peer is a
configured proxy, the header must change neither the address its audit entries record nor the
address its rate limit counts. With a trusted proxy, the right-most address the proxies did not
write is the client's.
"""

from __future__ import annotations

from governance.config import Settings
from governance.kit.http import client as http_client
from governance.limits import SUMMARY_EVENT
from tests.conftest import WardenFactory, auth
from tests.security.test_rate_limits import (
    ATTACKER,
    StartServer,
    assert_rate_limited,
    attacker,
    entries,
    limits_yaml,
    start_server,  # noqa: F401 (the fixture)
    stored_entries,
    wrong_key,
)


def test_a_forged_forwarding_header_changes_nothing(
    start_server: StartServer,  # noqa: F811
    settings: Settings,
    admin_token: str,
) -> None:
    server = start_server(limits_yaml(failed=3))
    with http_client(base_url=server.url, timeout=30) as http:
        factory = WardenFactory(http, admin_token)
        auditor = factory.principal("aud", "auditor")
        spoof = {"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6"}
        with attacker(server.url) as evil:
            r = evil.get("/v1/audit/entries", headers={**auth(auditor), **spoof})
            assert r.status_code == 200
            request_id = r.headers["x-request-id"]
            # A fresh forged address with each wrong key does not buy a fresh limit.
            statuses = [
                evil.get(
                    "/v1/models",
                    headers={**wrong_key(), "X-Forwarded-For": f"6.6.6.{i}"},
                ).status_code
                for i in range(10)
            ]
        assert statuses == [401] * 3 + [429] * 7
        (entry,) = entries(http, auditor, request_id=request_id)
        assert entry["source"]["ip"] == ATTACKER  # the real peer, not 6.6.6.6
        calls = entries(http, auditor, event_type="api.call")
    assert not [e for e in calls if e["source"]["ip"].startswith("6.6.6.")]
    # A clean stop audits the open window's count (it was once lost, waiting out the deadline).
    server.stop()
    (summary,) = [e for e in stored_entries(settings) if e["event_type"] == SUMMARY_EVENT]
    assert summary["source"]["ip"] == ATTACKER
    assert summary["details"]["count"] == 9  # the first refusal was audited in full
    assert summary["details"]["by_status"] == {"401": 2, "429": 7}
    assert "not yet audited" not in server.log_tail(100_000)


def test_a_trusted_proxy_is_believed_from_the_right(
    start_server: StartServer,  # noqa: F811
    settings: Settings,
    admin_token: str,
) -> None:
    # The proxy runs on this host (127.0.0.1); 127.0.0.2 is a client that reaches the server
    # past it.
    server = start_server(limits_yaml(failed=3), WARDEN_TRUSTED_PROXIES="127.0.0.1")
    with http_client(base_url=server.url, timeout=30) as proxy:
        factory = WardenFactory(proxy, admin_token)
        auditor = factory.principal("aud", "auditor")
        # The client wrote 1.1.1.1; the proxy appended the address it received from.
        r = proxy.get(
            "/v1/models",
            headers={**auth(auditor), "X-Forwarded-For": "1.1.1.1, 203.0.113.9"},
        )
        via_proxy = r.headers["x-request-id"]
        with attacker(server.url) as direct:
            r = direct.get(
                "/v1/models", headers={**auth(auditor), "X-Forwarded-For": "203.0.113.9"}
            )
            around_proxy = r.headers["x-request-id"]
        # The limit counts the forwarded client: 203.0.113.9 is blocked, 203.0.113.10 is not.
        for _ in range(3):
            r = proxy.get("/v1/models", headers={**wrong_key(), "X-Forwarded-For": "203.0.113.9"})
            assert r.status_code == 401
        assert_rate_limited(
            proxy.get("/v1/models", headers={**wrong_key(), "X-Forwarded-For": "203.0.113.9"})
        )
        r = proxy.get("/v1/models", headers={**wrong_key(), "X-Forwarded-For": "203.0.113.10"})
        assert r.status_code == 401
        (first,) = entries(proxy, auditor, request_id=via_proxy)
        (second,) = entries(proxy, auditor, request_id=around_proxy)
    assert first["source"]["ip"] == "203.0.113.9"
    assert second["source"]["ip"] == ATTACKER  # not a proxy: its header is not read
