"""Heavy work cannot stall the service (issue 25, item 6).

The attack: a user allowed to audit starts several bias audits with the most bootstrap rounds
at once, while a client makes predictions. Before, each audit computed inside SQLite's write
transaction: every other request waited, predictions answered 503 or stalled for seconds. Now
an audit computes with no transaction open, in a bounded per-process queue: predictions keep
flowing, the audit beyond the running one waits its turn (and succeeds), and the one beyond the
queue is refused at once with 503 and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from governance.cli.server_process import ServerProcess
from governance.config import Settings
from governance.jobs import HeavyJobs, HeavyJobsBusy
from governance.kit.http import client as http_client
from tests.conftest import ArtifactBuilder, WardenFactory, auth, serve_toy, settings_env
from tests.factories import toy_record, upload_body
from tests.fairness.conftest import adult_logreg

AUDIT = {"model": "adult-lr", "sensitive": ["sex", "race"], "bootstrap": 2000}


@pytest.fixture
def server(settings: Settings, admin_token: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """``warden serve`` computing one heavy job at a time with one more allowed to wait."""
    env = settings_env(settings)
    env.update(WARDEN_HEAVY_JOBS_CONCURRENCY="1", WARDEN_HEAVY_JOBS_QUEUE="1")
    proc = ServerProcess(env, tmp_path / "server.log").start()
    yield proc
    proc.stop()


def test_a_burst_of_bootstrap_audits_neither_stalls_predictions_nor_queues_without_bound(
    server: ServerProcess, admin_token: str, make_artifact: ArtifactBuilder, tmp_path: Path
) -> None:
    with http_client(base_url=server.url, timeout=120) as http:
        factory = WardenFactory(http, admin_token)
        client, _ = serve_toy(factory, make_artifact)
        engineer = factory.principal("eve-engineer", "ml_engineer")
        r = http.post(
            "/v1/models",
            json=upload_body(adult_logreg(tmp_path / "adult-lr-1")),
            headers=auth(engineer),
        )
        assert r.status_code == 201, r.text

        done = threading.Event()
        latencies: list[float] = []
        statuses: list[int] = []

        def hammer() -> None:
            with http_client(base_url=server.url, timeout=30) as predictor:
                i = 0
                while not done.is_set():
                    started = time.perf_counter()
                    r = predictor.post(
                        "/v1/models/toy/predict",
                        json={"record": toy_record(i)},
                        headers=auth(client),
                    )
                    latencies.append(time.perf_counter() - started)
                    statuses.append(r.status_code)
                    i += 1

        def audit(_: int) -> httpx.Response:
            with http_client(base_url=server.url, timeout=300) as auditor:
                return auditor.post("/v1/fairness/audits", json=AUDIT, headers=auth(engineer))

        predictor = threading.Thread(target=hammer)
        predictor.start()
        try:
            started = time.perf_counter()
            with ThreadPoolExecutor(3) as pool:
                answers = list(pool.map(audit, range(3)))
            audits_took = time.perf_counter() - started
        finally:
            done.set()
            predictor.join()

    by_status = sorted(a.status_code for a in answers)
    # One computed at once, one waited its turn and was answered; the third was refused.
    assert by_status == [201, 201, 503], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 503)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["type"].endswith("/heavy-jobs-busy")
    assert refused.json()["running"] == 1 and refused.json()["waiting"] == 1
    stored = [a.json() for a in answers if a.status_code == 201]
    assert all(a["bootstrap"] == 2000 and a["passed"] is False for a in stored)

    # Predictions never waited on the audits: none refused, the slowest 1% well under a second
    # while the audits took far longer.
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 2 else latencies[0]
    assert p99 < 0.5, (p99, max(latencies), audits_took, len(latencies))
    assert audits_took > 4 * p99


def test_the_queue_keeps_order_positions_and_its_bound() -> None:
    async def scenario() -> None:
        jobs = HeavyJobs(concurrency=1, queue_max=2)
        order: list[str] = []
        gate = asyncio.Event()

        async def job(name: str) -> None:
            async with jobs.slot(name):
                order.append(name)
                await gate.wait()

        first = asyncio.create_task(job("a"))
        await asyncio.sleep(0)
        second = asyncio.create_task(job("b"))
        third = asyncio.create_task(job("c"))
        await asyncio.sleep(0)
        assert jobs.state().running == 1 and jobs.state().waiting == 2
        assert [jobs.position(w) for w in list(jobs._waiters)] == [1, 2]
        with pytest.raises(HeavyJobsBusy) as busy:
            async with jobs.slot("d"):
                pass
        assert busy.value.status_code == 503 and busy.value.retry_after > 0
        # A waiter whose client went away leaves the queue without taking a slot.
        second.cancel()
        await asyncio.sleep(0)
        assert jobs.state().waiting == 1
        gate.set()
        await asyncio.gather(first, third)
        assert order == ["a", "c"]
        assert jobs.state().running == 0 and jobs.state().waiting == 0

    asyncio.run(scenario())
