#!/usr/bin/env python
"""Governed predict endpoint vs a bare FastAPI endpoint serving the same model.

Three servers, each one uvicorn process with the same inference core:
- bare: the model behind a plain FastAPI endpoint (the baseline);
- governed: ``warden serve``, everything on (key, policy, validation, encrypted record, audit
  entry durable before the answer);
- foundation: ``warden serve`` with the audit journal and the record store taken out of its
  runtime (``bench/_foundation_server.py``), the service as the foundation issue measured it
  before those existed.

One load client drives each in turn with 32 concurrent keep-alive clients. All servers are up
for the whole run and the time is split into rounds, the order rotating from round to round,
so that a change in the shared machine's speed during the run weighs on every side alike; each
round's ratios are printed too. Reports requests/s, p50 and p99 for each, the throughput ratios
against bare (targets: >= 0.85 for the foundation's governance, >= 0.75 with the audit log
on), and the CPU time each server process and the load client spent per request, the figures
that explain the ratios and the ones least moved by a noisy neighbour. From them, the CPU
ceiling: the rate at which the governed side's work per request would keep every core busy,
which no layout of that work can beat on this machine. The closing JSON's ``ratio`` is the
governed one; ``foundation_ratio`` is the other.

    python bench/predict.py           # ~8 s per side, in 6 rounds
    python bench/predict.py --full    # 30 s per side, in 12 rounds
    python bench/predict.py --set audit_batch_wait_ms=0.5 --set audit_batch_idle_ms=0
                                      # the governed servers with other settings
    python bench/predict.py --execution thread
                                      # every server's forward passes in a worker thread
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LoadResult, emit, governed_deployment, load, start_server

from governance.cli.server_process import free_port, serve_command
from tests.factories import toy_record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="rounds the time is split into (default 6, 12 with --full; a multiple of 3 gives each "
        "side each place in the order equally often)",
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
    rounds = args.rounds or (12 if args.full else 6)
    body = {"record": toy_record(3)}
    sides = ("bare", "governed", "foundation")
    runs: dict[str, list[LoadResult]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        deployment = governed_deployment(Path(tmp), hidden=hidden)
        commands: dict[str, Callable[[int], list[str]]] = {
            "bare": lambda port: [
                sys.executable,
                "bench/_bare_server.py",
                str(deployment.artifact),
                str(port),
                *([args.execution] if args.execution != "auto" else []),
            ],
            "governed": serve_command,
            "foundation": lambda port: [sys.executable, "bench/_foundation_server.py", str(port)],
        }
        targets: dict[str, tuple[str, dict[str, str], int]] = {}
        for side in sides:
            port = free_port()
            env = deployment.env if side == "bare" else {**deployment.env, **overrides}
            server = start_server(commands[side](port), env, port, Path(tmp) / f"{side}.log")
            servers.callback(server.stop)
            if side == "bare":
                targets[side] = (server.url + "/predict", {}, server.pid)
            else:
                targets[side] = (
                    f"{server.url}/v1/models/{deployment.model}/predict",
                    {"Authorization": f"Bearer {deployment.client_token}"},
                    server.pid,
                )
        for round_ in range(rounds):
            # Every server is up; the idle ones cost nothing. Rotating the order keeps a drift
            # in the machine's speed out of the ratios.
            first = round_ % len(sides)
            for side in sides[first:] + sides[:first]:
                url, headers, pid = targets[side]
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
            last = {side: runs[side][-1].rps for side in sides}
            print(
                f"round {round_ + 1}/{rounds}: bare {last['bare']:7.1f} req/s, governed "
                f"{last['governed']:7.1f} ({last['governed'] / last['bare']:.3f}), foundation "
                f"{last['foundation']:7.1f} ({last['foundation'] / last['bare']:.3f})"
            )
    results = {side: LoadResult.combined(runs[side]) for side in sides}
    base, ours, found = results["bare"], results["governed"], results["foundation"]

    def round_ratios(side: str) -> list[float]:
        return [s.rps / b.rps for s, b in zip(runs[side], runs["bare"], strict=True)]

    for label, r in results.items():
        print(
            f"{label:10} {r.rps:8.1f} req/s  p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms  "
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
        round_ratios=[round(r, 3) for r in round_ratios("governed")],
        median_round_ratio=round(statistics.median(round_ratios("governed")), 4),
        # The foundation's governance alone: no audit journal, no record store.
        foundation_rps=round(found.rps, 1),
        foundation_ratio=round(found.rps / base.rps, 4),
        foundation_p99_ms=round(found.p99_ms, 2),
        foundation_server_us_per_request=round(found.server_us_per_request or 0),
        foundation_round_ratios=[round(r, 3) for r in round_ratios("foundation")],
        errors=sum(r.errors for r in results.values()),
        **({"settings": overrides} if overrides else {}),
    )


if __name__ == "__main__":
    main()
