"""A served toy model behind a real server, with a client allowed to call it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import ArtifactBuilder, LiveServer, WardenFactory, serve_toy


@dataclass
class Served:
    url: str
    client: str
    stranger: str
    admin: str
    factory: WardenFactory
    http: httpx.Client


@pytest.fixture
def served(
    live_server: LiveServer, admin_token: str, make_artifact: ArtifactBuilder
) -> Iterator[Served]:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        factory = WardenFactory(http, admin_token)
        client, stranger = serve_toy(factory, make_artifact)
        yield Served(live_server.url, client, stranger, admin_token, factory, http)
