"""Group commit: one thread writes the audit entries of many concurrent requests at once.

A request hands its events (and, for predictions, the insert of its encrypted record) to
:meth:`AuditWriter.submit` and waits. The writer thread drains everything queued, appends it in
ONE transaction and resolves every waiter after the commit returns, so an entry is durable
before the request it records is answered, and one fsync is shared by the whole batch.

If the batch fails, each item is retried alone, so one bad item cannot sink the others. An item
that still fails gets :class:`AuditUnavailable`; its request must answer 503, never unaudited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from governance.audit import log as audit_log
from governance.audit import merkle
from governance.audit.checkpoints import Checkpointer
from governance.audit.errors import AuditError, AuditIntegrityError
from governance.kit import metrics
from governance.kit.events import AuditEvent

logger = logging.getLogger(__name__)


class GroupCommit:
    """One group commit's transaction, as its items' ``write`` callbacks see it.

    The writer runs it on a Core connection, not an ORM session: a session's transaction
    bookkeeping cost about a quarter of the journal writer process's CPU time per batch, and
    the group commit loads no objects.

    Attributes:
        connection: the transaction's connection; everything written on it commits together.
        state: per-transaction scratch space for callbacks that gather their rows (by key).
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.state: dict[str, Any] = {}
        self._before_commit: list[Callable[[GroupCommit], None]] = []

    def before_commit(self, hook: Callable[[GroupCommit], None]) -> None:
        """Run ``hook`` once every item's callback has run, just before the commit."""
        self._before_commit.append(hook)

    def run_hooks(self) -> None:
        hooks, self._before_commit = self._before_commit, []
        for hook in hooks:
            hook(self)


WriteFn = Callable[[GroupCommit, list[int]], None]


class AuditUnavailable(AuditError):
    """The audit write failed: the request is refused."""

    status_code = 503
    title = "Audit log unavailable"
    type_slug = "audit-unavailable"
    retry_after = 1  # seconds (the Retry-After header): the journal probes about this often


class StaleWrite(AuditUnavailable):
    """An item refused by its own ``write``: what it was prepared with went stale meanwhile
    (a record sealed under a data key erased since). Nothing of it was written, the log is
    healthy, and the caller may prepare the item again; so it is not logged as an outage."""

    type_slug = "audit-stale-write"


Outcome = list[int] | BaseException
# One item of a group commit: its events, and the insert that goes in the same transaction.
Pending = tuple[Sequence[AuditEvent], WriteFn | None]


@dataclass
class _Item:
    """Queued events, and who waits for them: a thread (``future``) or an event loop."""

    events: Sequence[AuditEvent]
    write: WriteFn | None
    future: Future[list[int]] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[list[int]] | None = None

    def waiter_of(self) -> Waiter:
        if self.loop is not None and self.waiter is not None:
            return (self.loop, self.waiter)
        assert self.future is not None
        return self.future


# Who waits for an append: an event loop's future (with its loop), or a thread's future.
Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[list[int]]] | Future[list[int]]


def _settle(future: Future[list[int]] | asyncio.Future[list[int]], outcome: Outcome) -> None:
    if future.done():  # a caller that gave up (cancelled) gets nothing
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _deliver(waiters: list[tuple[asyncio.Future[list[int]], Outcome]]) -> None:
    # Runs in the event loop: settles every waiter of one batch in one callback.
    for waiter, outcome in waiters:
        _settle(waiter, outcome)


