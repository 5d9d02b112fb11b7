#!/usr/bin/env python
"""Share of a governed prediction's time spent encrypting and storing its record.

A governed deployment (SQLite, one served toy model) runs in this process; concurrent clients
call ``POST /v1/models/bench/predict`` through the ASGI app for a few seconds, cycling over 64
data subjects whose keys were created in a warm-up pass (a first use is a one-off per subject).

- request time: measured at the ASGI boundary around the whole app (authentication, policy,
  validation, inference, audit, record), so the load client's own overhead is not counted;
- encryption and storage: the recorder's ``prepare`` (blind index, key lookup, AES-256-GCM
  seal) plus, for each request, the time the group commit spent running the record inserts of
  its batch (the key-state check, use counts and multi-row insert run once per batch, just
  before its commit, and every request in a batch waits for them).

The group commit runs in a thread of this process here, so that it can be timed; a served
deployment runs it in a writer process of its own. In a thread it shares the event loop's GIL,
and its wall-clock time includes waiting for the loop to finish other requests' work: time that
is not spent on records, and that a writer process does not wait. The record inserts are
therefore timed in the writer thread's CPU time (``time.thread_time``, which SQLite's own work
counts in too), the time they take in a writer process with a core of its own. Their wall-clock
time in the shared thread is reported as well (``share_thread_wall``): with forward passes on the
event loop, the loop holds the GIL for longer stretches and that figure rose from about 4 % to
5-6 %, with the records' own work unchanged.

``ours`` is the mean encryption+storage time per request, ``baseline`` the mean request time,
and ``ratio`` their quotient: the share (target < 0.05). A second phase runs the same load with
records off (a recorder that stores nothing) and reports the throughput it reaches, as a
cross-check of the instrumented share.

    python bench/crypto.py           # ~6 s per phase
    python bench/crypto.py --full    # 20 s per phase
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, governed_deployment

from governance.predict.recording import PreparedRecord
from governance.records.sink import RecordSink
from tests.factories import toy_record


class Timings:
    def __init__(self) -> None:
        self.requests: list[float] = []
        self.prepare: dict[str, float] = {}
        self.batch_of: dict[str, int] = {}
        self.batch_time: dict[int, float] = {}  # CPU time of each batch's record work
        self.batch_wall: dict[int, float] = {}  # its wall-clock time in the shared thread
        self.batches = itertools.count()


class TimedRecorder:
    """Wraps the real recorder: times ``prepare`` (blind index, key lookup, seal)."""

    def __init__(self, inner: Any, timings: Timings) -> None:
        self.inner = inner
        self.t = timings

    async def prepare(self, **kw: Any) -> PreparedRecord:
        t0 = time.perf_counter()
        prepared = await self.inner.prepare(**kw)
        self.t.prepare[kw["request_id"]] = time.perf_counter() - t0
        return prepared


def time_record_storage(timings: Timings) -> None:
    """Time the record sink's work inside each group commit (this process's writer thread)."""
    write_fn, store_pending = RecordSink.write_fn, RecordSink._store_pending

    def charge(batch: int, cpu0: float, wall0: float) -> None:
        timings.batch_time[batch] = timings.batch_time.get(batch, 0.0) + (time.thread_time() - cpu0)
        timings.batch_wall[batch] = timings.batch_wall.get(batch, 0.0) + (
            time.perf_counter() - wall0
        )

    def timed_write_fn(self: RecordSink, row: Any, evict: Any) -> Any:
        inner = write_fn(self, row, evict)
        request_id = row.values["request_id"]

        def write(tx: Any, seqs: list[int]) -> None:
            batch = tx.state.setdefault("bench_batch", next(timings.batches))
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            inner(tx, seqs)
            charge(batch, cpu0, wall0)
            timings.batch_of[request_id] = batch

        return write

    def timed_store(self: RecordSink, tx: Any) -> None:
        # The batch's key check, use counts and multi-row insert run just before its commit.
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        store_pending(self, tx)
        batch = tx.state.get("bench_batch")
        if batch is not None:
            charge(batch, cpu0, wall0)

    RecordSink.write_fn = timed_write_fn  # type: ignore[method-assign]
    RecordSink._store_pending = timed_store  # type: ignore[method-assign]


class NoRecords:
    async def prepare(self, **kw: Any) -> PreparedRecord:
        return PreparedRecord(None, None, None)


def use_recorder(app: Any, recorder: Any) -> None:
    """Swap the recorder the predict path seals with (its collaborators sit in one slot)."""
    from governance.predict.pipeline import PREDICTOR

    PREDICTOR.put(app, dataclasses.replace(PREDICTOR.get(app), recorder=recorder))


def timed_app(app: Any, timings: Timings) -> Any:
    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        t0 = time.perf_counter()
        await app(scope, receive, send)
        timings.requests.append(time.perf_counter() - t0)

    return wrapper


async def drive(
    app: Any, token: str, clients: int, duration: float, *, subjects: range | None = None
) -> tuple[int, int, float]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    done = errors = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def worker(n: int) -> None:
            nonlocal done, errors
            i = n
            while time.perf_counter() < stop:
                body = {"record": toy_record(i), "subject_id": f"subject-{i % 64}"}
                r = await client.post("/v1/models/bench/predict", json=body, headers=headers)
                done += 1
                errors += r.status_code != 200
                i += clients

        if subjects is not None:
            for i in subjects:
                body = {"record": toy_record(i), "subject_id": f"subject-{i}"}
                r = await client.post("/v1/models/bench/predict", json=body, headers=headers)
                errors += r.status_code != 200
            return len(subjects), errors, 0.0
        stop = time.perf_counter() + duration
        start = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(clients)))
        elapsed = time.perf_counter() - start
    return done, errors, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    duration = 20.0 if args.full else 6.0
    with tempfile.TemporaryDirectory() as tmp:
        deployment = governed_deployment(Path(tmp))
        os.environ.update({k: v for k, v in deployment.env.items() if k.startswith("WARDEN_")})
        from governance.api.app import create_app
        from governance.config import Settings

        # The journal in a thread of this process, so that its record inserts can be timed.
        app = create_app(Settings(audit_writer="thread"))
        runtime = app.state.runtime
        runtime.start()
        try:
            timings = Timings()
            use_recorder(app, TimedRecorder(runtime.recorder, timings))
            time_record_storage(timings)
            served = timed_app(app, timings)
            # Warm-up: every subject's key created once (first uses are a one-off per subject).
            asyncio.run(drive(served, deployment.client_token, 1, 0.0, subjects=range(64)))
            asyncio.run(drive(served, deployment.client_token, args.clients, 1.0))
            timings.__init__()  # type: ignore[misc]
            n, errors, elapsed = asyncio.run(
                drive(served, deployment.client_token, args.clients, duration)
            )
            use_recorder(app, NoRecords())
            n_off, errors_off, elapsed_off = asyncio.run(
                drive(app, deployment.client_token, args.clients, duration)
            )
        finally:
            runtime.stop()

    def per_request(batch_times: dict[int, float]) -> float:
        """Mean ms per request: its seal, plus the record work of the batch it waited for."""
        return 1000 * statistics.fmean(
            timings.prepare[rid] + batch_times.get(timings.batch_of.get(rid, -1), 0.0)
            for rid in timings.prepare
        )

    crypto_ms = per_request(timings.batch_time)
    crypto_wall_ms = per_request(timings.batch_wall)
    request_ms = statistics.fmean(timings.requests) * 1000
    prepare_ms = statistics.fmean(timings.prepare.values()) * 1000
    rps, rps_off = n / elapsed, n_off / elapsed_off
    print(
        f"requests {n} ({errors} errors) in {elapsed:.1f} s: {rps:.0f} req/s, "
        f"mean {request_ms:.2f} ms per request"
    )
    print(
        f"  prepare (seal) {prepare_ms:.3f} ms, storage wait {crypto_ms - prepare_ms:.3f} ms, "
        f"share {crypto_ms / request_ms:.2%} (wall-clock in the shared writer thread: "
        f"{crypto_wall_ms - prepare_ms:.3f} ms, {crypto_wall_ms / request_ms:.2%})"
    )
    print(
        f"records off: {n_off} ({errors_off} errors), {rps_off:.0f} req/s "
        f"(records on reach {rps / rps_off:.1%} of it)"
    )
    emit(
        "crypto",
        "mean ms per request in record encryption+storage vs mean request ms",
        crypto_ms,
        request_ms,
        prepare_ms=round(prepare_ms, 4),
        share_thread_wall=round(crypto_wall_ms / request_ms, 4),
        requests=n,
        errors=errors + errors_off,
        rps_records_on=round(rps, 1),
        rps_records_off=round(rps_off, 1),
        clients=args.clients,
    )


if __name__ == "__main__":
    main()
