"""Rate limits, as the attacks they stop, against live servers (issue 25, item 4).

- A flood of requests with no key or a wrong one from one address: 401 up to the limit, then
  429 with ``Retry-After``, and the audit log gains two entries (the first refusal, then one
  summary with the count), not one per request. A valid key from that address is refused too: guessing stops.
- A valid caller the policy denies keeps one audit entry per denial.
- Two ``warden serve`` processes on one database: the per-address limit holds in sum.
- A principal hammering predict, or queueing heavy jobs, is limited per principal.

The attacker's requests leave from 127.0.0.2, every other caller's from 127.0.0.1 (both are
loopback on Linux), so that the attacker's block does not fall on the auditor reading the log.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from governance.audit.models import AuditEntry
from governance.cli.server_process import ServerProcess
from governance.config import Settings
from governance.db import make_engine
from governance.kit.http import client as http_client
from governance.limits import SUMMARY_EVENT
from tests.conftest import WardenFactory, auth, serve_toy, settings_env
from tests.factories import policies_copy, toy_record

ATTACKER = "127.0.0.2"

LIMITS = """\
format: warden.limits/1
failed_auth: {{requests: {failed}, per_seconds: 60}}
predict: {{requests: {predict}, per_seconds: 60}}
jobs:
  requests: {jobs}
  per_seconds: 60
  actions: [api:audit verify, api:audit export, api:training train]
"""

StartServer = Callable[..., ServerProcess]


def limits_yaml(*, failed: int = 1000, predict: int = 100_000, jobs: int = 1000) -> str:
    return LIMITS.format(failed=failed, predict=predict, jobs=jobs)


@pytest.fixture
def start_server(settings: Settings, admin_token: str, tmp_path: Path) -> Iterator[StartServer]:
    """Starts ``warden serve`` processes on the test's database with the given limits.yaml."""
    servers: list[ServerProcess] = []

    def start(limits: str, **env: str) -> ServerProcess:
        folder = policies_copy(tmp_path / f"p{len(servers)}", limits_yaml=limits)
        environment = {**settings_env(settings), "WARDEN_POLICIES_DIR": str(folder), **env}
        server = ServerProcess(environment, tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        return server.start()

    yield start
    # Stopped together, not one after the other: each clean stop waits on its final audit
    # writes, up to the journal's commit timeout when the other server holds the database.
    with ThreadPoolExecutor() as pool:
        list(pool.map(ServerProcess.stop, servers))


def attacker(url: str) -> httpx.Client:
    """A client whose connections leave from the attacker's own address."""
    transport = httpx.HTTPTransport(local_address=ATTACKER)
    return http_client(base_url=url, transport=transport, timeout=30)


def wrong_key() -> dict[str, str]:
    # Well formed, so that each one is looked up like a real key.
    return auth(f"wdn_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}")


def entries(http: httpx.Client, token: str, **query: Any) -> list[dict[str, Any]]:
    r = http.get("/v1/audit/entries", params={"limit": 1000, **query}, headers=auth(token))
    assert r.status_code == 200, r.text
    return [e["document"] for e in r.json()["entries"]]


def stored_entries(settings: Settings) -> list[dict[str, Any]]:
    """Every entry, read from the database itself (after the servers stopped)."""
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(AuditEntry.canonical).order_by(AuditEntry.seq)).scalars()
            return [json.loads(row) for row in rows]
    finally:
        engine.dispose()


def assert_rate_limited(r: httpx.Response) -> int:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/rate-limited")
    wait = int(r.headers["retry-after"])  # whole seconds (RFC 9110 10.2.3)
    assert 1 <= wait <= 120
    return wait


def test_a_flood_of_wrong_keys_is_refused_and_summarised(
    start_server: StartServer, settings: Settings, admin_token: str
) -> None:
    server = start_server(limits_yaml(failed=5))
    with http_client(base_url=server.url, timeout=30) as http:
        factory = WardenFactory(http, admin_token)
        auditor = factory.principal("aud", "auditor")
        nobody = factory.principal("nobody", kind="service")
        with attacker(server.url) as evil:
            # No key at all, or a wrong one: both are failed authentications.
            statuses = [
                evil.get("/v1/models", headers=wrong_key() if i % 2 else {}).status_code
                for i in range(30)
            ]
            assert statuses == [401] * 5 + [429] * 25
            assert_rate_limited(evil.get("/v1/models", headers=wrong_key()))
            # Past the limit a right key from the address is refused as well: a guess that
            # happened to be right would not be told apart from the wrong ones.
            assert_rate_limited(evil.get("/v1/models", headers=auth(auditor)))
        # Other addresses are not touched by the attacker's block.
        assert http.get("/v1/models", headers=wrong_key()).status_code == 401
        # A valid caller the policy denies: each denial is its own entry.
        for _ in range(4):
            assert http.get("/v1/audit/entries", headers=auth(nobody)).status_code == 403
        calls = entries(http, auditor, event_type="api.call")
    from_attacker = [e for e in calls if e["source"]["ip"] == ATTACKER]
    assert len(from_attacker) == 1  # the first refusal, in full; the 31 others are counted
    assert from_attacker[0]["outcome"] == 401
    denials = [e for e in calls if e["actor"]["name"] == "nobody" and e["outcome"] == 403]
    assert len(denials) == 4
    server.stop()  # a clean stop writes the open window's summary
    stored = stored_entries(settings)
    summaries = [e for e in stored if e["event_type"] == SUMMARY_EVENT]
    assert len(summaries) == 1, summaries
    (summary,) = summaries
    assert summary["source"]["ip"] == ATTACKER
    assert summary["resource"] == {"limit": "failed_auth"}
    assert summary["details"]["count"] == 31
    assert summary["details"]["by_status"] == {"401": 4, "429": 27}
    assert len([e for e in stored if e["source"]["ip"] == ATTACKER]) == 2


