"""Dynamic micro-batching: concurrent requests share one forward pass.

A forward pass takes every request queued when it starts, up to ``max_batch_rows`` rows,
concatenates them and hands each request its rows back. The ``execution`` mode says who runs it:

- ``"thread"``: a worker thread (torch releases the GIL inside each operator), for GPUs and for
  models whose forward pass is long.
- ``"loop"``: the event loop itself, once at the end of each turn. For a small model on the CPU
  the handoff costs more than the forward pass, since a worker thread must win the GIL back
  after every operator. With a ``loop_budget_ms``, once the median of the last 16 forward passes
  exceeds the budget the batcher moves to a worker thread for good.
  :func:`default_execution` picks ``"loop"`` on the CPU and ``"thread"`` elsewhere.

An idle batcher never waits; under load a batch collects for up to ``max_wait_ms`` (default 0:
greedy, as requests pile up during a forward pass anyway). A request is never split across
batches, a failing forward pass fails only its own batch (:class:`ForwardError`), and closing
drains the queue before later submissions get :class:`BatcherClosedError`.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import torch

from inference.errors import BatcherClosedError, BatcherError, BatcherOverloadedError, ForwardError

logger = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], torch.Tensor]
# Told of each forward pass: the batcher's name, the requests merged, their rows. Called where
# the pass ran (the worker thread or the event loop); it must be quick and must not raise.
BatchObserver = Callable[[str, int, int], None]
Execution = Literal["thread", "loop"]
EXECUTIONS: tuple[Execution, ...] = ("thread", "loop")


def default_execution(device: torch.device) -> Execution:
    """Where forward passes run by default: on the event loop on the CPU, else in a thread."""
    return "loop" if device.type == "cpu" else "thread"


_NEW, _RUNNING, _CLOSING, _CLOSED = "new", "running", "closing", "closed"
_BUDGET_WINDOW = 16  # forward passes on the loop whose median is held against the budget


@dataclass(frozen=True)
class BatcherStats:
    """Counters since start, for benchmarks and health checks."""

    batches: int
    requests: int
    rows: int
    failed_batches: int
    largest_batch_rows: int
    queued_requests: int
    queued_rows: int

    @property
    def mean_batch_rows(self) -> float:
        """Rows per forward pass."""
        return self.rows / self.batches if self.batches else 0.0

    @property
    def mean_batch_requests(self) -> float:
        """Requests merged per forward pass."""
        return self.requests / self.batches if self.batches else 0.0


class _Pending:
    __slots__ = ("enqueued", "future", "loop", "rows", "x")

    def __init__(
        self,
        x: torch.Tensor,
        future: asyncio.Future[torch.Tensor],
        loop: asyncio.AbstractEventLoop,
        enqueued: float,
    ) -> None:
        self.x = x
        self.rows = int(x.shape[0])
        self.future = future
        self.loop = loop
        self.enqueued = enqueued


def _deliver(
    outcomes: list[tuple[asyncio.Future[torch.Tensor], torch.Tensor | BaseException]],
) -> None:
    # Runs on the requests' event loop: only there may a future be resolved.
    for future, outcome in outcomes:
        if future.done():  # the caller was cancelled meanwhile
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class MicroBatcher:
    """Merge concurrent requests for one model into shared forward passes.

    Args:
        forward: encoded rows ``[n, input_dim]`` → probability rows ``[n, k]``, usually
            ``LoadedModel.forward_probabilities``. Called from the worker thread only.
        max_batch_rows: most rows in one forward pass (a larger request runs alone).
        max_wait_ms: how long a forming batch may wait for more requests, under load only.
        input_dim: when given, a submitted tensor must have this many columns.
        max_queue_rows: when given, a submission that would queue more rows than this is
            refused with :class:`BatcherOverloadedError` (fail fast instead of queueing forever).
        name: names the worker thread and log lines.
        execution: ``"thread"`` (a worker thread runs the forward passes) or ``"loop"`` (the
            submitting event loop runs them, once per turn); see the module docstring.
        loop_budget_ms: with loop execution, move to a worker thread for good once the median
            of the last 16 forward passes on the loop takes longer than this.
        on_batch: told of each forward pass (its requests and rows), for metrics.

    Raises:
        ValueError: for a non-positive ``max_batch_rows`` or a negative ``max_wait_ms``.
    """

    def __init__(
        self,
        forward: Forward,
        *,
        max_batch_rows: int = 256,
        max_wait_ms: float = 0.0,
        input_dim: int | None = None,
        max_queue_rows: int | None = None,
        name: str = "model",
        execution: Execution = "thread",
        loop_budget_ms: float | None = None,
        on_batch: BatchObserver | None = None,
    ) -> None:
        if max_batch_rows < 1:
            raise ValueError("max_batch_rows must be at least 1")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")
        if max_queue_rows is not None and max_queue_rows < 1:
            raise ValueError("max_queue_rows must be at least 1")
        if loop_budget_ms is not None and loop_budget_ms <= 0:
            raise ValueError("loop_budget_ms must be positive")
        if execution not in EXECUTIONS:
            raise ValueError(f"execution must be one of {EXECUTIONS}, not {execution!r}")
        self._forward = forward
        self._on_batch = on_batch
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_ms / 1000.0
        self.input_dim = input_dim
        self.max_queue_rows = max_queue_rows
        self.loop_budget_s = None if loop_budget_ms is None else loop_budget_ms / 1000.0
        self._loop_passes: deque[float] = deque(maxlen=_BUDGET_WINDOW)
        self._loop_count = 0
        self.name = name
        self.execution = execution
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._state = _NEW
        self._thread: threading.Thread | None = None
        # Loop execution: the event loops with a drain scheduled now, and those with one
        # scheduled at the end of a wait window.
        self._soon: set[asyncio.AbstractEventLoop] = set()
        self._later: set[asyncio.AbstractEventLoop] = set()
        self._last_batch_requests = 0
        self._batches = self._requests = self._rows = self._failed = self._largest = 0

    @classmethod
    def for_model(cls, model: Any, **options: Any) -> MicroBatcher:
        """A batcher over ``model.forward_probabilities`` checking ``model.input_dim``.

        Args:
            model: a :class:`inference.model.LoadedModel`.
            **options: the keyword options of :class:`MicroBatcher`.

        Returns:
            The batcher, not started.
        """
        options.setdefault("input_dim", model.input_dim)
        options.setdefault("name", f"{model.manifest.name}@{model.manifest.version}")
        return cls(model.forward_probabilities, **options)

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start accepting requests, and the worker thread if any (idempotent while running).

        Raises:
            BatcherClosedError: when the batcher was closed; a closed batcher never restarts.
        """
        with self._cond:
            if self._state == _RUNNING:
                return
            if self._state != _NEW:
                raise BatcherClosedError(f"batcher {self.name!r} is closed and cannot restart")
            self._state = _RUNNING
            if self.execution == "thread":
                self._start_worker_locked()

    def _start_worker_locked(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"batcher-{self.name}", daemon=True)
        self._thread.start()

    def close(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Stop accepting requests, finish the queued ones, then stop the worker.

        Args:
            wait: block until the queue is drained and the worker has exited. Blocking does not
                need the event loop (results are posted to it), so it cannot deadlock, but from
                a coroutine prefer :meth:`aclose`. With loop execution the queued requests run
                here and now, in the calling thread, whatever ``wait`` says.
            timeout: most seconds to wait.
        """
        with self._cond:
            if self._state == _NEW:
                self._state = _CLOSED
                return
            if self._state == _RUNNING:
                self._state = _CLOSING
                self._cond.notify_all()
            thread = self._thread
        if self.execution == "loop":
            while (batch := self._take_batch()) is not None:
                self._execute(batch)
            with self._cond:
                self._state = _CLOSED
            return
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`close`."""
        return self._state == _RUNNING

    async def __aenter__(self) -> MicroBatcher:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # requests ----------------------------------------------------------------------------------

    async def submit(self, x: torch.Tensor) -> torch.Tensor:
        """Run one request's rows, batched with whatever else is in flight.

        Args:
            x: encoded rows ``[n, input_dim]`` (``n`` may be 0).

        Returns:
            The probability rows ``[n, k]`` for exactly these rows, on the CPU.

        Raises:
            ValueError: when ``x`` is not a 2-D tensor of the expected width.
            BatcherClosedError: when the batcher is not started or is closing.
            BatcherOverloadedError: when ``max_queue_rows`` would be exceeded.
            ForwardError: when the forward pass of this request's batch failed.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            raise ValueError("submit expects a 2-D tensor of encoded rows")
        if self.input_dim is not None and x.shape[1] != self.input_dim:
            raise ValueError(f"expected {self.input_dim} columns, got {x.shape[1]}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[torch.Tensor] = loop.create_future()
        item = _Pending(x, future, loop, time.perf_counter())
        drain_now = False
        with self._cond:
            if self._state != _RUNNING:
                state = "not started" if self._state == _NEW else "closed"
                raise BatcherClosedError(f"batcher {self.name!r} is {state}")
            limit = self.max_queue_rows
            if limit is not None and self._queue and self._queued_rows + item.rows > limit:
                raise BatcherOverloadedError(f"batcher {self.name!r} has {limit} rows queued")
            self._queue.append(item)
            self._queued_rows += item.rows
            if self.execution == "thread":
                self._cond.notify()
            elif loop not in self._soon and (
                loop not in self._later or self._queued_rows >= self.max_batch_rows
            ):
                # One drain per loop and turn; a full queue does not wait out a window.
                self._soon.add(loop)
                drain_now = True
        if drain_now:
            loop.call_soon(self._drain, loop, False)
        return await future

    def stats(self) -> BatcherStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            return BatcherStats(
                batches=self._batches,
                requests=self._requests,
                rows=self._rows,
                failed_batches=self._failed,
                largest_batch_rows=self._largest,
                queued_requests=len(self._queue),
                queued_rows=self._queued_rows,
            )

    # loop execution --------------------------------------------------------------------------

    def _drain(self, loop: asyncio.AbstractEventLoop, delayed: bool) -> None:
        """Run one batch on this event loop; schedule the next if more is queued."""
        with self._cond:
            (self._later if delayed else self._soon).discard(loop)
            if self.execution != "loop":
                return  # moved to a worker thread, which takes what is queued
            wait = self._window_left_locked()
            if wait > 0:
                if loop not in self._later:
                    self._later.add(loop)
                    loop.call_later(wait, self._drain, loop, True)
                return
        batch = self._take_batch()
        if batch is not None:
            started = time.perf_counter()
            self._execute(batch)
            if self.loop_budget_s is not None:
                self._charge_loop(time.perf_counter() - started)
        with self._cond:
            again = self.execution == "loop" and bool(self._queue) and loop not in self._soon
            if again:
                self._soon.add(loop)
        if again:
            loop.call_soon(self._drain, loop, False)

    def _charge_loop(self, seconds: float) -> None:
        """Count one forward pass on the loop; past the budget, move to a worker thread."""
        passes = self._loop_passes
        passes.append(seconds)
        self._loop_count += 1
        if self._loop_count < _BUDGET_WINDOW or self._loop_count % 4:
            return  # a full window first, then a look every fourth pass
        median = statistics.median(passes)
        assert self.loop_budget_s is not None
        if median <= self.loop_budget_s:
            return
        with self._cond:
            if self.execution != "loop" or self._state != _RUNNING:
                return
            self.execution = "thread"
            self._start_worker_locked()
            self._cond.notify()
        logger.warning(
            "batcher %s: forward passes took %.1f ms (median of the last %d), over the event "
            "loop's budget of %.1f ms; they run in a worker thread from now on",
            self.name,
            median * 1000,
            len(passes),
            self.loop_budget_s * 1000,
        )

    def _window_left_locked(self) -> float:
        """Seconds the forming batch should still wait for arrivals (0: run it now)."""
        queue = self._queue
        if self.max_wait_s <= 0 or not queue or self._state != _RUNNING:
            return 0.0
        if self._queued_rows >= self.max_batch_rows:
            return 0.0
        if len(queue) < 2 and self._last_batch_requests < 2:
            return 0.0  # not under load: a lone request runs at once
        return queue[0].enqueued + self.max_wait_s - time.perf_counter()

    def _take_batch(self) -> list[_Pending] | None:
        """Take the next batch off the queue (None when nothing live is queued)."""
        with self._cond:
            batch: list[_Pending] = []
            self._take_locked(batch, 0)
            if not batch:
                return None
            self._last_batch_requests = len(batch)
            return batch

    # worker ------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._execute(batch)
        except BaseException:  # never leave callers awaiting a dead worker
            logger.exception("batcher %s: worker crashed", self.name)
            raise
        finally:
            with self._cond:
                self._state = _CLOSED
                leftover = list(self._queue)
                self._queue.clear()
                self._queued_rows = 0
            failure = BatcherClosedError(f"batcher {self.name!r} stopped")
            self._post((item, failure) for item in leftover)

    def _take_locked(self, batch: list[_Pending], rows: int) -> int:
        """Move queued requests into ``batch`` while they fit; returns the batch's rows."""
        queue = self._queue
        while queue and rows < self.max_batch_rows:
            item = queue[0]
            if item.future.cancelled():  # its caller gave up: skip the work
                queue.popleft()
                self._queued_rows -= item.rows
                continue
            if batch and rows + item.rows > self.max_batch_rows:
                break  # never split a request; it leads the next batch
            queue.popleft()
            self._queued_rows -= item.rows
            batch.append(item)
            rows += item.rows
        return rows

    def _next_batch(self) -> list[_Pending] | None:
        with self._cond:
            while True:
                while not self._queue:
                    if self._state != _RUNNING:
                        return None
                    self._cond.wait()
                batch: list[_Pending] = []
                rows = self._take_locked(batch, 0)
                if not batch:
                    continue  # everything queued was cancelled
                under_load = len(batch) > 1 or self._last_batch_requests > 1
                if self.max_wait_s > 0 and under_load:
                    deadline = batch[0].enqueued + self.max_wait_s
                    # Stop when full, when the next request would not fit, at the deadline, or
                    # on close (closing drains at once rather than waiting out the window).
                    while rows < self.max_batch_rows and not self._queue:
                        remaining = deadline - time.perf_counter()
                        if remaining <= 0 or self._state != _RUNNING:
                            break
                        self._cond.wait(remaining)
                        rows = self._take_locked(batch, rows)
                self._last_batch_requests = len(batch)
                return batch

    def _execute(self, batch: list[_Pending]) -> None:
        outcomes: list[tuple[_Pending, torch.Tensor | BaseException]]
        rows = sum(item.rows for item in batch)
        try:
            x = batch[0].x if len(batch) == 1 else torch.cat([item.x for item in batch])
            # Grad mode is per thread: make sure no autograd graph is built here.
            with torch.inference_mode():
                probs = self._forward(x)
            if probs.shape[0] != rows:
                raise BatcherError(f"forward returned {probs.shape[0]} rows for {rows}")
            parts = torch.split(probs, [item.rows for item in batch])
            outcomes = list(zip(batch, parts, strict=True))
            failed = False
        except Exception as exc:
            logger.exception("batcher %s: forward pass failed for %d rows", self.name, rows)
            outcomes = []
            for item in batch:
                error = ForwardError(f"the forward pass of model {self.name!r} failed")
                error.__cause__ = exc
                outcomes.append((item, error))
            failed = True
        with self._cond:
            self._batches += 1
            self._requests += len(batch)
            self._rows += rows
            self._failed += failed
            self._largest = max(self._largest, rows)
        if self._on_batch is not None:
            try:
                self._on_batch(self.name, len(batch), rows)
            except Exception:
                logger.exception("batcher %s: batch observer failed", self.name)
        self._post(outcomes)

    def _post(self, outcomes: Iterable[tuple[_Pending, torch.Tensor | BaseException]]) -> None:
        # One wake-up per event loop per batch, not one per request.
        by_loop: dict[
            asyncio.AbstractEventLoop,
            list[tuple[asyncio.Future[torch.Tensor], torch.Tensor | BaseException]],
        ] = {}
        for item, outcome in outcomes:
            by_loop.setdefault(item.loop, []).append((item.future, outcome))
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None  # the worker thread, or a closing thread
        for loop, items in by_loop.items():
            if loop is here:
                _deliver(items)  # loop execution: this loop's own requests, settled at once
                continue
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that loop is closed; nobody is waiting any more
                logger.warning("batcher %s: event loop closed before delivery", self.name)
