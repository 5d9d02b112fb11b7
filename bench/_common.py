"""Shared benchmark plumbing: a governed deployment in a temp folder, servers, a load client.

Every benchmark measures its baseline in the same run, on the same machine, and prints the
ratio, because the machines are shared and noisy. The last line of each benchmark's output is
one JSON object: {"bench", "metric", "ours", "baseline", "ratio", ...}.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import URL, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from governance.cli.server_process import ServerProcess  # noqa: E402


def emit(bench: str, metric: str, ours: float, baseline: float, **extra: Any) -> None:
    """Print the closing JSON line (ratio = ours / baseline)."""
    ratio = ours / baseline if baseline else float("nan")
    print(
        json.dumps(
            {
                "bench": bench,
                "metric": metric,
                "ours": round(ours, 6),
                "baseline": round(baseline, 6),
                "ratio": round(ratio, 4),
                **extra,
            }
        )
    )


@dataclass
class Governed:
    env: dict[str, str]
    client_token: str
    model: str
    artifact: Path


def governed_deployment(
    root: Path, *, hidden: tuple[int, ...] = (64, 64), database_url: str = ""
) -> Governed:
    """Init Warden in ``root`` with a served toy model and a client allowed to call it.

    ``database_url``: an empty database to use (default: SQLite under ``root``).
    """
    from governance.bootstrap import initialize
    from governance.config import Settings
    from governance.db import make_engine, make_sessionmaker
    from governance.identity.service import identity
    from governance.kit.context import cli_context
    from governance.policy.rules import role_subject
    from governance.policy.service import default_policy, policy
    from governance.registry.service import registry
    from tests.factories import build_artifact

    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(
        WARDEN_DATA_DIR=str(root / "var"),
        WARDEN_DEVICE="cpu",
        WARDEN_REPORTS_DIR=str(root / "reports"),
    )
    if database_url:
        env["WARDEN_DATABASE_URL"] = database_url
    # A PostgreSQL deployment made earlier in this process must not lend this one its database.
    os.environ.pop("WARDEN_DATABASE_URL", None)
    os.environ.update({k: v for k, v in env.items() if k.startswith("WARDEN_")})
    settings = Settings()
    initialize(settings)
    artifact = build_artifact(root / "artifact", name="bench", version="1", hidden=hidden)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    ctx = cli_context("bench")
    vocab, _ = default_policy(settings.policies_dir)
    with sessions.begin() as s:
        registry.register(s, ctx, source_dir=artifact, models_dir=settings.resolved_models_dir)
    with sessions.begin() as s:
        # The fairness gate guards every promotion; the benchmark model has no data to audit.
        from governance.fairness.gate import overrides

        overrides.override(
            s,
            cli_context("bench-officer"),
            model="bench",
            version="1",
            justification="benchmark model with random weights, approved only "
            "to measure the serving path",
        )
    with sessions.begin() as s:
        registry.promote(s, ctx, name="bench", version="1")
        identity.create_principal(s, ctx, name="bench-client", kind="service")
        policy.apply(
            s,
            ctx,
            add=[
                ["g", "bench-client", role_subject("client")],
                ["g2", "model:bench", "group:default-models"],
            ],
            remove=[],
            reason="benchmark setup",
            vocab=vocab,
        )
        _, token = identity.issue_key(s, ctx, principal="bench-client")
    engine.dispose()
    return Governed(env=env, client_token=token, model="bench", artifact=artifact)


def start_server(command: list[str], env: dict[str, str], port: int, log: Path) -> ServerProcess:
    """A server subprocess, started and answering on ``port``."""
    return ServerProcess(env, log, command=command, port=port).start(timeout=120)


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu_s: float | None = None
    writer_cpu_s: float | None = None
    client_cpu_s: float | None = None
    database_cpu_s: float | None = None
    latencies: list[float] = field(default_factory=list, repr=False)  # seconds, sorted

    @classmethod
    def combined(cls, parts: list[LoadResult]) -> LoadResult:
        """One result from several runs against the same server (rounds of one benchmark)."""

        def total(values: list[float | None]) -> float | None:
            return None if any(v is None for v in values) else sum(v or 0.0 for v in values)

        latencies = sorted(t for part in parts for t in part.latencies)
        p50, p99 = _percentiles(latencies)
        return cls(
            sum(p.requests for p in parts),
            sum(p.errors for p in parts),
            sum(p.seconds for p in parts),
            p50,
            p99,
            total([p.server_cpu_s for p in parts]),
            total([p.writer_cpu_s for p in parts]),
            total([p.client_cpu_s for p in parts]),
            total([p.database_cpu_s for p in parts]),
            latencies,
        )

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def server_us_per_request(self) -> float | None:
        """CPU time the server process spent per request (all its threads), if measured."""
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1e6

    @property
    def client_us_per_request(self) -> float | None:
        """CPU time the load client (this process) spent per request."""
        if self.client_cpu_s is None or not self.requests:
            return None
        return self.client_cpu_s / self.requests * 1e6

    @property
    def cpu_ceiling_rps(self) -> float | None:
        """The rate at which server, writer, database and client would use every core.

        No layout of the same work can go faster on this machine; measured rates below it
        are latency, not CPU, bound.
        """
        parts = (
            self.server_us_per_request,
            self.writer_us_per_request or 0.0,
            self.database_us_per_request or 0.0,
            self.client_us_per_request,
        )
        if parts[0] is None or parts[3] is None:
            return None
        return (os.cpu_count() or 1) * 1e6 / sum(p for p in parts if p is not None)

    @property
    def writer_us_per_request(self) -> float | None:
        """CPU time the server's journal writer process spent per request, if it has one."""
        if self.writer_cpu_s is None or not self.requests:
            return None
        return self.writer_cpu_s / self.requests * 1e6

    @property
    def database_us_per_request(self) -> float | None:
        """CPU time the PostgreSQL backends of the server's database spent per request."""
        if self.database_cpu_s is None or not self.requests:
            return None
        return self.database_cpu_s / self.requests * 1e6


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (Linux ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time of the processes among ``pids`` that still run."""
    total = 0.0
    for pid in pids:
        with suppress(OSError):  # it exited meanwhile
            total += process_cpu_seconds(pid)
    return total


def child_pids(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


WRITER_MODULE = b"governance.audit.journal.sidecar"


def writer_pids(server_pid: int) -> list[int]:
    """The server's journal writer process (none when it writes in a thread)."""
    found = []
    for pid in child_pids(server_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if WRITER_MODULE in command:
            found.append(pid)
    return found


def _pg_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one run (its URL), dropped afterwards."""
    admin = _pg_url(admin_url)
    name = f"warden_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def postgres_backends(admin_url: str, database_url: str) -> Callable[[], list[int]]:
    """A function listing the pids of the PostgreSQL backends connected to the database.

    The server runs on this machine, so their CPU time can be read from ``/proc`` as the
    server's is: the database's share of each request.
    """
    engine = create_engine(_pg_url(admin_url), poolclass=NullPool)
    name = make_url(database_url).database

    def pids() -> list[int]:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )
            return [int(row[0]) for row in rows]

    return pids


def _request_bytes(url: str, headers: dict[str, str], body: Any) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port, ("\r\n".join(head) + "\r\n\r\n").encode() + payload


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request on a keep-alive connection and read the whole response."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise RuntimeError("the load client needs Content-Length responses")
    end = lower.index(b"\r\n", at + 2)
    await reader.readexactly(int(lower[at + 17 : end]))
    return status


async def _load(
    url: str,
    headers: dict[str, str],
    body: Any,
    clients: int,
    duration: float,
    server_pid: int | None,
    database_pids: Callable[[], list[int]] | None,
) -> LoadResult:
    host, port, request = _request_bytes(url, headers, body)
    latencies: list[float] = []
    errors = 0
    connections = [await asyncio.open_connection(host, port) for _ in range(clients)]
    for reader, writer in connections[:8]:  # warm up caches on both sides
        await _exchange(reader, writer, request)
    stop = time.perf_counter() + duration

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors += 1

    writers = writer_pids(server_pid) if server_pid else []
    backends = database_pids() if database_pids else []
    cpu0 = process_cpu_seconds(server_pid) if server_pid else None
    writers0, backends0 = cpu_seconds(writers), cpu_seconds(backends)
    start = time.perf_counter()
    client0 = time.process_time()
    await asyncio.gather(*(client(r, w) for r, w in connections))
    elapsed = time.perf_counter() - start
    client_cpu = time.process_time() - client0
    cpu = process_cpu_seconds(server_pid) - cpu0 if server_pid and cpu0 is not None else None
    writer_cpu = cpu_seconds(writers) - writers0 if writers else None
    database_cpu = cpu_seconds(backends) - backends0 if database_pids else None
    for _, writer in connections:
        writer.close()
    latencies.sort()
    p50, p99 = _percentiles(latencies)
    return LoadResult(
        len(latencies),
        errors,
        elapsed,
        p50,
        p99,
        cpu,
        writer_cpu,
        client_cpu,
        database_cpu,
        latencies,
    )


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 in ms of latencies in seconds."""
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return q[49] * 1000, q[98] * 1000


def load(
    url: str,
    headers: dict[str, str],
    body: Any,
    *,
    clients: int,
    duration: float,
    server_pid: int | None = None,
    database_pids: Callable[[], list[int]] | None = None,
) -> LoadResult:
    """Closed-loop load: ``clients`` concurrent keep-alive connections for ``duration`` seconds.

    Each client owns one connection and sends the next request as soon as the last response
    is read. The client is a few lines over asyncio streams, not a general HTTP library: at
    about 40 us of CPU per request it stays far from saturating a core, so the numbers are the
    server's. (httpx's shared pool scans every idle connection per request; under a server
    that answers in bursts, as group commit does, it spent more CPU per request than the
    server and measured itself.) Pass ``server_pid`` to also measure the CPU time of the server
    and of its journal writer process, and ``database_pids`` (see :func:`postgres_backends`)
    that of its database.
    """
    return asyncio.run(_load(url, headers, body, clients, duration, server_pid, database_pids))