def test_unknown_routes_and_malformed_bodies_count_as_failures(
    start_server: StartServer, settings: Settings
) -> None:
    # No key is needed to be answered 404 or 422: without the limit, each such request was
    # one more durable audit entry.
    server = start_server(limits_yaml(failed=5))
    with attacker(server.url) as evil:
        statuses = [evil.get(f"/v1/nope-{i}").status_code for i in range(10)]
        assert statuses == [404] * 5 + [429] * 5
        # Blocked before routing: the enrolment route is not reached either.
        assert_rate_limited(evil.post("/v1/enrol", content=b"{"))
    other = httpx.HTTPTransport(local_address="127.0.0.3")
    with http_client(base_url=server.url, transport=other, timeout=30) as evil:
        statuses = [evil.post("/v1/enrol", content=b"{").status_code for _ in range(10)]
        assert statuses == [422] * 5 + [429] * 5
    server.stop()
    stored = stored_entries(settings)
    for ip, counted in (
        (ATTACKER, {"404": 4, "429": 6}),
        ("127.0.0.3", {"422": 4, "429": 5}),
    ):
        mine = [e for e in stored if e["source"]["ip"] == ip]
        # The first refusal in full, then one summary: not an entry per request.
        assert [e["event_type"] for e in mine] == ["api.call", SUMMARY_EVENT], mine
        assert mine[1]["details"]["by_status"] == counted


def test_the_address_limit_holds_in_sum_across_two_servers(
    start_server: StartServer, db_url: str
) -> None:
    limits = limits_yaml(failed=5)
    servers = [start_server(limits), start_server(limits)]
    clients = [attacker(s.url) for s in servers]
    try:
        statuses = [
            clients[i % 2].get("/v1/models", headers=wrong_key()).status_code for i in range(30)
        ]
    finally:
        for client in clients:
            client.close()
    # Five 401s between the two servers, not five each: the counts meet in the database.
    assert statuses.count(401) == 5, statuses
    assert statuses.count(429) == 25
    assert statuses[:5] == [401] * 5


def test_a_principal_is_limited_on_predict_and_on_heavy_jobs(
    start_server: StartServer, settings: Settings, admin_token: str, make_artifact: Any
) -> None:
    server = start_server(limits_yaml(predict=5, jobs=2))
    with http_client(base_url=server.url, timeout=30) as http:
        factory = WardenFactory(http, admin_token)
        client, _ = serve_toy(factory, make_artifact)
        other = factory.principal("app-2", "client", kind="service")
        auditor = factory.principal("aud", "auditor")

        def predict(token: str) -> httpx.Response:
            body = {"record": toy_record(1)}
            return http.post("/v1/models/toy/predict", json=body, headers=auth(token))

        statuses = [predict(client).status_code for _ in range(8)]
        assert statuses == [200] * 5 + [429] * 3
        assert_rate_limited(predict(client))
        assert predict(other).status_code == 200  # per principal: another is untouched
        # Heavy jobs: the third within the window is refused before it runs.
        for _ in range(2):
            assert http.post("/v1/audit/verify", headers=auth(auditor)).status_code == 200
        assert_rate_limited(http.post("/v1/audit/verify", headers=auth(auditor)))
        calls = entries(http, auditor, event_type="api.call")
    limited = [e for e in calls if e["outcome"] == 429]
    # The first refusal of each principal in full; the others go to the summaries.
    assert sorted(e["actor"]["name"] for e in limited) == ["app", "aud"]
    assert {e["reason"] for e in limited} == {"rate limit: predict", "rate limit: jobs"}
    server.stop()
    summaries = [e for e in stored_entries(settings) if e["event_type"] == SUMMARY_EVENT]
    assert {(e["actor"]["name"], e["details"]["count"]) for e in summaries} == {("app", 3)}
