"""The database goes away: requests get 503 problem+json (never an unaudited answer, never a
500), and the service recovers by itself when the database returns. PostgreSQL only: an
outage is simulated by refusing new connections and terminating the server's sessions."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from governance.config import Settings
from governance.kit.http import client as http_client
from tests.conftest import POSTGRES_URL, ArtifactBuilder, LiveServer, auth
from tests.factories import toy_record
from tests.reliability.conftest import logged_request_ids, serve_toy, verify

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not POSTGRES_URL, reason="needs WARDEN_TEST_POSTGRES_URL"),
]


def _admin_exec(sql: str) -> None:
    assert POSTGRES_URL
    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.fixture
def postgres_only(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("the outage is simulated on PostgreSQL")


def test_outage_then_recovery(
    postgres_only: None,
    settings: Settings,
    admin_token: str,
    live_server: LiveServer,
    make_artifact: ArtifactBuilder,
) -> None:
    dbname = make_url(settings.resolved_database_url).database
    acknowledged: list[str] = []
    with http_client(base_url=live_server.url, timeout=30) as http:
        _, client = serve_toy(http, admin_token, make_artifact("toy", "1"))

        def call(i: int) -> int:
            r = http.post(
                "/v1/models/toy/predict", json={"record": toy_record(i)}, headers=auth(client)
            )
            if r.status_code == 200:
                acknowledged.append(r.json()["request_id"])
            else:
                assert r.headers["content-type"] == "application/problem+json", r.text
            return r.status_code

        assert call(0) == 200
        _admin_exec(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        _admin_exec(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{dbname}' AND pid <> pg_backend_pid()"
        )
        try:
            during = [call(i) for i in range(1, 11)]
            assert set(during) == {503}, during
            r = http.get("/readyz")
            assert r.status_code == 503
        finally:
            _admin_exec(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and call(99) != 200:
            time.sleep(0.5)
        assert [call(i) for i in range(100, 110)] == [200] * 10
        assert http.get("/readyz").status_code == 200
    assert verify(settings).tree_size > 0
    assert set(acknowledged) <= logged_request_ids(settings)
