"""The client address behind trusted proxies: a forwarding header is believed only from them.

A client can send ``X-Forwarded-For: 6.6.6.6`` itself. Read from anyone, the header lets a
caller choose the address its audit entries record and its rate limits count. So the header is
read only when the TCP peer is one of the configured proxies (``WARDEN_TRUSTED_PROXIES``,
addresses or networks; none by default), and then from the right: each trusted proxy appends
the address it received from, so the right-most address that is not itself a trusted proxy is
the client. What lies left of it was written by the client and is ignored.

Only the header the proxies are configured to write (``WARDEN_FORWARDED_HEADER``) is read: a
proxy that appends to ``X-Forwarded-For`` passes a client's own ``Forwarded`` header through
untouched, and reading that one would let the client choose again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from starlette.types import Scope

from governance.kit.slots import Slot

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks, as ``ip_network`` reads them (host bits allowed).

    Raises:
        ValueError: an entry is neither (the message names it).
    """
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry.strip()[:64]!r} is not an IP address or network") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    """An address as a forwarding header writes it: bare, ``[v6]``, with or without a port."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # IPv4 with a port
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers") or () if k == name]


def _hops(scope: Scope, header: str) -> Iterator[str]:
    """The addresses of the header, every occurrence in order, left to right."""
    if header == "forwarded":
        # RFC 7239: elements by commas, pairs by semicolons; only ``for=`` names a hop.
        for value in _header_values(scope, b"forwarded"):
            for element in value.split(","):
                found = ""
                for pair in element.split(";"):
                    name, _, text = pair.strip().partition("=")
                    if name.lower() == "for":
                        found = text
                yield found
    else:
        for value in _header_values(scope, b"x-forwarded-for"):
            yield from value.split(",")


class TrustedProxies:
    """The proxies whose forwarding header is believed, and which header they write.

    Args:
        networks: the proxies' addresses or networks (none: no header is ever read).
        header: ``x-forwarded-for`` or ``forwarded``.
    """

    def __init__(self, networks: tuple[Network, ...], header: str = "x-forwarded-for") -> None:
        self.networks = networks
        self.header = header

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusted(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def client(self, peer: str, scope: Scope) -> str:
        """The client's address: the peer, unless a trusted proxy forwarded for someone else."""
        current = _address(peer)
        if current is None or not self.trusted(current):
            return peer
        for hop in reversed(list(_hops(scope, self.header))):
            forwarded = _address(hop)
            if forwarded is None:
                break  # not an address: the last proxy that is trusted is all that is known
            current = forwarded
            if not self.trusted(current):
                break
        return str(current)


# The process's trusted proxies, put on the app by the wiring point.
PROXIES: Slot[TrustedProxies] = Slot("proxies")