def resolve(outcomes: Sequence[tuple[Waiter, Outcome]]) -> None:
    """Settle waiters: threads directly, event loops with one callback per loop.

    Callable from any thread; the waiters of a whole batch cost each loop one wake-up, and
    the waiters of the loop running the call (the journal reading its answers on the server's
    loop) are settled at once.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[int]], Outcome]]]
    by_loop = {}
    for waiter, outcome in outcomes:
        if isinstance(waiter, tuple):
            by_loop.setdefault(waiter[0], []).append((waiter[1], outcome))
        else:
            _settle(waiter, outcome)
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for loop, waiters in by_loop.items():
        if loop is here:
            _deliver(waiters)
            continue
        try:
            loop.call_soon_threadsafe(_deliver, waiters)
        except RuntimeError:  # that loop is closed; nobody is waiting any more
            logger.warning("audit writer: event loop closed before delivery")


def next_wait(deadline: float, idle: float | None) -> float:
    """How long a forming batch waits for its next item (seconds; 0 or less: close it now).

    Until the window's ``deadline`` (``time.monotonic()``), and with an ``idle`` limit no
    longer than that after the last arrival: one moment's concurrent requests arrive within a
    fraction of a millisecond, and a lone request should not wait out the whole window.
    """
    remaining = deadline - time.monotonic()
    return remaining if idle is None else min(remaining, idle)


_STOP = object()


class AuditWriter:
    """The group-commit writer thread.

    Args:
        engine: the service's engine.
        max_batch: most items per transaction.
        max_wait_ms: how long a forming batch waits for more items once one has arrived.
        max_idle_ms: a forming batch also closes once no item has arrived for this long
            (None: only the window closes it). See :func:`next_wait`.
        on_commit: called in the writer thread with the new tree size after each commit.
        checkpointer: signs the checkpoints that fall due as the log grows, right after each
            batch's commit (see :mod:`governance.audit.checkpoints`); None: no checkpoints
            here. Once it refuses the log, every batch is refused.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 512,
        max_wait_ms: float = 1.0,
        max_idle_ms: float | None = None,
        on_commit: Callable[[int], None] | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self._engine = engine
        self.checkpointer = checkpointer
        self._connection: Connection | None = None
        self._max_batch = max_batch
        self._max_wait = max_wait_ms / 1000.0
        self._max_idle = None if max_idle_ms is None else max_idle_ms / 1000.0
        self._on_commit = on_commit
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches = 0
        self.items = 0
        # The Merkle frontier after this writer's last committed batch: while nobody else
        # appends in between, the next batch need not read any node.
        self._frontier: audit_log.Frontier | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the writer thread takes appends."""
        return not self._closed and self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop accepting work, finish what is queued, and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._thread is None or not self._thread.is_alive():
            self._drop_connection()

    def submit(
        self, events: Sequence[AuditEvent], write: WriteFn | None = None
    ) -> Future[list[int]]:
        """Queue events (and an optional insert run in the same transaction).

        Returns:
            A future resolving to the events' sequence numbers once committed.
        """
        future: Future[list[int]] = Future()
        if self._closed or self._thread is None:
            future.set_exception(AuditUnavailable("the audit log is not accepting writes"))
            return future
        self._queue.put(_Item(events, write, future=future))
        return future

    async def append(self, events: Sequence[AuditEvent], write: WriteFn | None = None) -> list[int]:
        """Async form of :meth:`submit`: returns once the events are durable.

        The writer settles the waiters of a whole batch with one call into the event loop,
        not one wake-up per request.
        """
        if self._closed or self._thread is None:
            raise AuditUnavailable("the audit log is not accepting writes")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[int]] = loop.create_future()
        self._queue.put(_Item(events, write, loop=loop, waiter=waiter))
        return await waiter

    def append_sync(
        self, events: Sequence[AuditEvent], write: WriteFn | None = None, timeout: float = 30.0
    ) -> list[int]:
        """Blocking form of :meth:`submit` for threads (sync routes, the CLI)."""
        return self.submit(events, write).result(timeout=timeout)

    def _collect(self, first: _Item) -> tuple[list[_Item], bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self._max_wait
        while len(batch) < self._max_batch:
            try:
                wait = next_wait(deadline, self._max_idle)
                nxt = self._queue.get_nowait() if wait <= 0 else self._queue.get(timeout=wait)
            except queue.Empty:
                break
            if nxt is _STOP:
                stop = True
                break
            assert isinstance(nxt, _Item)
            batch.append(nxt)
        return batch, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            assert isinstance(first, _Item)
            batch, stop = self._collect(first)
            metrics.GROUP_COMMIT.observe(len(batch))
            outcomes, size = self.write([(item.events, item.write) for item in batch])
            self._resolve(list(zip(batch, outcomes, strict=True)))
            # After the answers: a checkpoint never delays the requests it follows.
            self._after_commit(size)
        # Anything queued after the stop marker is refused, never dropped silently.
        refused: list[tuple[_Item, Outcome]] = []
        while True:
            try:
                leftover = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(leftover, _Item):
                refused.append((leftover, AuditUnavailable("the audit log is shutting down")))
        self._resolve(refused)

    def write(self, batch: Sequence[Pending]) -> tuple[list[Outcome], int | None]:
        """Commit a batch now, in the calling thread, in transactions of at most ``max_batch``.

        If a transaction fails, each of its items is retried alone, so one bad item cannot
        sink the others. This is the group commit itself; the writer thread runs it, and so
        does the journal's writer process (:mod:`governance.audit.journal.sidecar`), which has no
        thread. ``on_commit`` is not called here: the caller calls it once it has answered.

        Returns:
            Per item, its sequence numbers or :class:`AuditUnavailable` (it failed alone);
            and the tree size after the last commit, or None if nothing was committed.
        """
        refused = self._refusal(len(batch))
        if refused is not None:
            return refused, None
        outcomes: list[Outcome] = []
        size = None
        for start in range(0, len(batch), self._max_batch):
            for mine, after in self._commit_or_retry(batch[start : start + self._max_batch]):
                outcomes.extend(mine)
                size = after if after is not None else size
        return outcomes, size

    def _commit_or_retry(self, batch: Sequence[Pending]) -> list[tuple[list[Outcome], int | None]]:
        try:
            return [self._commit(batch)]
        except Exception:
            logger.warning("audit group commit failed; retrying %d items alone", len(batch))
        done: list[tuple[list[Outcome], int | None]] = []
        down: AuditUnavailable | None = None
        for item in batch:
            if down is not None:
                done.append(([down], None))
                continue
            try:
                done.append(self._commit([item]))
            except (OperationalError, InterfaceError) as exc:
                # The database, not the item (down, timed out, full), even on a fresh
                # connection: the others are refused now, not after a connect timeout each.
                logger.error("audit write failed: %s", type(exc.orig or exc).__name__)
                down = AuditUnavailable("the database did not take the audit write")
                done.append(([down], None))
            except StaleWrite as exc:
                logger.info("audit write refused a stale item; its caller prepares it again")
                done.append(([exc], None))
            except Exception as exc:
                logger.error("audit write failed: %s", type(exc).__name__)
                done.append(([AuditUnavailable("the audit entry could not be written")], None))
        return done

    def _after_commit(self, size: int | None) -> None:
        if self._on_commit is None or size is None:
            return
        try:
            self._on_commit(size)
        except Exception as exc:
            # A missed checkpoint is retried at the next commit; entries are already durable.
            logger.warning("checkpoint after commit failed: %s", type(exc).__name__)

    def _resolve(self, outcomes: list[tuple[_Item, Outcome]]) -> None:
        resolve([(item.waiter_of(), outcome) for item, outcome in outcomes])

    def _held_connection(self) -> Connection:
        """The connection this writer commits on, kept from batch to batch.

        Checking one out of the pool per batch (and its rollback on return) cost about as much
        as the batch's BEGIN and COMMIT. A connection that failed is dropped, so the next
        batch starts on a fresh one.
        """
        connection = self._connection
        if connection is None or connection.closed or connection.invalidated:
            connection = self._connection = self._engine.connect()
        return connection

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def _sign(self, connection: Connection, frontier: audit_log.Frontier) -> None:
        """Sign the tree head just committed if a checkpoint is due, in a transaction of its
        own: the signer's memory may only ever hold heads of committed trees."""
        checkpointer = self.checkpointer
        # Most batches: not due, and no transaction (two more round trips on PostgreSQL).
        if checkpointer is None or not checkpointer.due(frontier.size):
            return
        try:
            nodes = merkle.getter_from_mapping(frontier.nodes)
            with connection.begin():
                signed = checkpointer.sign_after(
                    connection, frontier.size, lambda: merkle.root_at(frontier.size, nodes)
                )
        except AuditIntegrityError:
            return  # the checkpointer keeps the failure: the next batches are refused
        except Exception as exc:
            # The entries are durable; the checkpoint falls due again after the next commit.
            self._drop_connection()
            logger.warning("checkpoint after commit failed: %s", type(exc).__name__)
            return
        if signed:
            checkpointer.mark(frontier.size)

    def _refusal(self, count: int) -> list[Outcome] | None:
        """Every item refused, if the signer refuses the log (rewritten, truncated, forked)."""
        checkpointer = self.checkpointer
        if checkpointer is None:
            return None
        try:
            reason = checkpointer.refusal(self._held_connection())
        except Exception as exc:
            self._drop_connection()
            logger.warning("audit integrity check failed: %s", type(exc).__name__)
            return None  # the database's trouble, met by the batch itself
        finally:
            connection = self._connection
            if connection is not None and connection.in_transaction():
                connection.rollback()
        if reason is None:
            return None
        refused = AuditUnavailable(f"audit log integrity: {reason}")
        return [refused] * count

    def _commit(self, batch: Sequence[Pending]) -> tuple[list[Outcome], int | None]:
        frontier = self._frontier
        self._frontier = None  # valid again only once this batch commits
        connection = self._held_connection()
        try:
            with connection.begin():
                appended = audit_log.append_batch(
                    connection, [e for events, _ in batch for e in events], frontier=frontier
                )
                seqs = appended.seqs
                results: list[Outcome] = []
                tx = GroupCommit(connection)
                pos = 0
                for events, write in batch:
                    mine = seqs[pos : pos + len(events)]
                    pos += len(events)
                    if write is not None:
                        write(tx, mine)
                    results.append(mine)
                tx.run_hooks()
                size = seqs[-1] + 1 if seqs else None
        except BaseException:
            self._drop_connection()
            raise
        self._sign(connection, appended.frontier)
        self._frontier = appended.frontier
        self.batches += 1
        self.items += len(batch)
        return results, size
