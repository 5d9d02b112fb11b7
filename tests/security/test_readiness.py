"""/readyz says ready only while the audit path works (issue 25, item 12).

The attack: break the journal (make every audit write fail, or stop the writer process) so
that a load balancer keeps sending traffic to a replica that answers every request 503, or,
worse, one that would answer without auditing. Expected: while the writer fails, every request
is refused (503 problem+json, never an unaudited 200) and /readyz answers 503 naming the audit
log; once the writer works again, /readyz answers 200 and requests succeed, without a restart.
On SQLite and PostgreSQL, against a live ``warden serve`` with its writer process.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from governance.config import Settings
from governance.db import make_engine
from governance.kit.http import client as http_client
from tests.audit_faults import refusing_audit_writes
from tests.conftest import ArtifactBuilder, LiveServer, auth
from tests.factories import toy_record
from tests.reliability.conftest import logged_request_ids, serve_toy

# Short deadlines, so the test is quick; the defaults are 2000 ms, 1000 ms and 0.5 s.
_FAST = {
    "WARDEN_AUDIT_WRITE_DEADLINE_MS": "600",
    "WARDEN_DB_PROBE_DEADLINE_MS": "500",
    "WARDEN_DB_PROBE_INTERVAL_SECONDS": "0.2",
}


@pytest.fixture
def served(
    settings: Settings, admin_token: str, tmp_path: Path, make_artifact: ArtifactBuilder
) -> Iterator[tuple[LiveServer, str]]:
    server = LiveServer(settings, tmp_path / "server.log")
    server.env.update(_FAST)
    server.start()
    try:
        with http_client(base_url=server.url, timeout=30) as http:
            _, client = serve_toy(http, admin_token, make_artifact("toy", "1"))
        yield server, client
    finally:
        server.stop()


def _predict(http: httpx.Client, token: str, i: int, acknowledged: list[str]) -> int:
    r = http.post("/v1/models/toy/predict", json={"record": toy_record(i)}, headers=auth(token))
    if r.status_code == 200:
        acknowledged.append(r.json()["request_id"])
    else:
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["retry-after"] == "1"
    return r.status_code


def _ready_again(http: httpx.Client, token: str, acknowledged: list[str]) -> bool:
    deadline = time.monotonic() + 15
    i = 1000
    while time.monotonic() < deadline:
        i += 1
        if http.get("/readyz").status_code == 200 and _predict(http, token, i, acknowledged) == 200:
            return True
        time.sleep(0.2)
    return False


def test_a_failing_audit_writer_makes_the_server_unready(
    served: tuple[LiveServer, str], settings: Settings
) -> None:
    server, token = served
    acknowledged: list[str] = []
    engine = make_engine(settings.resolved_database_url)
    try:
        with http_client(base_url=server.url, timeout=30) as http:
            assert _predict(http, token, 0, acknowledged) == 200
            assert http.get("/readyz").status_code == 200
            with refusing_audit_writes(engine):
                assert [_predict(http, token, i, acknowledged) for i in range(1, 6)] == [503] * 5
                r = http.get("/readyz")
                assert r.status_code == 503, r.text
                assert r.headers["content-type"] == "application/problem+json"
                assert "audit" in json.loads(r.text)["detail"]
                # Still unready while the writer keeps failing, whatever the probes find.
                time.sleep(1.2)
                assert http.get("/readyz").status_code == 503
            assert _ready_again(http, token, acknowledged), server.log_tail()
    finally:
        engine.dispose()
    assert set(acknowledged) <= logged_request_ids(settings)


def test_a_stopped_audit_writer_makes_the_server_unready_fast(
    served: tuple[LiveServer, str], settings: Settings
) -> None:
    server, token = served
    acknowledged: list[str] = []
    with http_client(base_url=server.url, timeout=30) as http:
        assert _predict(http, token, 0, acknowledged) == 200
        writer = server.writer_pid()
        os.kill(writer, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert _predict(http, token, 1, acknowledged) == 503
            assert time.monotonic() - started < 1.5  # the 600 ms deadline, not a hang
            started = time.monotonic()
            assert [_predict(http, token, i, acknowledged) for i in range(2, 7)] == [503] * 5
            assert time.monotonic() - started < 1.0  # refused at once: 5 requests
            r = http.get("/readyz")
            assert r.status_code == 503, r.text
            assert "audit" in json.loads(r.text)["detail"]
        finally:
            os.kill(writer, signal.SIGCONT)
        assert _ready_again(http, token, acknowledged), server.log_tail()
    assert set(acknowledged) <= logged_request_ids(settings)
