"""Two real server processes on one database: a change made through one is enforced by the other
within a bounded time, revocations beat cached decisions, and edits made while requests flow
give no wrong decision and no stall."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from governance.config import Settings
from governance.kit.http import client as http_client
from governance.policy.rules import load_rules
from tests.conftest import LiveServer, WardenFactory, auth
from tests.policy.conftest import Store

# A right outside the governance surface: a grant over it would wait for a second officer.
GRANT = ["p", "ann", "api:datasets", "read", "allow"]
# Test settings poll the change counters every 50 ms; a second is a generous bound.
BOUND_S = 2.0


@pytest.fixture
def servers(settings: Settings, admin_token: str, tmp_path: Path) -> Iterator[list[LiveServer]]:
    yield from server_pair(settings, tmp_path)


def server_pair(settings: Settings, tmp_path: Path) -> Iterator[list[LiveServer]]:
    pair = [LiveServer(settings, tmp_path / f"server-{i}.log") for i in range(2)]
    failures: list[BaseException] = []

    def start(server: LiveServer) -> None:
        try:
            server.start(timeout=60)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    # Start both at once: each spends seconds importing the inference stack.
    starters = [threading.Thread(target=start, args=(s,)) for s in pair]
    try:
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        if failures:
            raise failures[0]
        yield pair
    finally:
        for server in pair:
            server.stop()


def wait_for(client: httpx.Client, headers: dict[str, str], status: int) -> float:
    start = time.monotonic()
    while time.monotonic() - start < BOUND_S * 2:
        if client.get("/v1/datasets", headers=headers).status_code == status:
            return time.monotonic() - start
        time.sleep(0.005)
    raise AssertionError(f"still not {status} after {BOUND_S * 2} s")


Headers = dict[str, str]


@contextmanager
def people(
    pair: list[LiveServer], admin_token: str
) -> Iterator[tuple[httpx.Client, httpx.Client, Headers, Headers]]:
    """Clients of servers A and B, an officer, and ann, whom B already knows (and denies)."""
    a_srv, b_srv = pair
    with (
        http_client(base_url=a_srv.url, timeout=10) as a,
        http_client(base_url=b_srv.url, timeout=10) as b,
    ):
        factory = WardenFactory(a, admin_token)
        officer = auth(factory.principal("olivia", "compliance_officer"))
        ann = auth(factory.principal("ann"))
        # A new principal and key (identity changes) reach B too.
        wait_for(b, ann, 403)
        yield a, b, officer, ann


@pytest.mark.slow
def test_changes_propagate_and_flowing_requests_see_no_wrong_decision(
    servers: list[LiveServer], admin_token: str, store: Store
) -> None:
    with people(servers, admin_token) as (a, b, officer, ann):

        def logs() -> str:
            return "\n".join(s.log_path.read_text()[-3000:] for s in servers)

        def toggle(grant: bool) -> None:
            body = {"add": [GRANT]} if grant else {"remove": [GRANT]}
            r = a.post("/v1/policy/changes", headers=officer, json={**body, "reason": "toggle"})
            assert r.status_code == 201, r.text
            # The process that applied the change enforces it before answering.
            r = a.get("/v1/datasets", headers=ann)
            assert r.status_code == (200 if grant else 403), (r.text, logs())

        # Propagation, both ways; B has ann's decision cached each time before the flip.
        delays = []
        for grant in (True, False, True, False):
            for _ in range(3):
                b.get("/v1/datasets", headers=ann)
            toggle(grant)
            delays.append(wait_for(b, ann, 200 if grant else 403))
        assert max(delays) < BOUND_S, delays

        # Edits while requests flow through both processes.
        stop = threading.Event()
        latencies: list[float] = []
        errors: list[str] = []

        def hammer(url: str) -> None:
            with http_client(base_url=url, timeout=10) as c:
                while not stop.is_set():
                    start = time.monotonic()
                    r = c.get("/v1/datasets", headers=ann)
                    latencies.append(time.monotonic() - start)
                    if r.status_code not in (200, 403):
                        errors.append(f"{r.status_code} {r.text[:200]}")

        threads = [threading.Thread(target=hammer, args=(s.url,)) for s in servers]
        first_version = store.head()[0] + 1
        for t in threads:
            t.start()
        try:
            for i in range(6):
                toggle(i % 2 == 0)
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert not errors, (errors[:3], "\n".join(s.log_path.read_text()[-3000:] for s in servers))
    assert len(latencies) > 20
    assert max(latencies) < BOUND_S, max(latencies)

    # Each audited decision must be the answer of the version it names.
    with store.sessions() as session:
        from governance.policy.service import policy

        granted = {
            v.version: tuple(GRANT) in {tuple(r.as_list()) for r in load_rules(v.rules)}
            for v in policy.history(session)
        }
    calls = [
        e
        for e in store.entries("api.call")
        if e["actor"]["name"] == "ann" and e["resource"].get("object") == "api:datasets"
    ]
    during = [e for e in calls if e["policy_version"] >= first_version]
    assert len(during) > 10
    versions_seen = set()
    for entry in calls:
        expected = "allow" if granted[entry["policy_version"]] else "deny"
        assert entry["decision"] == expected, entry
        assert entry["outcome"] == (200 if expected == "allow" else 403)
        versions_seen.add(entry["policy_version"])
    assert len(versions_seen) >= 4


@pytest.fixture
def slow_poll_servers(
    settings: Settings, admin_token: str, tmp_path: Path
) -> Iterator[list[LiveServer]]:
    """Two servers that poll the change counters only every 30 s."""
    if settings.resolved_database_url.startswith("sqlite"):
        pytest.skip("notifications are PostgreSQL's; SQLite processes follow the poll")
    yield from server_pair(settings.model_copy(update={"state_poll_seconds": 30.0}), tmp_path)


@pytest.mark.slow
def test_postgresql_notifications_beat_the_poll(
    slow_poll_servers: list[LiveServer], admin_token: str
) -> None:
    """With a 30 s poll, only LISTEN/NOTIFY can bring a change to the other process in time."""
    with people(slow_poll_servers, admin_token) as (a, b, officer, ann):
        for grant in (True, False):
            for _ in range(3):  # B holds the old decision in its cache
                b.get("/v1/datasets", headers=ann)
            body = {"add": [GRANT]} if grant else {"remove": [GRANT]}
            r = a.post("/v1/policy/changes", headers=officer, json={**body, "reason": "t"})
            assert r.status_code == 201, r.text
            assert wait_for(b, ann, 200 if grant else 403) < BOUND_S
