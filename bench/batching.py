"""Micro-batching throughput against one forward pass per request, measured in the same run.

64 asyncio clients in one process each send one-row requests in a closed loop (send, await,
send again), as concurrent FastAPI predict handlers would. "ours" awaits
``MicroBatcher.submit`` with the server's default execution for the device (the event loop on
the CPU, a worker thread on a GPU; the other mode is measured too); the baselines run one
forward pass per request, as async callers too:

- ``to_thread``: ``await asyncio.to_thread(model.forward_probabilities, x)`` (default pool),
  what a handler does without a batcher;
- ``one thread``: the same through a single dedicated worker thread (the batcher's setup, minus
  the batching);
- ``inline``: the forward pass called straight from the coroutine (blocks the event loop).

The reported baseline is the best of the three. Both sides run with the same torch intra-op
thread count, 1 by default (``--threads``): on a shared or oversubscribed CPU, OpenMP threads in
the batcher's worker stall on their barriers (measured on a 2-core machine at load 4.6: 1.6k
predictions/s with 2 threads against 95k with 1), while one-row baseline requests are too small
to use them at all. A serving process should likewise pin the count (``torch.set_num_threads``).

Two model sizes: the Adult model (110 inputs, hidden [64, 64]) and a wide one (hidden
[512, 512]). Usage::

    python bench/batching.py          # about 40 s
    python bench/batching.py --full   # longer runs and a sweep over client counts

The last line is one JSON object: ours and baseline in predictions/s for the Adult-size model at
64 clients, with the batcher's default settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from inference.architectures import build_model
from inference.batcher import MicroBatcher, default_execution
from inference.device import select_device
from inference.manifest import parse_manifest
from inference.model import LoadedModel

INPUT_DIM = 110
Call = Callable[[torch.Tensor], Awaitable[torch.Tensor]]


@dataclass
class Result:
    name: str
    throughput: float
    p50_ms: float
    p99_ms: float
    extra: str = ""


def make_model(hidden: list[int], device: torch.device) -> LoadedModel:
    doc: dict[str, Any] = {
        "format": "warden.model/1",
        "name": "bench",
        "version": "h" + "-".join(map(str, hidden)),
        "architecture": {
            "kind": "mlp",
            "input_dim": INPUT_DIM,
            "output_dim": 2,
            "hidden": hidden,
        },
        "input_schema": {
            "features": [{"name": f"f{i}", "type": "numeric"} for i in range(INPUT_DIM)]
        },
        "labels": ["no", "yes"],
        "weights": {"file": "weights.safetensors", "sha256": "0" * 64},
    }
    manifest = parse_manifest(doc)
    torch.manual_seed(0)
    return LoadedModel(manifest, build_model(manifest.architecture), device)


async def closed_loop(call: Call, *, clients: int, seconds: float) -> tuple[int, list[float]]:
    """Each client sends a one-row request, awaits it, and sends again until time is up."""
    inputs = [torch.randn(1, INPUT_DIM) for _ in range(clients)]
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    done = 0

    async def client(x: torch.Tensor) -> None:
        nonlocal done
        while (start := time.perf_counter()) < stop:
            await call(x)
            latencies.append(time.perf_counter() - start)
            done += 1

    await asyncio.gather(*(client(x) for x in inputs))
    return done, latencies


def measure(name: str, make_call: Callable[[], Any], *, clients: int, seconds: float) -> Result:
    """Run a warm-up, then the timed closed loop, in a fresh event loop."""

    async def main() -> Result:
        call, cleanup = await make_call()
        try:
            await closed_loop(call, clients=clients, seconds=min(0.3, seconds / 5))
            start = time.perf_counter()
            done, lat = await closed_loop(call, clients=clients, seconds=seconds)
            elapsed = time.perf_counter() - start
        finally:
            extra = await cleanup()
        lat.sort()
        return Result(
            name,
            done / elapsed,
            1000 * statistics.median(lat),
            1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            extra,
        )

    return asyncio.run(main())


def batcher_call(model: LoadedModel, **options: Any) -> Callable[[], Any]:
    async def make() -> tuple[Call, Callable[[], Awaitable[str]]]:
        batcher = MicroBatcher.for_model(model, **options)
        batcher.start()

        async def cleanup() -> str:
            await batcher.aclose()
            s = batcher.stats()
            return f"mean batch {s.mean_batch_rows:.1f} rows over {s.batches} passes"

        return batcher.submit, cleanup

    return make


def to_thread_call(model: LoadedModel) -> Callable[[], Any]:
    async def make() -> tuple[Call, Callable[[], Awaitable[str]]]:
        async def call(x: torch.Tensor) -> torch.Tensor:
            return await asyncio.to_thread(model.forward_probabilities, x)

        async def cleanup() -> str:
            return ""

        return call, cleanup

    return make


def one_thread_call(model: LoadedModel) -> Callable[[], Any]:
    async def make() -> tuple[Call, Callable[[], Awaitable[str]]]:
        pool = ThreadPoolExecutor(max_workers=1)
        loop = asyncio.get_running_loop()

        async def call(x: torch.Tensor) -> torch.Tensor:
            return await loop.run_in_executor(pool, model.forward_probabilities, x)

        async def cleanup() -> str:
            pool.shutdown()
            return ""

        return call, cleanup

    return make


def inline_call(model: LoadedModel) -> Callable[[], Any]:
    async def make() -> tuple[Call, Callable[[], Awaitable[str]]]:
        async def call(x: torch.Tensor) -> torch.Tensor:
            return model.forward_probabilities(x)

        async def cleanup() -> str:
            return ""

        return call, cleanup

    return make


def run_model(
    label: str, model: LoadedModel, *, clients: int, seconds: float
) -> tuple[Result, Result, list[Result]]:
    """Returns (ours with default settings, best baseline, every result)."""
    default = default_execution(model.device)
    other = "thread" if default == "loop" else "loop"
    ours_variants: list[tuple[str, dict[str, Any]]] = [
        (f"ours (default, {default})", {"execution": default}),
        (f"ours execution={other}", {"execution": other}),
        ("ours max_wait_ms=0.5", {"execution": default, "max_wait_ms": 0.5}),
        ("ours max_wait_ms=2", {"execution": default, "max_wait_ms": 2.0}),
        ("ours max_batch_rows=32", {"execution": default, "max_batch_rows": 32}),
    ]
    results = [
        measure(name, batcher_call(model, **opts), clients=clients, seconds=seconds)
        for name, opts in ours_variants
    ]
    baselines = [
        measure("baseline to_thread", to_thread_call(model), clients=clients, seconds=seconds),
        measure("baseline one thread", one_thread_call(model), clients=clients, seconds=seconds),
        measure("baseline inline", inline_call(model), clients=clients, seconds=seconds),
    ]
    print(f"\n{label}, {clients} clients, one-row requests, {seconds:.1f} s per run")
    for r in [*results, *baselines]:
        print(
            f"  {r.name:24s} {r.throughput:10.0f} pred/s   p50 {r.p50_ms:7.3f} ms"
            f"   p99 {r.p99_ms:7.3f} ms   {r.extra}"
        )
    best = max(baselines, key=lambda r: r.throughput)
    print(f"  ratio ours(default)/best baseline: {results[0].throughput / best.throughput:.2f}x")
    return results[0], best, results + baselines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="longer runs and a client sweep")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seconds = 6.0 if args.full else 1.5
    device = select_device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"device {device}, torch {torch.__version__}, intra-op threads {torch.get_num_threads()},"
        f" {os.cpu_count()} CPUs, load average {load:.1f} (other processes skew absolute numbers;"
        " ratios are measured in the same run)"
    )

    adult = make_model([64, 64], device)
    wide = make_model([512, 512], device)
    ours, base, _ = run_model("adult-size MLP 110-64-64-2", adult, clients=64, seconds=seconds)
    wide_ours, wide_base, _ = run_model("wide MLP 110-512-512-2", wide, clients=64, seconds=seconds)
    wide_ratio = wide_ours.throughput / wide_base.throughput
    print(
        f"\nwide model: ours {wide_ours.throughput:.0f} pred/s, best baseline "
        f"{wide_base.throughput:.0f} pred/s, ratio {wide_ratio:.2f}x"
    )
    if args.full:
        print("\nclient sweep, adult-size model (ours default vs best baseline):")
        for clients in (1, 8, 256):
            o, b, _ = run_model(f"adult-size, {clients} clients", adult, clients=clients, seconds=3)
            print(f"  {clients:4d} clients: ratio {o.throughput / b.throughput:.2f}x")

    print(
        json.dumps(
            {
                "bench": "batching",
                "metric": "predictions/s at 64 clients",
                "ours": round(ours.throughput, 1),
                "baseline": round(base.throughput, 1),
                "ratio": round(ours.throughput / base.throughput, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
