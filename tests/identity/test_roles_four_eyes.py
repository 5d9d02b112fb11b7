"""With a second approval required, a role grant waits for another compliance officer."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from governance.api.app import create_app
from governance.config import Settings
from tests.conftest import auth


@pytest.fixture
def four_eyes_client(settings: Settings, admin_token: str) -> Any:
    cfg = settings.model_copy(update={"require_second_approval": True})
    with TestClient(create_app(cfg), raise_server_exceptions=False) as client:
        yield client


def test_role_grant_becomes_a_proposal(four_eyes_client: Any, admin_token: str) -> None:
    client = four_eyes_client
    r = client.post(
        "/v1/principals", json={"name": "bob", "kind": "user"}, headers=auth(admin_token)
    )
    assert r.status_code == 201
    r = client.post(
        "/v1/roles/grant",
        json={"principal": "bob", "role": "auditor", "reason": "quarterly audit"},
        headers=auth(admin_token),
    )
    assert r.status_code == 202, r.text
    assert r.json()["granted"] is False and r.json()["status"] == "pending"
    # Nothing took effect: the policy holds no role for bob until a second officer approves.
    policy = client.get("/v1/policy", headers=auth(admin_token)).json()
    assert ["g", "bob", "role:auditor"] not in policy["rules"]
