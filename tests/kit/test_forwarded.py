"""Reading the client's address from a forwarding header, only behind trusted proxies."""

from __future__ import annotations

from typing import Any

import pytest

from governance.config import Settings, load_settings
from governance.errors import ConfigurationError
from governance.kit.forwarded import TrustedProxies, parse_networks
from governance.limits import address_subject

PROXIES = TrustedProxies(parse_networks(["10.0.0.0/8", "127.0.0.1", "2001:db8::/32"]))


def scope(*headers: tuple[str, str]) -> dict[str, Any]:
    return {"type": "http", "headers": [(k.encode(), v.encode()) for k, v in headers]}


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # No proxy in front: the header is the client's own writing.
        ("198.51.100.4", [("x-forwarded-for", "6.6.6.6")], "198.51.100.4"),
        # One proxy: the address it appended.
        ("10.0.0.2", [("x-forwarded-for", "203.0.113.9")], "203.0.113.9"),
        # What the client wrote sits left of it and is ignored.
        ("10.0.0.2", [("x-forwarded-for", "6.6.6.6, 203.0.113.9")], "203.0.113.9"),
        # Two proxies in a row, and the header repeated.
        (
            "10.0.0.2",
            [("x-forwarded-for", "203.0.113.9"), ("x-forwarded-for", "10.1.1.1")],
            "203.0.113.9",
        ),
        # A proxy without a header, or with garbage: the proxy is all that is known.
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", [("x-forwarded-for", "6.6.6.6, not-an-ip")], "10.0.0.2"),
        # Every hop trusted: the left-most.
        ("10.0.0.2", [("x-forwarded-for", "10.9.9.9, 10.1.1.1")], "10.9.9.9"),
        # Ports and IPv6 brackets as proxies write them.
        ("10.0.0.2", [("x-forwarded-for", "203.0.113.9:5123")], "203.0.113.9"),
        ("2001:db8::1", [("x-forwarded-for", "[2001:db9::7]:443")], "2001:db9::7"),
        # The other header is not read: the proxy writes X-Forwarded-For, not Forwarded.
        ("10.0.0.2", [("forwarded", "for=6.6.6.6")], "10.0.0.2"),
    ],
)
def test_x_forwarded_for(peer: str, headers: list[tuple[str, str]], client: str) -> None:
    assert PROXIES.client(peer, scope(*headers)) == client


def test_forwarded_when_the_proxies_write_it() -> None:
    proxies = TrustedProxies(parse_networks(["10.0.0.0/8"]), "forwarded")
    chain = 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.9'
    assert proxies.client("10.0.0.2", scope(("forwarded", chain))) == "2001:db8:cafe::17"
    # The header the client sent through untouched is never believed.
    forged = scope(("x-forwarded-for", "6.6.6.6"))
    assert proxies.client("10.0.0.2", forged) == "10.0.0.2"
    # An obfuscated identifier (RFC 7239 6.3) is not an address: the proxy is the source.
    assert proxies.client("10.0.0.2", scope(("forwarded", "for=_hidden"))) == "10.0.0.2"


def test_no_proxies_by_default() -> None:
    assert Settings().trusted_proxies == []
    assert not TrustedProxies(parse_networks([]))


def test_a_proxy_that_is_not_an_address_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_TRUSTED_PROXIES", "10.0.0.1, proxy.example")
    with pytest.raises(ConfigurationError, match=r"WARDEN_TRUSTED_PROXIES.*'proxy\.example'"):
        load_settings()
    monkeypatch.setenv("WARDEN_TRUSTED_PROXIES", "10.0.0.1, 10.2.0.0/16")
    assert load_settings().trusted_proxies == ["10.0.0.1", "10.2.0.0/16"]


@pytest.mark.parametrize(
    ("ip", "subject"),
    [
        ("203.0.113.9", "203.0.113.9"),
        # One IPv6 host holds a whole /64: counted as one.
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::2", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        (None, "unknown"),
        ("testclient", "unknown"),
    ],
)
def test_what_an_address_is_counted_as(ip: str | None, subject: str) -> None:
    assert address_subject(ip) == subject
