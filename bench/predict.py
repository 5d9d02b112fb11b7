#!/usr/bin/env python
"""What Warden adds to a prediction, as a caller feels it: governed predict vs a bare endpoint.

Servers, each one uvicorn process with the same model and micro-batcher:
- bare: the model behind a plain FastAPI endpoint (the baseline);
- governed: ``warden serve`` on SQLite, everything on (key, policy, validation, encrypted
  record, audit entry durable before the answer, written by the journal's writer process);
- postgres (``--postgres ADMIN_URL``): the same governed server on a fresh PostgreSQL database
  created for the run and dropped after;
- foundation (``--foundation``): ``warden serve`` with the audit journal and the record store
  taken out of its runtime (``bench/_foundation_server.py``).

One load client drives each in turn, at 1 client and at 32 concurrent keep-alive clients. All
servers are up for the whole run and the time is split into rounds, the order of the sides
rotating from round to round, so that a change in the shared machine's speed weighs on every
side alike. Reports, governed minus bare: the latency added at p50 and p99 at 1 client and at
32 (targets: <= 1 ms and <= 3 ms at 1 client), the throughput ratio at 32 clients (target >=
0.70), and the CPU time per request of each server, of the governed server's journal writer
process, of the PostgreSQL backends and of the load client: the figures least moved by a noisy
neighbour. The closing JSON line carries ``added_p50_ms_1``, ``added_p99_ms_1``,
``added_p50_ms_32``, ``added_p99_ms_32``, ``ratio``, ``server_cpu_ms_per_req`` and
``writer_cpu_ms_per_req`` (at 32 clients); the PostgreSQL figures under ``postgres_``.

    python bench/predict.py           # 6 rounds: 6 s per side at 32 clients, 3 s at 1
    python bench/predict.py --full    # 12 rounds: 30 s per side at 32 clients, 15 s at 1
    python bench/predict.py --postgres postgresql://postgres:PASSWORD@127.0.0.1:5432/postgres
    python bench/predict.py --set audit_batch_idle_ms=0
                                      # the governed servers with other settings
    python bench/predict.py --execution thread
                                      # every server's forward passes in a worker thread
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    LoadResult,
    emit,
    governed_deployment,
    load,
    postgres_backends,
    postgres_database,
)

from governance.cli.server_process import ServerProcess, free_port, serve_command
from tests.factories import toy_record


@dataclass
class Target:
    url: str
    headers: dict[str, str]
    pid: int
    database_pids: Callable[[], list[int]] | None = None


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


def _summary(
    prefix: str, ours: dict[int, LoadResult], base: dict[int, LoadResult]
) -> dict[str, Any]:
    """One governed side's figures against bare, keys prefixed by ``prefix``."""
    one, many = min(ours), max(ours)
    side = prefix.rstrip("_") or "governed"
    out: dict[str, Any] = {}
    for level in (one, many):
        o, b = ours[level], base[level]
        tag = "1" if level == one else str(level)
        out[f"{prefix}added_p50_ms_{tag}"] = round(o.p50_ms - b.p50_ms, 3)
        out[f"{prefix}added_p99_ms_{tag}"] = round(o.p99_ms - b.p99_ms, 3)
        out[f"{side}_p50_ms_{tag}"] = round(o.p50_ms, 3)
        out[f"{side}_p99_ms_{tag}"] = round(o.p99_ms, 3)
        suffix = "" if level == many else "_1"
        out[f"{prefix}server_cpu_ms_per_req{suffix}"] = _ms(o.server_us_per_request)
        out[f"{prefix}writer_cpu_ms_per_req{suffix}"] = _ms(o.writer_us_per_request)
        if o.database_cpu_s is not None:
            out[f"{prefix}database_cpu_ms_per_req{suffix}"] = _ms(o.database_us_per_request)
    out[f"{side}_rps_{many}"] = round(ours[many].rps, 1)
    out[f"{side}_rps_1"] = round(ours[one].rps, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--clients", type=int, default=32, help="the concurrent level (default 32)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="rounds the time is split into (default 6, 12 with --full)",
    )
    parser.add_argument(
        "--hidden",
        default="64,64",
        help="hidden layer widths of the served MLP (default 64,64, as the Adult model)",
    )
    parser.add_argument(
        "--execution",
        choices=("auto", "loop", "thread"),
        default="auto",
        help="where both servers run forward passes (default: the event loop on the CPU)",
    )
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="also run the governed server on a fresh PostgreSQL database made with this admin "
        "URL (dropped after the run)",
    )
    parser.add_argument(
        "--foundation",
        action="store_true",
        help="also run the governed server without its audit journal and record store",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the governed server (a Settings field, without WARDEN_), repeatable; "
        "the deployment itself ignores the caller's WARDEN_ variables",
    )
    args = parser.parse_args()
    if args.clients < 2:
        parser.error("--clients is the concurrent level, beside 1 client: at least 2")
    overrides = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--set takes NAME=VALUE, not {item!r}")
        overrides[f"WARDEN_{name.upper()}"] = value
    if args.execution != "auto":
        overrides["WARDEN_BATCH_EXECUTION"] = args.execution
    hidden = tuple(int(w) for w in args.hidden.split(","))
    levels = (1, args.clients)
    # Seconds of load per side at each level, over the whole run.
    duration = {1: 15.0, args.clients: 30.0} if args.full else {1: 3.0, args.clients: 6.0}
    rounds = args.rounds or (12 if args.full else 6)
    body = {"record": toy_record(3)}
    sides = ["bare", "governed"]
    if args.postgres:
        sides.append("postgres")
    if args.foundation:
        sides.append("foundation")
    runs: dict[tuple[str, int], list[LoadResult]] = {
        (side, level): [] for side in sides for level in levels
    }
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        deployment = governed_deployment(root / "sqlite", hidden=hidden)
        pg_deployment = None
        database_pids = None
        if args.postgres:
            pg_url = stack.enter_context(postgres_database(args.postgres))
            pg_deployment = governed_deployment(root / "pg", hidden=hidden, database_url=pg_url)
            database_pids = postgres_backends(args.postgres, pg_url)
        commands: dict[str, Callable[[int], list[str]]] = {
            "bare": lambda port: [
                sys.executable,
                "bench/_bare_server.py",
                str(deployment.artifact),
                str(port),
                *([args.execution] if args.execution != "auto" else []),
            ],
            "governed": serve_command,
            "postgres": serve_command,
            "foundation": lambda port: [sys.executable, "bench/_foundation_server.py", str(port)],
        }
        servers: dict[str, ServerProcess] = {}
        for side in sides:
            port = free_port()
            env = (pg_deployment if side == "postgres" and pg_deployment else deployment).env
            env = env if side == "bare" else {**env, **overrides}
            servers[side] = ServerProcess(
                env, root / f"{side}.log", command=commands[side](port), port=port
            )
            stack.callback(servers[side].stop)
        # Started side by side: most of a start is importing, which the two cores share.
        with ThreadPoolExecutor(len(sides)) as pool:
            for started in [pool.submit(server.start, 120) for server in servers.values()]:
                started.result()
        targets: dict[str, Target] = {}
        for side, server in servers.items():
            if side == "bare":
                targets[side] = Target(server.url + "/predict", {}, server.pid)
                continue
            d = pg_deployment if side == "postgres" and pg_deployment else deployment
            targets[side] = Target(
                f"{server.url}/v1/models/{d.model}/predict",
                {"Authorization": f"Bearer {d.client_token}"},
                server.pid,
                database_pids if side == "postgres" else None,
            )
        print(f"set up in {time.perf_counter() - began:.0f} s: {', '.join(sides)}")
        for round_ in range(rounds):
            # Every server is up; the idle ones cost nothing. Rotating the order keeps a drift
            # in the machine's speed out of the comparisons.
            first = round_ % len(sides)
            order = sides[first:] + sides[:first]
            for level in levels:
                for side in order:
                    t = targets[side]
                    runs[side, level].append(
                        load(
                            t.url,
                            t.headers,
                            body,
                            clients=level,
                            duration=duration[level] / rounds,
                            server_pid=t.pid,
                            database_pids=t.database_pids,
                        )
                    )
            many = {side: runs[side, args.clients][-1] for side in sides}
            one = {side: runs[side, 1][-1] for side in sides}
            print(
                f"round {round_ + 1}/{rounds}: "
                + ", ".join(
                    f"{side} {many[side].rps:6.0f} req/s ({many[side].rps / many['bare'].rps:.3f})"
                    f" p50@1 {one[side].p50_ms:5.2f} ms"
                    for side in sides
                )
            )
    results = {key: LoadResult.combined(parts) for key, parts in runs.items()}

    def at(side: str) -> dict[int, LoadResult]:
        return {level: results[side, level] for level in levels}

    def round_ratios(side: str) -> list[float]:
        pairs = zip(runs[side, args.clients], runs["bare", args.clients], strict=True)
        return [s.rps / b.rps for s, b in pairs]

    for (side, level), r in results.items():
        print(
            f"{side:10} {level:3} clients {r.rps:7.1f} req/s  p50 {r.p50_ms:6.2f} ms  "
            f"p99 {r.p99_ms:6.2f} ms  CPU us/request: server {r.server_us_per_request or 0:5.0f}"
            f" writer {r.writer_us_per_request or 0:5.0f} database "
            f"{r.database_us_per_request or 0:5.0f} client {r.client_us_per_request or 0:4.0f}  "
            f"errors {r.errors}"
        )
    base, ours = results["bare", args.clients], results["governed", args.clients]
    extra: dict[str, Any] = _summary("", at("governed"), at("bare"))
    for level in levels:
        tag = "1" if level == 1 else str(level)
        extra[f"bare_p50_ms_{tag}"] = round(results["bare", level].p50_ms, 3)
        extra[f"bare_p99_ms_{tag}"] = round(results["bare", level].p99_ms, 3)
        extra[f"bare_rps_{tag}"] = round(results["bare", level].rps, 1)
    extra.update(
        bare_server_cpu_ms_per_req=_ms(base.server_us_per_request),
        bare_server_cpu_ms_per_req_1=_ms(results["bare", 1].server_us_per_request),
        client_cpu_ms_per_req=_ms(ours.client_us_per_request),
        # Every core busy with the governed side's work per request: the most any layout of
        # that work could reach here, as a ratio of the measured baseline.
        governed_cpu_ceiling_ratio=round((ours.cpu_ceiling_rps or 0) / base.rps, 3),
        round_ratios=[round(r, 3) for r in round_ratios("governed")],
        median_round_ratio=round(statistics.median(round_ratios("governed")), 4),
    )
    if "postgres" in sides:
        pg = results["postgres", args.clients]
        extra.update(_summary("postgres_", at("postgres"), at("bare")))
        extra.update(
            postgres_ratio=round(pg.rps / base.rps, 4),
            # PostgreSQL's rate as a share of SQLite's, same machine, same rounds.
            postgres_vs_sqlite_rate=round(pg.rps / ours.rps, 4),
            postgres_vs_sqlite_rate_1=round(
                results["postgres", 1].rps / results["governed", 1].rps, 4
            ),
            postgres_round_ratios=[round(r, 3) for r in round_ratios("postgres")],
        )
    if "foundation" in sides:
        found = results["foundation", args.clients]
        extra.update(
            # The governance without the audit journal and the record store.
            foundation_ratio=round(found.rps / base.rps, 4),
            foundation_added_p50_ms_1=round(
                results["foundation", 1].p50_ms - results["bare", 1].p50_ms, 3
            ),
            foundation_server_cpu_ms_per_req=_ms(found.server_us_per_request),
        )
    emit(
        "predict",
        f"requests/s at {args.clients} clients, governed vs bare",
        ours.rps,
        base.rps,
        **extra,
        errors=sum(r.errors for r in results.values()),
        **({"settings": overrides} if overrides else {}),
    )


if __name__ == "__main__":
    main()
