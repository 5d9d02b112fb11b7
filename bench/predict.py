#!/usr/bin/env python
"""Governed predict endpoint vs a bare FastAPI endpoint serving the same model.

Both run as one uvicorn process with the same inference core; one load client drives each in
turn with 32 concurrent keep-alive clients. Both servers are up for the whole run and the time
is split into alternating rounds (bare first, then governed first, ...), so that a change in
the shared machine's speed during the run weighs on both sides alike; each round's ratio is
printed too. Reports requests/s, p50 and p99 for both, the
throughput ratio (target >= 0.85 before audit, >= 0.75 with the audit log on), and the CPU
time each server process and the load client spent per request, the figures that explain the
ratio and the ones least moved by a noisy neighbour. From them, the CPU ceiling: the rate at
which the governed side's work per request would keep every core busy, which no layout of that
work can beat on this machine.

    python bench/predict.py           # ~8 s per side, in 4 rounds
    python bench/predict.py --full    # 30 s per side, in 10 rounds
    python bench/predict.py --set audit_batch_wait_ms=0.5 --set audit_batch_idle_ms=0
                                      # the governed server with other settings
    python bench/predict.py --execution thread
                                      # both servers' forward passes in a worker thread
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LoadResult, emit, governed_deployment, load, start_server

from governance.serverproc import free_port, serve_command
from tests.factories import toy_record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="alternating rounds the time is split into (default 4, 10 with --full)",
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
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the governed server (a Settings field, without WARDEN_), repeatable; "
        "the deployment itself ignores the caller's WARDEN_ variables",
    )
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--set takes NAME=VALUE, not {item!r}")
        overrides[f"WARDEN_{name.upper()}"] = value
    if args.execution != "auto":
        overrides["WARDEN_BATCH_EXECUTION"] = args.execution
    hidden = tuple(int(w) for w in args.hidden.split(","))
    duration = 30.0 if args.full else 8.0
    rounds = args.rounds or (10 if args.full else 4)
    body = {"record": toy_record(3)}
    with tempfile.TemporaryDirectory() as tmp:
        deployment = governed_deployment(Path(tmp), hidden=hidden)
        port = free_port()
        bare = start_server(
            [
                sys.executable,
                "bench/_bare_server.py",
                str(deployment.artifact),
                str(port),
                *([args.execution] if args.execution != "auto" else []),
            ],
            deployment.env,
            port,
            Path(tmp) / "bare.log",
        )
        try:
            port = free_port()
            gov = start_server(
                serve_command(port),
                {**deployment.env, **overrides},
                port,
                Path(tmp) / "governed.log",
            )
            try:
                sides = {
                    "bare": (bare.url + "/predict", {}, bare.pid),
                    "governed": (
                        f"{gov.url}/v1/models/{deployment.model}/predict",
                        {"Authorization": f"Bearer {deployment.client_token}"},
                        gov.pid,
                    ),
                }
                runs: dict[str, list[LoadResult]] = {"bare": [], "governed": []}
                for round_ in range(rounds):
                    # Both servers are up; the idle one costs nothing. Alternating the order
                    # keeps a drift in the machine's speed out of the ratio.
                    order = ("bare", "governed") if round_ % 2 == 0 else ("governed", "bare")
                    for side in order:
                        url, headers, pid = sides[side]
                        runs[side].append(
                            load(
                                url,
                                headers,
                                body,
                                clients=args.clients,
                                duration=duration / rounds,
                                server_pid=pid,
                            )
                        )
                    ratio = runs["governed"][-1].rps / runs["bare"][-1].rps
                    print(
                        f"round {round_ + 1}/{rounds}: governed {runs['governed'][-1].rps:7.1f} "
                        f"req/s, bare {runs['bare'][-1].rps:7.1f} req/s, ratio {ratio:.3f}"
                    )
            finally:
                gov.stop()
        finally:
            bare.stop()
    base = LoadResult.combined(runs["bare"])
    ours = LoadResult.combined(runs["governed"])
    round_ratios = [g.rps / b.rps for g, b in zip(runs["governed"], runs["bare"], strict=True)]
    for label, r in (("bare", base), ("governed", ours)):
        print(
            f"{label:9} {r.rps:8.1f} req/s  p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms  "
            f"server CPU {r.server_us_per_request or 0:6.0f} us/request "
            f"(+ {r.children_us_per_request or 0:4.0f} in child processes, "
            f"{r.client_us_per_request or 0:3.0f} in the load client)  "
            f"CPU ceiling {r.cpu_ceiling_rps or 0:6.0f} req/s  errors {r.errors}"
        )
    emit(
        "predict",
        f"requests/s at {args.clients} clients, governed vs bare",
        ours.rps,
        base.rps,
        governed_p50_ms=round(ours.p50_ms, 2),
        governed_p99_ms=round(ours.p99_ms, 2),
        bare_p50_ms=round(base.p50_ms, 2),
        bare_p99_ms=round(base.p99_ms, 2),
        governed_server_us_per_request=round(ours.server_us_per_request or 0),
        bare_server_us_per_request=round(base.server_us_per_request or 0),
        governed_writer_process_us_per_request=round(ours.children_us_per_request or 0),
        client_us_per_request=round(ours.client_us_per_request or 0),
        # Both cores busy with the governed side's work per request: the most any layout of
        # that work could reach here, as a ratio of the measured baseline.
        governed_cpu_ceiling_ratio=round((ours.cpu_ceiling_rps or 0) / base.rps, 3),
        round_ratios=[round(r, 3) for r in round_ratios],
        median_round_ratio=round(statistics.median(round_ratios), 4),
        errors=ours.errors + base.errors,
        **({"settings": overrides} if overrides else {}),
    )


if __name__ == "__main__":
    main()
