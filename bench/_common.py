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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from governance.serverproc import ServerProcess  # noqa: E402


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


def governed_deployment(root: Path, *, hidden: tuple[int, ...] = (64, 64)) -> Governed:
    """Init Warden in ``root`` with a served toy model and a client allowed to call it."""
    from governance.bootstrap import initialize
    from governance.config import Settings
    from governance.context import cli_context
    from governance.db import make_engine, make_sessionmaker
    from governance.identity.service import identity
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
    os.environ.update({k: v for k, v in env.items() if k.startswith("WARDEN_")})
    settings = Settings()
    initialize(settings)
    artifact = build_artifact(root / "artifact", name="bench", version="1")
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    ctx = cli_context("bench")
    vocab, _ = default_policy(settings.policies_dir)
    with sessions.begin() as s:
        registry.register(s, ctx, source_dir=artifact, models_dir=settings.resolved_models_dir)
    with sessions.begin() as s:
        # The fairness gate guards every promotion; the benchmark model has no data to audit.
        from governance.fairness.gate import overrides

        overrides.override(s, cli_context("bench-officer"), model="bench", version="1",
                           justification="benchmark model with random weights, approved only "
                           "to measure the serving path")
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

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


async def _load(
    url: str, headers: dict[str, str], body: Any, clients: int, duration: float
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(min(clients, 8)):  # warm up connections and caches
            await client.post(url, json=body, headers=headers)
        stop = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await client.post(url, json=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return LoadResult(len(latencies), errors, elapsed, q[49] * 1000, q[98] * 1000)


def load(
    url: str, headers: dict[str, str], body: Any, *, clients: int, duration: float
) -> LoadResult:
    """Closed-loop load: ``clients`` concurrent keep-alive clients for ``duration`` seconds."""
    return asyncio.run(_load(url, headers, body, clients, duration))
