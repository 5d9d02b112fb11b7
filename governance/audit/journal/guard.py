"""A deadline on every durable audit write, and a circuit breaker in front of the journal.

A request is answered only once its audit entry committed, so a frozen database must not hold
every request with it. An append not durable within ``deadline`` is refused (503,
``Retry-After``) and opens the breaker; while it is open, or while the database monitor says
the database does not answer, appends are refused at once. A probe (one ``audit.probe`` entry,
at most every ``retry_every`` seconds) tests the whole audit path and its commit closes the
breaker.

An append refused at its deadline may still commit later; its request was answered 503, so
every 200 is still in the log, and one ``audit.deadline`` entry later names those requests so
an auditor knows which entries describe refused answers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Sequence

from governance.audit.journal import Journal
from governance.audit.writer import AuditUnavailable
from governance.kit import metrics
from governance.kit.events import AuditEvent

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
# Most request ids one audit.deadline entry names; beyond, it counts them.
_NOTE_MAX_IDS = 1000


class GuardedJournal:
    """A :class:`~governance.audit.journal.Journal` whose appends meet a deadline.

    Args:
        inner: the journal that writes (a thread's or a writer process's).
        deadline: seconds an append may wait for its commit.
        database: why the database counts as unavailable now (None: it answers).
        retry_every: seconds between probes of the audit path while it is down.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        inner: Journal,
        *,
        deadline: float,
        database: Callable[[], str | None] | None = None,
        retry_every: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.inner = inner
        self.deadline = deadline
        self._database = database
        self._retry_every = retry_every
        self._clock = clock
        self._lock = threading.Lock()
        self._refusing: str | None = None  # the breaker is open: why
        self._failed: str | None = None  # the last append failed (and nothing succeeded since)
        self._next_probe = 0.0
        self._probing = False
        self._refused_ids: list[str] = []  # answered 503 after their entry left for the writer
        self._refused_count = 0

    def __repr__(self) -> str:
        return f"GuardedJournal({self.inner!r}, refusing={self._refusing is not None})"

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()

    # -- state -----------------------------------------------------------------------------

    def problem(self, *, probe: bool = False) -> str | None:
        """Why appends are refused now, or why the audit path is not known to work.

        Args:
            probe: start a probe of the audit path if it is down and one is due (readiness
                asks so; refused appends always do).

        Returns:
            None when appends are attempted and the last one succeeded.
        """
        database = self._database() if self._database is not None else None
        if database is not None:
            return database
        writer = self.inner.problem()
        if writer is not None:
            return writer
        with self._lock:
            problem = self._refusing or self._failed
        if problem is not None and probe:
            self._probe_if_due()
        return problem

    def _admit(self) -> None:
        database = self._database() if self._database is not None else None
        refusing = database or self._refusing
        if refusing is not None:
            if database is None:
                self._probe_if_due()
            raise AuditUnavailable(refusing)

    def _missed(self, events: Sequence[AuditEvent]) -> str:
        reason = f"the audit log did not commit within {self.deadline * 1000:.0f} ms"
        with self._lock:
            if self._refusing is None:
                logger.error("audit journal: %s; refusing appends until a probe commits", reason)
            self._refusing = reason
            self._failed = reason
            self._next_probe = self._clock() + self._retry_every
            for event in events:
                if event.request_id is not None:
                    self._refused_count += 1
                    if len(self._refused_ids) < _NOTE_MAX_IDS:
                        self._refused_ids.append(event.request_id)
        return reason

    def _fail(self, exc: AuditUnavailable) -> None:
        # A subclass (a stale item, prepared again by its caller) is the item's own trouble.
        if type(exc) is AuditUnavailable:
            with self._lock:
                self._failed = exc.message

    def _succeeded(self) -> None:
        # Every append ends here: no lock while there is nothing to reset (a flag set meanwhile
        # is reset by the next success).
        if self._refusing is None and self._failed is None and not self._refused_count:
            return
        with self._lock:
            was = self._refusing
            self._refusing = None
            self._failed = None
            ids, count = self._refused_ids, self._refused_count
            self._refused_ids, self._refused_count = [], 0
        if was is not None:
            logger.warning("audit journal: appends commit again")
        if count:
            threading.Thread(
                target=self._note_refused, args=(ids, count), name="journal-note", daemon=True
            ).start()

    # -- appends ---------------------------------------------------------------------------

    async def append(self, events: Sequence[AuditEvent], record: object | None = None) -> list[int]:
        """:meth:`Journal.append`, refused at once while the audit path is down.

        Raises:
            AuditUnavailable: refused now, failed, or not durable within the deadline.
        """
        self._admit()
        started = time.perf_counter()
        metrics.JOURNAL_QUEUE.inc()
        try:
            # A timer on this task, not wait_for's extra task per append (the hot path).
            async with asyncio.timeout(self.deadline):
                seqs = await self.inner.append(events, record)
        except TimeoutError:
            raise AuditUnavailable(self._missed(events)) from None
        except AuditUnavailable as exc:
            self._fail(exc)
            raise
        finally:
            metrics.JOURNAL_QUEUE.dec()
            metrics.DURABLE_SECONDS.observe(time.perf_counter() - started)
        self._succeeded()
        return seqs

    def append_sync(self, events: Sequence[AuditEvent], timeout: float = 30.0) -> list[int]:
        """:meth:`append` for threads; ``timeout`` longer than the deadline is cut to it."""
        self._admit()
        try:
            seqs = self.inner.append_sync(events, timeout=min(timeout, self.deadline))
        except concurrent.futures.TimeoutError:
            raise AuditUnavailable(self._missed(events)) from None
        except AuditUnavailable as exc:
            self._fail(exc)
            raise
        self._succeeded()
        return seqs

    # -- probes and notes ------------------------------------------------------------------

    def _probe_if_due(self) -> None:
        with self._lock:
            if self._probing or self._clock() < self._next_probe:
                return
            self._probing = True
            self._next_probe = self._clock() + self._retry_every
        # A thread: the probe waits up to the deadline, and its caller is refused now.
        threading.Thread(target=self._probe, name="journal-probe", daemon=True).start()

    def _probe(self) -> None:
        event = AuditEvent(
            event_type="audit.probe",
            action="probe",
            decision="n/a",
            reason="checking the audit path after a failed or late write",
        )
        try:
            self.inner.append_sync([event], timeout=self.deadline)
        except concurrent.futures.TimeoutError:
            ok = False
        except Exception as exc:  # the journal's refusal, whatever its form
            logger.info("audit journal probe failed: %s", type(exc).__name__)
            ok = False
        else:
            ok = True
        with self._lock:
            self._probing = False
        if ok:
            self._succeeded()

    def _note_refused(self, ids: list[str], count: int) -> None:
        """Name in the log the requests answered 503 whose entries may have committed late."""
        event = AuditEvent(
            event_type="audit.deadline",
            action="refuse",
            decision="deny",
            outcome=503,
            reason=(
                "these requests were answered 503: their audit writes missed the deadline; "
                "an entry of theirs that committed later describes an answer never sent"
            ),
            resource={"object": "audit:journal"},
            details={
                "request_ids": ids,
                "requests": count,
                "deadline_ms": round(self.deadline * 1000),
            },
        )
        try:
            self.inner.append_sync([event], timeout=max(self.deadline, 1.0))
        except Exception as exc:
            logger.warning("audit journal: the deadline note failed: %s", type(exc).__name__)
            with self._lock:  # kept for the next success
                self._refused_ids = (ids + self._refused_ids)[:_NOTE_MAX_IDS]
                self._refused_count += count
