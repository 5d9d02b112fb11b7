"""A served toy model behind a real server, with a client allowed to call it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import ArtifactBuilder, LiveServer, WardenFactory, auth
from tests.factories import upload_body


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
        engineer = factory.principal("eng", "ml_engineer")
        r = http.post(
            "/v1/models", json=upload_body(make_artifact("toy", "1")), headers=auth(engineer)
        )
        assert r.status_code == 201, r.text
        factory.override_gate("toy", "1")
        r = http.post("/v1/models/toy/versions/1/promote", headers=auth(admin_token))
        assert r.status_code == 200, r.text
        factory.policy_change(
            [["g2", "model:toy", "group:default-models"]], reason="toy may be called by clients"
        )
        client = factory.principal("app", "client", kind="service")
        stranger = factory.principal("nobody", kind="service")
        yield Served(live_server.url, client, stranger, admin_token, factory, http)
