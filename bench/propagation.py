"""Benchmark: how long until every server process enforces a policy change.

Two ``warden serve`` processes share one database (a fresh SQLite file, or a fresh PostgreSQL
database when ``WARDEN_TEST_POSTGRES_URL`` names a server). A compliance officer applies a
change through process A that grants, then revokes, a principal's right; right after A answers
(the change is committed, and A itself enforces it before answering) the bench polls process B
with that principal's key until B's decision flips. B has the old decision cached each time,
so a revocation must beat the cache. Settings are the defaults: a poll every 0.25 s, and on
PostgreSQL LISTEN/NOTIFY, which wakes B's poll as soon as A's change commits.

The last line printed is one JSON object: ours = p50 ms until every process enforces the
change, baseline = the 1000 ms target, ratio = ours / baseline (below 1 meets the target).

    python bench/propagation.py              # 20 changes
    python bench/propagation.py --rounds 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from governance.bootstrap import appoint_first_officer, create_keys, seed
from governance.cli.server_process import ServerProcess
from governance.config import Settings
from governance.db import make_engine
from governance.db.migrate import upgrade

# Outside the governance surface, so one officer's change applies at once.
GRANT = ["p", "ann", "api:datasets", "read", "allow"]
TARGET_MS = 1000.0


def _pg_database() -> tuple[str, str] | None:
    """(URL of a fresh database, admin URL) when a PostgreSQL server is configured."""
    admin = os.environ.get("WARDEN_TEST_POSTGRES_URL")
    if not admin:
        return None
    url = make_url(admin)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"warden_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False), url.render_as_string(
        hide_password=False
    )


def _drop_pg(database_url: str, admin_url: str) -> None:
    name = make_url(database_url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _enrol(client: httpx.Client, code: str) -> str:
    r = client.post("/v1/enrol", json={"code": code})
    r.raise_for_status()
    return str(r.json()["token"])


def _person(client: httpx.Client, admin: dict[str, str], name: str) -> str:
    """A person with no role, enrolled by the admin (they redeem their own code)."""
    client.post("/v1/principals", json={"name": name}, headers=admin).raise_for_status()
    r = client.post(f"/v1/principals/{name}/enrolment", headers=admin)
    r.raise_for_status()
    return _enrol(client, r.json()["code"])


def _until(client: httpx.Client, headers: dict[str, str], status: int, limit_s: float) -> float:
    """Seconds until ``GET /v1/datasets`` answers ``status`` (polling every 2 ms)."""
    start = time.perf_counter()
    while True:
        if client.get("/v1/datasets", headers=headers).status_code == status:
            return time.perf_counter() - start
        if time.perf_counter() - start > limit_s:
            raise RuntimeError(f"process B did not enforce the change within {limit_s} s")
        time.sleep(0.002)


def run(rounds: int, workdir: Path) -> dict[str, object]:
    pg = _pg_database()
    settings = Settings(
        environment="test",
        data_dir=workdir / "data",
        database_url=pg[0] if pg else "",
        device="cpu",
    )
    create_keys(settings)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    _, admin_token = seed(engine, settings)
    officer_code = appoint_first_officer(engine, settings, "olivia")
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(
        WARDEN_ENVIRONMENT="test",
        WARDEN_DATA_DIR=str(settings.data_dir),
        WARDEN_DATABASE_URL=settings.resolved_database_url,
        WARDEN_DEVICE="cpu",
    )
    servers = [
        ServerProcess(env, workdir / f"server-{i}.log", ready_path="/readyz") for i in range(2)
    ]
    try:
        for server in servers:
            server.start(timeout=120)
        admin = {"Authorization": f"Bearer {admin_token}"}
        with (
            httpx.Client(base_url=servers[0].url, timeout=30) as a,
            httpx.Client(base_url=servers[1].url, timeout=30) as b,
        ):
            officer = {"Authorization": f"Bearer {_enrol(a, officer_code)}"}
            ann = {"Authorization": f"Bearer {_person(a, admin, 'ann')}"}
            _until(b, ann, 403, 10)
            delays_ms: list[float] = []
            for i in range(rounds):
                grant = i % 2 == 0
                for _ in range(3):  # B holds the old decision in its cache
                    b.get("/v1/datasets", headers=ann)
                body = {"add": [GRANT]} if grant else {"remove": [GRANT]}
                r = a.post(
                    "/v1/policy/changes",
                    headers=officer,
                    json={**body, "reason": f"bench round {i}"},
                )
                r.raise_for_status()
                delays_ms.append(_until(b, ann, 200 if grant else 403, 10) * 1000)
                print(
                    f"round {i:>3} {'grant ' if grant else 'revoke'} -> version "
                    f"{r.json()['version']:>3}: B enforces after {delays_ms[-1]:7.1f} ms",
                    flush=True,
                )
    finally:
        for server in servers:
            server.stop()
        if pg:
            _drop_pg(*pg)
    ordered = sorted(delays_ms)
    return {
        "database": "postgresql" if pg else "sqlite",
        "rounds": rounds,
        "p50_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
        "poll_seconds": settings.state_poll_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.rounds, Path(tmp))
    print(
        f"{result['database']}: p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, "
        f"max {result['max_ms']} ms over {result['rounds']} changes "
        f"(poll every {result['poll_seconds']} s)"
    )
    ours = float(result["p50_ms"])  # type: ignore[arg-type]
    print(
        json.dumps(
            {
                "bench": "propagation",
                "metric": "ms until every process enforces",
                "ours": ours,
                "baseline": TARGET_MS,
                "ratio": round(ours / TARGET_MS, 3),
                "max_ms": result["max_ms"],
                "database": result["database"],
            }
        )
    )


if __name__ == "__main__":
    main()
