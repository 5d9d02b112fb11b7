"""End to end: acknowledged predictions survive ``kill -9``, and server processes sharing one
PostgreSQL database write one gap-free chain."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from governance.audit.repository import snapshot_session
from governance.audit.signing import load_signing_key, public_vkey
from governance.audit.verify import verify_log
from governance.config import Settings
from governance.kit.http import client as http_client
from tests.conftest import (
    POSTGRES_URL,
    ArtifactBuilder,
    LiveServer,
    WardenFactory,
    auth,
    serve_toy,
)
from tests.factories import toy_record

pytestmark = pytest.mark.reliability


@dataclass
class Serving:
    server: LiveServer
    client_token: str


@pytest.fixture
def serving(live_server: LiveServer, admin_token: str, make_artifact: ArtifactBuilder) -> Serving:
    """The toy model served on a server of this test's own, at hand to kill and restart."""
    with http_client(base_url=live_server.url, timeout=30) as http:
        client, _ = serve_toy(WardenFactory(http, admin_token), make_artifact)
    return Serving(live_server, client)


def load(
    urls: list[str],
    token: str,
    stop: threading.Event,
    workers: int,
    acked: list[tuple[str, int, str]],
) -> None:
    """Concurrent predict calls until ``stop``; appends (request id, audit seq, url) of every
    200 to ``acked`` as it comes, so that the test can act once enough are acknowledged."""
    lock = threading.Lock()

    def worker(number: int) -> None:
        url = urls[number % len(urls)]
        with http_client(base_url=url, timeout=10) as http:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    r = http.post(
                        "/v1/models/toy/predict",
                        json={"record": toy_record(i)},
                        headers=auth(token),
                    )
                except httpx.HTTPError:
                    if stop.is_set():
                        return
                    time.sleep(0.01)  # the server is down: a real client retries
                    continue
                if r.status_code == 200:
                    body = r.json()
                    with lock:
                        acked.append((body["request_id"], body["audit_seq"], url))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(timeout=30)


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail the test if it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the load did not get going"
        time.sleep(0.05)


def verify_all_acknowledged(settings: Settings, acked: list[tuple[str, int]]) -> int:
    vkey = public_vkey(settings.log_origin, load_signing_key(settings.resolved_signing_key_file))
    with snapshot_session(settings.resolved_database_url) as session:
        report = verify_log(session, vkey)
        stored = dict(
            session.execute(
                # The call's own api.call entry: other events of the same request (a data key
                # created for it) carry its request id too.
                text(
                    "SELECT request_id, seq FROM audit_entries "
                    "WHERE request_id IS NOT NULL AND event_type = 'api.call'"
                )
            ).all()
        )
    missing = [(rid, seq) for rid, seq in acked if stored.get(rid) != seq]
    assert not missing, f"{len(missing)} acknowledged requests lack their entry: {missing[:3]}"
    assert len({seq for _, seq in acked}) == len(acked)
    return report.tree_size


def test_kill_9_loses_no_acknowledged_request(serving: Serving, settings: Settings) -> None:
    stop = threading.Event()
    acked: list[tuple[str, int, str]] = []
    runner = threading.Thread(
        target=load, args=([serving.server.url], serving.client_token, stop, 8, acked)
    )
    runner.start()
    try:
        wait_until(lambda: len(acked) > 100)  # well into the load, appends in flight
    finally:
        serving.server.stop(kill=True)  # SIGKILL mid-load: no shutdown hook runs
        stop.set()
        runner.join(timeout=60)
    result = [(rid, seq) for rid, seq, _ in acked]
    assert len(result) > 20, "the load did not get going before the kill"
    print(f"{len(result)} acknowledged before kill -9")
    before = verify_all_acknowledged(settings, result)

    serving.server.start()
    with http_client(base_url=serving.server.url, timeout=10) as http:
        r = http.post(
            "/v1/models/toy/predict",
            json={"record": toy_record(0)},
            headers=auth(serving.client_token),
        )
        assert r.status_code == 200, r.text
        # The chain continues right after the last entry that reached the disk.
        assert r.json()["audit_seq"] >= before
    serving.server.stop()
    assert verify_all_acknowledged(
        settings, [*result, (r.json()["request_id"], r.json()["audit_seq"])]
    )


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs WARDEN_TEST_POSTGRES_URL")
def test_two_servers_share_one_gap_free_chain(
    serving: Serving, settings: Settings, tmp_path: Path
) -> None:
    if not settings.resolved_database_url.startswith("postgresql"):
        pytest.skip("several server processes share a PostgreSQL database, not SQLite")
    second = LiveServer(settings, tmp_path / "second.log")
    second.start()
    try:
        stop = threading.Event()
        acked: list[tuple[str, int, str]] = []
        urls = [serving.server.url, second.url]
        runner = threading.Thread(target=load, args=(urls, serving.client_token, stop, 8, acked))
        runner.start()
        try:
            # Both servers appending at once, long enough for their batches to interleave.
            wait_until(lambda: all(sum(u == url for *_, u in acked) > 100 for url in urls))
        finally:
            stop.set()
            runner.join(timeout=60)
    finally:
        second.stop()
    serving.server.stop()
    result = [(rid, seq) for rid, seq, _ in acked]
    assert len(result) > 20
    print(f"{len(result)} acknowledged through two servers")
    size = verify_all_acknowledged(settings, result)
    seqs = sorted(seq for _, seq in result)
    assert seqs[-1] < size
