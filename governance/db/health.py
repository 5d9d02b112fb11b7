"""Whether the database answers: a probe thread, judged by how long its query has taken.

A stopped PostgreSQL (SIGSTOP, a frozen VM) answers no query and enforces no statement
timeout, while its kernel still acknowledges every packet and keepalive: nothing in the driver
notices. What does notice is a clock: the probe stamps when its ``SELECT 1`` began, and the
database counts as unavailable once that query is older than the deadline, even while it is
still stuck. Requests then fail fast with 503 instead of joining the wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, text

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class DatabaseMonitor:
    """Probes the database with ``SELECT 1`` and says whether it answers within a deadline.

    Args:
        engine: the engine probed (its pool gives the probe a connection).
        deadline: seconds a probe may take before the database counts as unavailable.
        interval: seconds between the end of one probe and the start of the next.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        deadline: float,
        interval: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._engine = engine
        self.deadline = deadline
        self._interval = interval
        self._clock = clock
        self._started: float | None = None  # when the probe in flight began
        self._error: str | None = None  # what the last finished probe found
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="db-monitor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        # A probe stuck in a frozen database is not waited for: the thread is a daemon.
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.deadline)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.probe()
            self._stop.wait(self._interval)

    def probe(self) -> bool:
        """Run one ``SELECT 1`` now, in this thread; whether it succeeded."""
        self._started = self._clock()
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            if self._error is None:
                logger.error("database probe failed: %s", type(exc).__name__)
            self._error = "the database is not reachable"
            return False
        finally:
            self._started = None
        if self._error is not None:
            logger.warning("database probe: the database answers again")
        self._error = None
        return True

    def problem(self) -> str | None:
        """Why the database counts as unavailable now, or None while it answers."""
        started = self._started
        if started is not None and self._clock() - started > self.deadline:
            return f"the database has not answered for {self.deadline * 1000:.0f} ms"
        return self._error
