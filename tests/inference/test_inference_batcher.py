"""The micro-batcher: batched results equal unbatched ones; limits, lifecycle and failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference.batcher import EXECUTIONS, Execution, MicroBatcher
from inference.errors import (
    BatcherClosedError,
    BatcherOverloadedError,
    ForwardError,
)
from inference.model import LoadedModel

WIDTH = 7


class Recorder:
    """Wraps a forward function and records each batch's size."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.forward = forward
        self.sizes: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return self.forward(x)


class Gate:
    """Holds forward passes until released, and tells when one has started."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def wait(self) -> None:
        self.entered.set()
        assert self.release.wait(10), "test gate never released"


async def until(condition: Callable[[], bool]) -> None:
    """Poll until ``condition`` holds (instead of sleeping and hoping)."""
    deadline = time.perf_counter() + 10
    while not condition():
        assert time.perf_counter() < deadline, "condition never held"
        await asyncio.sleep(0.001)


def _rows(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, WIDTH, generator=torch.Generator().manual_seed(seed))


def _softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(torch.stack([x.sum(1), x[:, 0]], dim=1), dim=-1)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=40),
    max_batch_rows=st.integers(min_value=1, max_value=32),
    max_wait_ms=st.sampled_from([0.0, 0.5, 2.0]),
    stagger=st.booleans(),
    execution=st.sampled_from(EXECUTIONS),
)
def test_batched_results_equal_unbatched(
    loaded: LoadedModel,
    sizes: list[int],
    max_batch_rows: int,
    max_wait_ms: float,
    stagger: bool,
    execution: Execution,
) -> None:
    inputs = [_rows(n, seed) for seed, n in enumerate(sizes)]
    expected = [loaded.forward_probabilities(x) for x in inputs]
    recorder = Recorder(loaded.forward_probabilities)

    async def client(batcher: MicroBatcher, i: int) -> torch.Tensor:
        if stagger:
            await asyncio.sleep((i % 4) * 0.0005)
        return await batcher.submit(inputs[i])

    async def main() -> list[torch.Tensor]:
        batcher = MicroBatcher(
            recorder,
            max_batch_rows=max_batch_rows,
            max_wait_ms=max_wait_ms,
            input_dim=WIDTH,
            execution=execution,
        )
        async with batcher:
            return await asyncio.gather(*(client(batcher, i) for i in range(len(inputs))))

    results = asyncio.run(main())
    for got, want, x in zip(results, expected, inputs, strict=True):
        assert got.shape == (x.shape[0], 2)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # Every batch is whole requests within the limit, or one oversized request alone.
    oversized = sorted(n for n in sizes if n > max_batch_rows)
    assert sorted(s for s in recorder.sizes if s > max_batch_rows) == oversized
    assert sum(recorder.sizes) == sum(sizes)


def test_requests_are_merged_under_load_and_never_split() -> None:
    gate = Gate()
    recorder = Recorder(_softmax)

    def forward(x: torch.Tensor) -> torch.Tensor:
        gate.wait()  # hold the first batch so the rest pile up behind it
        return recorder(x)

    async def main() -> list[torch.Tensor]:
        async with MicroBatcher(forward, max_batch_rows=10) as batcher:
            first = asyncio.ensure_future(batcher.submit(_rows(1, 0)))
            await asyncio.to_thread(gate.entered.wait, 10)
            rest = [asyncio.ensure_future(batcher.submit(_rows(n, n))) for n in (4, 4, 4, 3, 12)]
            await until(lambda: batcher.stats().queued_requests == 5)
            gate.release.set()
            out = await asyncio.gather(first, *rest)
            stats = batcher.stats()
        assert stats.batches == len(recorder.sizes) and stats.rows == 28 and stats.requests == 6
        assert stats.largest_batch_rows == 12
        return out

    out = asyncio.run(main())
    # 1 alone; 4+4 (a third 4 would split past 10); 4+3; then the oversized 12 alone.
    assert recorder.sizes == [1, 8, 7, 12]
    for n, got in zip((1, 4, 4, 4, 3, 12), out, strict=True):
        torch.testing.assert_close(got, _softmax(_rows(n, n if n != 1 else 0)), atol=1e-6, rtol=0)


def test_forward_failure_fails_only_that_batch() -> None:
    gate = Gate()

    def forward(x: torch.Tensor) -> torch.Tensor:
        gate.wait()
        if bool(torch.isnan(x).any()):
            raise RuntimeError("poisoned batch")
        return _softmax(x)

    poison = torch.full((1, WIDTH), float("nan"))

    async def main() -> None:
        async with MicroBatcher(forward, max_batch_rows=64) as batcher:
            blocker = asyncio.ensure_future(batcher.submit(_rows(2, 1)))
            await asyncio.to_thread(gate.entered.wait, 10)
            same_batch = [
                asyncio.ensure_future(batcher.submit(x)) for x in (_rows(1, 2), poison, _rows(3, 3))
            ]
            await until(lambda: batcher.stats().queued_requests == 3)
            gate.release.set()
            assert (await blocker).shape == (2, 2)
            outcomes = await asyncio.gather(*same_batch, return_exceptions=True)
            assert all(isinstance(o, ForwardError) for o in outcomes)
            assert all(isinstance(o.__cause__, RuntimeError) for o in outcomes)
            assert outcomes[0] is not outcomes[1]  # each caller gets its own error
            # The worker survived: later requests succeed.
            later = await batcher.submit(_rows(5, 4))
            torch.testing.assert_close(later, _softmax(_rows(5, 4)), atol=1e-6, rtol=0)
            assert batcher.stats().failed_batches == 1

    asyncio.run(main())


def test_close_drains_queued_work_then_refuses() -> None:
    gate = Gate()

    def forward(x: torch.Tensor) -> torch.Tensor:
        gate.wait()
        return _softmax(x)

    async def main() -> None:
        batcher = MicroBatcher(forward, max_batch_rows=2)
        with pytest.raises(BatcherClosedError, match="not started"):
            await batcher.submit(_rows(1, 0))
        batcher.start()
        batcher.start()  # idempotent
        pending = [asyncio.ensure_future(batcher.submit(_rows(1, i))) for i in range(7)]
        await asyncio.to_thread(gate.entered.wait, 10)
        closing = asyncio.ensure_future(batcher.aclose())
        await until(lambda: not batcher.running)
        assert batcher.stats().queued_requests > 0  # still work to drain after close began
        with pytest.raises(BatcherClosedError, match="closed"):
            await batcher.submit(_rows(1, 0))
        gate.release.set()
        await closing
        results = await asyncio.gather(*pending)
        for i, got in enumerate(results):
            torch.testing.assert_close(got, _softmax(_rows(1, i)), atol=1e-6, rtol=0)
        assert batcher.stats().requests == 7
        with pytest.raises(BatcherClosedError):
            batcher.start()
        batcher.close()  # idempotent

    asyncio.run(main())


def test_close_of_a_never_started_batcher() -> None:
    batcher = MicroBatcher(_softmax)
    batcher.close()
    with pytest.raises(BatcherClosedError):
        batcher.start()


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_an_idle_worker_does_not_wait(execution: Execution) -> None:
    """max_wait_ms applies under load only: a lone request runs at once."""

    async def main() -> float:
        async with MicroBatcher(_softmax, max_wait_ms=2000, execution=execution) as batcher:
            await batcher.submit(_rows(1, 0))
            start = time.perf_counter()
            await batcher.submit(_rows(1, 1))
            return time.perf_counter() - start

    assert asyncio.run(main()) < 1.0


@pytest.mark.parametrize(("max_wait_ms", "expected"), [(300.0, [1, 3]), (0.0, [1, 2, 1])])
def test_wait_window_merges_arrivals_under_load(max_wait_ms: float, expected: list[int]) -> None:
    gate = Gate()
    recorder = Recorder(_softmax)

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not gate.entered.is_set():
            gate.wait()
        return recorder(x)

    async def main() -> None:
        batcher = MicroBatcher(forward, max_batch_rows=64, max_wait_ms=max_wait_ms)
        async with batcher:
            first = asyncio.ensure_future(batcher.submit(_rows(1, 0)))
            await asyncio.to_thread(gate.entered.wait, 10)
            # Two requests queued behind a running batch: the system is under load.
            queued = [asyncio.ensure_future(batcher.submit(_rows(1, i))) for i in (1, 2)]
            await until(lambda: batcher.stats().queued_requests == 2)
            gate.release.set()
            await until(lambda: batcher.stats().queued_requests == 0)
            await asyncio.sleep(0.02)
            # Arrives inside the window: joins the forming batch instead of running alone.
            late = asyncio.ensure_future(batcher.submit(_rows(1, 3)))
            await asyncio.gather(first, *queued, late)

    asyncio.run(main())
    assert recorder.sizes == expected


def test_cancelled_request_does_not_disturb_others() -> None:
    gate = Gate()

    def forward(x: torch.Tensor) -> torch.Tensor:
        gate.wait()
        return _softmax(x)

    async def main() -> None:
        async with MicroBatcher(forward, max_batch_rows=64) as batcher:
            blocker = asyncio.ensure_future(batcher.submit(_rows(1, 0)))
            await asyncio.to_thread(gate.entered.wait, 10)
            doomed = asyncio.ensure_future(batcher.submit(_rows(2, 1)))
            kept = asyncio.ensure_future(batcher.submit(_rows(3, 2)))
            await until(lambda: batcher.stats().queued_requests == 2)
            doomed.cancel()
            await asyncio.sleep(0)
            gate.release.set()
            await blocker
            torch.testing.assert_close(await kept, _softmax(_rows(3, 2)), atol=1e-6, rtol=0)
            with pytest.raises(asyncio.CancelledError):
                await doomed
            assert batcher.stats().rows == 4  # the cancelled rows were never computed

    asyncio.run(main())


def test_overload_is_refused() -> None:
    gate = Gate()

    def forward(x: torch.Tensor) -> torch.Tensor:
        gate.wait()
        return _softmax(x)

    async def main() -> None:
        async with MicroBatcher(forward, max_batch_rows=4, max_queue_rows=6) as batcher:
            running = asyncio.ensure_future(batcher.submit(_rows(4, 0)))
            await asyncio.to_thread(gate.entered.wait, 10)  # taken: no longer queued
            queued = [asyncio.ensure_future(batcher.submit(_rows(3, i))) for i in (1, 2)]
            await until(lambda: batcher.stats().queued_rows == 6)
            with pytest.raises(BatcherOverloadedError):
                await batcher.submit(_rows(1, 3))
            gate.release.set()
            await asyncio.gather(running, *queued)

    asyncio.run(main())


def test_event_loop_stays_free_during_a_forward_pass() -> None:
    def slow(x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.2)
        return _softmax(x)

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        async with MicroBatcher(slow) as batcher:
            task = asyncio.ensure_future(ticker())
            await batcher.submit(_rows(1, 0))
            task.cancel()
        return ticks

    assert asyncio.run(main()) >= 5


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(WIDTH), torch.zeros(2, WIDTH + 1), torch.zeros(1, 2, WIDTH), [[0.0] * WIDTH]],
    ids=["1-d", "wrong width", "3-d", "list"],
)
@pytest.mark.parametrize("execution", EXECUTIONS)
def test_malformed_input_is_refused(bad: Any, execution: Execution) -> None:
    async def main() -> None:
        async with MicroBatcher(_softmax, input_dim=WIDTH, execution=execution) as batcher:
            with pytest.raises(ValueError):
                await batcher.submit(bad)

    asyncio.run(main())


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_empty_request_returns_zero_rows(loaded: LoadedModel, execution: Execution) -> None:
    async def main() -> torch.Tensor:
        async with MicroBatcher.for_model(loaded, execution=execution) as batcher:
            return await batcher.submit(torch.zeros(0, WIDTH))

    assert asyncio.run(main()).shape == (0, 2)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_forward_returning_wrong_row_count_fails_cleanly(execution: Execution) -> None:
    async def main() -> None:
        async with MicroBatcher(lambda x: _softmax(x)[:1], execution=execution) as batcher:
            with pytest.raises(ForwardError):
                await batcher.submit(_rows(3, 0))

    asyncio.run(main())


@pytest.mark.parametrize(
    "options",
    [{"max_batch_rows": 0}, {"max_wait_ms": -1}, {"max_queue_rows": 0}, {"execution": "gpu"}],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MicroBatcher(_softmax, **options)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_two_event_loops_share_one_batcher(loaded: LoadedModel, execution: Execution) -> None:
    """Results go back to the loop that submitted (e.g. several server threads)."""
    batcher = MicroBatcher.for_model(loaded, execution=execution)
    batcher.start()
    results: dict[int, list[torch.Tensor]] = {}

    def run(seed: int) -> None:
        async def main() -> list[torch.Tensor]:
            return await asyncio.gather(*(batcher.submit(_rows(2, seed + i)) for i in range(20)))

        results[seed] = asyncio.run(main())

    threads = [threading.Thread(target=run, args=(s,)) for s in (0, 100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    batcher.close()
    for seed, outs in results.items():
        for i, got in enumerate(outs):
            want = loaded.forward_probabilities(_rows(2, seed + i))
            torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert len(results) == 2


# Loop execution: the event loop runs the forward passes, once per turn --------------------------


def test_loop_execution_merges_one_turn_on_the_loop_thread_and_never_splits() -> None:
    recorder = Recorder(_softmax)
    threads: set[str] = set()

    def forward(x: torch.Tensor) -> torch.Tensor:
        threads.add(threading.current_thread().name)
        return recorder(x)

    sizes = (1, 4, 4, 4, 3, 12)

    async def main() -> list[torch.Tensor]:
        async with MicroBatcher(forward, max_batch_rows=10, execution="loop") as batcher:
            assert not [t for t in threading.enumerate() if t.name.startswith("batcher-")]
            # Submitted in one turn: drained at its end, one batch per drain.
            out = await asyncio.gather(*(batcher.submit(_rows(n, i)) for i, n in enumerate(sizes)))
            stats = batcher.stats()
        assert stats.batches == 3 and stats.requests == 6 and stats.rows == 28
        return out

    out = asyncio.run(main())
    # 1+4+4 (a third 4 would split past 10); 4+3; then the oversized 12 alone.
    assert recorder.sizes == [9, 7, 12]
    assert threads == {threading.current_thread().name}
    for i, (n, got) in enumerate(zip(sizes, out, strict=True)):
        torch.testing.assert_close(got, _softmax(_rows(n, i)), atol=1e-6, rtol=0)


def test_loop_execution_forward_failure_fails_only_that_batch() -> None:
    def forward(x: torch.Tensor) -> torch.Tensor:
        if bool(torch.isnan(x).any()):
            raise RuntimeError("poisoned batch")
        return _softmax(x)

    poison = torch.full((1, WIDTH), float("nan"))

    async def main() -> None:
        async with MicroBatcher(forward, max_batch_rows=3, execution="loop") as batcher:
            first = [_rows(1, 1), poison, _rows(1, 2)]  # fills one batch
            outcomes = await asyncio.gather(
                *(batcher.submit(x) for x in (*first, _rows(2, 3))), return_exceptions=True
            )
            assert all(isinstance(o, ForwardError) for o in outcomes[:3])
            assert all(isinstance(o.__cause__, RuntimeError) for o in outcomes[:3])
            assert outcomes[0] is not outcomes[1]  # each caller gets its own error
            torch.testing.assert_close(outcomes[3], _softmax(_rows(2, 3)), atol=1e-6, rtol=0)
            assert batcher.stats().failed_batches == 1
            later = await batcher.submit(_rows(5, 4))
            torch.testing.assert_close(later, _softmax(_rows(5, 4)), atol=1e-6, rtol=0)

    asyncio.run(main())


def test_loop_execution_close_runs_the_queue_in_the_closing_thread_then_refuses() -> None:
    async def main() -> None:
        batcher = MicroBatcher(_softmax, max_batch_rows=2, execution="loop")
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(_rows(1, i))) for i in range(5)]
        await asyncio.sleep(0)  # all five queued; their drain has not run yet
        assert batcher.stats().queued_requests == 5
        batcher.close()
        assert batcher.stats().requests == 5 and batcher.stats().batches == 3
        assert not batcher.running
        with pytest.raises(BatcherClosedError, match="closed"):
            await batcher.submit(_rows(1, 0))
        for i, got in enumerate(await asyncio.gather(*pending)):
            torch.testing.assert_close(got, _softmax(_rows(1, i)), atol=1e-6, rtol=0)
        with pytest.raises(BatcherClosedError):
            batcher.start()
        batcher.close()  # idempotent
        await asyncio.sleep(0.01)  # the drain scheduled before the close finds nothing to do
        assert batcher.stats().batches == 3

    asyncio.run(main())


def test_loop_execution_overload_and_cancellation() -> None:
    recorder = Recorder(_softmax)

    async def main() -> None:
        async with MicroBatcher(
            recorder, max_batch_rows=4, max_queue_rows=8, execution="loop"
        ) as batcher:
            queued = [asyncio.ensure_future(batcher.submit(_rows(3, i))) for i in (1, 2)]
            doomed = asyncio.ensure_future(batcher.submit(_rows(2, 9)))
            await asyncio.sleep(0)  # the submissions ran; the drain comes after this task
            assert batcher.stats().queued_rows == 8
            with pytest.raises(BatcherOverloadedError):
                await batcher.submit(_rows(1, 3))
            doomed.cancel()
            for i, got in zip((1, 2), await asyncio.gather(*queued), strict=True):
                torch.testing.assert_close(got, _softmax(_rows(3, i)), atol=1e-6, rtol=0)
            with pytest.raises(asyncio.CancelledError):
                await doomed
        assert recorder.sizes == [3, 3]  # the cancelled rows were never computed

    asyncio.run(main())


@pytest.mark.parametrize(
    ("max_wait_ms", "max_batch_rows", "expected"),
    [(300.0, 64, [3]), (0.0, 64, [2, 1]), (5000.0, 3, [3])],
    ids=["window", "greedy", "full before the window ends"],
)
def test_loop_execution_wait_window_merges_arrivals_under_load(
    max_wait_ms: float, max_batch_rows: int, expected: list[int]
) -> None:
    recorder = Recorder(_softmax)

    async def main() -> float:
        batcher = MicroBatcher(
            recorder, max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms, execution="loop"
        )
        async with batcher:
            start = time.perf_counter()
            # Two requests in one turn: under load, so the batch waits for the window.
            first = [asyncio.ensure_future(batcher.submit(_rows(1, i))) for i in (0, 1)]
            await asyncio.sleep(0.02)
            late = asyncio.ensure_future(batcher.submit(_rows(1, 2)))
            await asyncio.gather(*first, late)
            return time.perf_counter() - start

    elapsed = asyncio.run(main())
    assert recorder.sizes == expected
    assert elapsed < 2.0  # a full batch does not wait out a 5 s window


def test_loop_execution_moves_to_a_thread_when_forward_passes_exceed_the_budget() -> None:
    loop_thread = threading.current_thread().name
    ran_in: list[str] = []

    def slow(x: torch.Tensor) -> torch.Tensor:
        ran_in.append(threading.current_thread().name)
        time.sleep(0.003)  # 3 ms a pass, against a 1 ms budget
        return _softmax(x)

    async def main() -> None:
        batcher = MicroBatcher(slow, execution="loop", loop_budget_ms=1.0, name="slow")
        async with batcher:
            for i in range(24):  # one request per pass
                got = await batcher.submit(_rows(1, i))
                torch.testing.assert_close(got, _softmax(_rows(1, i)), atol=1e-6, rtol=0)
            assert batcher.execution == "thread"
            assert [t for t in threading.enumerate() if t.name == "batcher-slow"]
            out = await asyncio.gather(*(batcher.submit(_rows(2, i)) for i in range(8)))
            for i, got in enumerate(out):
                torch.testing.assert_close(got, _softmax(_rows(2, i)), atol=1e-6, rtol=0)
        assert not [t for t in threading.enumerate() if t.name == "batcher-slow"]

    asyncio.run(main())
    # The first full window ran on the loop; after the move, never again.
    assert ran_in[:16] == [loop_thread] * 16
    assert ran_in[-1] == "batcher-slow"
    moved = ran_in.index("batcher-slow")
    assert loop_thread not in ran_in[moved:]


def test_a_slow_outlier_does_not_move_the_loop() -> None:
    calls = 0

    def mostly_fast(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls % 8 == 0:
            time.sleep(0.02)  # a pause now and then (a collection, a busy neighbour)
        return _softmax(x)

    async def main() -> str:
        async with MicroBatcher(mostly_fast, execution="loop", loop_budget_ms=5.0) as batcher:
            for i in range(40):
                await batcher.submit(_rows(1, i))
            return batcher.execution

    assert asyncio.run(main()) == "loop"


def test_loop_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="loop_budget_ms"):
        MicroBatcher(_softmax, execution="loop", loop_budget_ms=0)
