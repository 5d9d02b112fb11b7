"""A served toy model behind a real server, with a client allowed to call it."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import WardenFactory, serve_toy
from tests.servers import SharedServer


@dataclass
class Served:
    url: str
    client: str
    stranger: str
    admin: str
    factory: WardenFactory
    http: httpx.Client
    shared: SharedServer


@pytest.fixture(scope="module")
def served(shared_server: SharedServer) -> Served:
    """The module's server with ``toy`` 1 served; its tests call it and create nothing shared."""
    s = shared_server
    client, stranger = serve_toy(s.warden, s.artifact, names=s.unique)
    return Served(s.url, client, stranger, s.admin, s.warden, s.http, s)
