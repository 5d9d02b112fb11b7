"""A bounded queue for heavy work (bias audits, mitigation, training, reports) per process.

At most ``concurrency`` heavy jobs compute at a time; up to ``queue_max`` more wait their turn
in arrival order, holding no database transaction and no worker thread (they wait on the event
loop). Beyond that a request is refused at once with 503 and ``Retry-After``, so a burst of
audits never queues behind the database lock where predictions would wait with it.

A job's slot is released only when its worker thread has finished: a client that disconnects
does not free a slot its computation still uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from governance.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds a refused client is told to wait: one short job's time, not a promise.
RETRY_AFTER_SECONDS = 5


class HeavyJobsBusy(ServiceUnavailable):
    """Every slot is taken and the queue is full (503, ``Retry-After``)."""

    title = "Too many heavy jobs"
    type_slug = "heavy-jobs-busy"

    def __init__(self, message: str, *, running: int, waiting: int) -> None:
        super().__init__(message, extra={"running": running, "waiting": waiting})
        self.retry_after = RETRY_AFTER_SECONDS


@dataclass(frozen=True)
class JobsState:
    """What the queue holds now."""

    running: int
    waiting: int
    concurrency: int
    queue_max: int


class HeavyJobs:
    """At most ``concurrency`` heavy jobs at once, ``queue_max`` more waiting in order.

    Args:
        concurrency: jobs that compute at the same time.
        queue_max: jobs that may wait for a slot; one more is refused (503).
    """

    def __init__(self, *, concurrency: int, queue_max: int) -> None:
        if concurrency < 1 or queue_max < 0:
            raise ValueError("concurrency must be >= 1 and queue_max >= 0")
        self.concurrency = concurrency
        self.queue_max = queue_max
        self._running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def state(self) -> JobsState:
        return JobsState(self._running, len(self._waiters), self.concurrency, self.queue_max)

    def position(self, waiter: asyncio.Future[None]) -> int:
        """1-based place of a waiter in the queue (0 once it runs)."""
        try:
            return self._waiters.index(waiter) + 1
        except ValueError:
            return 0

    async def _acquire(self, kind: str) -> None:
        if self._running < self.concurrency and not self._waiters:
            self._running += 1
            return
        if len(self._waiters) >= self.queue_max:
            logger.warning(
                "heavy job %s refused: %d running, %d waiting",
                kind,
                self._running,
                len(self._waiters),
            )
            raise HeavyJobsBusy(
                f"{self._running} heavy jobs are running and {len(self._waiters)} are waiting "
                "(the most this server queues); retry later",
                running=self._running,
                waiting=len(self._waiters),
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        logger.info("heavy job %s queued at position %d", kind, len(self._waiters))
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as the caller went away: pass it on.
                self._release()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                # The slot passes straight to the next waiter; ``_running`` is unchanged.
                waiter.set_result(None)
                return
        self._running -= 1

    @asynccontextmanager
    async def slot(self, kind: str) -> AsyncIterator[None]:
        """Hold one slot for the block, waiting in order for it.

        Raises:
            HeavyJobsBusy: the queue is full.
        """
        await self._acquire(kind)
        try:
            yield
        finally:
            self._release()

    async def run(self, kind: str, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in a worker thread once a slot is free.

        The thread is not abandoned on cancellation (anyio waits for it), so the slot stays
        held until the computation has really stopped.

        Raises:
            HeavyJobsBusy: the queue is full.
        """
        async with self.slot(kind):
            return await run_in_threadpool(fn, *args)
