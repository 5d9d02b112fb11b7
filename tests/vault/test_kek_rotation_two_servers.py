"""Two real server processes on one database and one key file: a KEK rotated through one is
the KEK the other wraps its next data keys under, so a rotation leaves nothing behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from governance.config import Settings
from governance.kit.http import client as http_client
from tests.conftest import ArtifactBuilder, LiveServer, auth
from tests.policy.test_propagation import server_pair
from tests.records.conftest import Setup, serve_toy


@pytest.fixture
def servers(settings: Settings, admin_token: str, tmp_path: Path) -> Iterator[list[LiveServer]]:
    yield from server_pair(settings, tmp_path)


def test_a_kek_rotated_through_one_server_is_used_by_the_other(
    servers: list[LiveServer], admin_token: str, make_artifact: ArtifactBuilder
) -> None:
    a_srv, b_srv = servers
    with (
        http_client(base_url=a_srv.url, timeout=30) as a,
        http_client(base_url=b_srv.url, timeout=30) as b,
    ):
        through_a = serve_toy(a, admin_token, make_artifact)
        deadline = time.monotonic() + 15
        while "toy" not in b.get("/readyz").json().get("models", []):
            assert time.monotonic() < deadline, "server B never served the toy model"
            time.sleep(0.05)
        through_b = Setup(b, through_a.factory, through_a.client, through_a.auditor, admin_token)
        # B was started under kek-1 and wraps a key under it, once it has followed the policy
        # change that opened the model to clients (propagation is bounded, not instant).
        while (first := through_b.predict(subject_id="before")).status_code == 403:
            assert time.monotonic() < deadline, "server B never allowed the client"
            time.sleep(0.05)
        assert first.status_code == 200, first.text

        r = a.post("/v1/vault/kek/rotate", json={"reason": "yearly"}, headers=auth(admin_token))
        assert r.status_code == 200, r.text
        assert (r.json()["to_kek"], r.json()["rewrapped"]) == ("kek-2", 1)

        # B's next new data key is under kek-2, without a restart.
        assert through_b.predict(subject_id="after").status_code == 200
        status = b.get("/v1/vault/kek", headers=auth(admin_token)).json()
        assert status["current"] == "kek-2"
        assert status["deks_per_kek"] == {"kek-2": 2}
        # Both records still open through either server.
        for http in (a, b):
            listed = http.get("/v1/records", headers=auth(through_a.auditor)).json()
            ids = [item["id"] for item in listed]
            assert len(ids) == 2
            for record_id in ids:
                opened = http.post(
                    f"/v1/records/{record_id}/decrypt",
                    json={"purpose": "dispute review #42"},
                    headers=auth(through_a.auditor),
                )
                assert opened.status_code == 200, opened.text
