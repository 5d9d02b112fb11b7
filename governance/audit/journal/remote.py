"""The journal in a writer process of its own (:mod:`governance.audit.journal.sidecar`).

The group commit is Python: in its own process it runs on another core instead of competing
for the server's GIL, and the event loop only pickles each append into a frame. Answers are
read on the server's running loop, because a reader thread would first have to win the GIL back
from it; without a running loop (tests, tools) a thread reads them.

If the writer process dies, every waiting request is refused (503, never answered unaudited),
appends are refused until a new writer process is up, and one is started again with a growing
pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from governance.audit.checkpoints import CheckpointPolicy
from governance.audit.journal import Evict, RowSink
from governance.audit.journal.wire import TIMED_OUT, FrameReader, frame
from governance.audit.writer import AuditUnavailable, Outcome, StaleWrite, Waiter, resolve
from governance.db.engine import ConnectionLimits
from governance.errors import ConfigurationError
from governance.kit import metrics
from governance.kit.events import AuditEvent

logger = logging.getLogger(__name__)

_SEND_BUFFER = 4 << 20
# A frame leaves at the end of the loop's turn, or as soon as it holds this many appends, so
# the group commit starts while a cohort of predictions is still being sealed.
_FLUSH_AT = 8


class ProcessJournal:
    """Appends through a writer process started (and restarted) by this object.

    Args:
        database_url: the database the writer process appends to.
        max_batch: most items per group commit.
        max_wait_ms: how long a forming batch waits for more items.
        max_idle_ms: a forming batch also closes once nothing has arrived for this long.
        on_commit: called with the tree size after each commit.
        checkpoint: the checkpoints the writer process signs as the log grows (None: none).
        evict: told of each data key found rotated or destroyed when its records were stored.
        sink: stores the records, in the writer process (None: appends with a record fail).
        start_timeout: seconds to wait for a new writer process to be ready.
        limits: the writer process's PostgreSQL timeouts and keepalives (None: the defaults).
    """

    def __init__(
        self,
        *,
        database_url: str,
        max_batch: int,
        max_wait_ms: float,
        max_idle_ms: float | None = None,
        on_commit: Callable[[int], None] | None,
        evict: Evict,
        checkpoint: CheckpointPolicy | None = None,
        limits: ConnectionLimits | None = None,
        sink: RowSink | None = None,
        start_timeout: float = 60.0,
        json_logs: bool = False,
    ) -> None:
        self._json_logs = json_logs  # the writer logs as the server does (governance/logs.py)
        self._config = {
            "sink": sink,
            "database_url": database_url,
            "max_batch": max_batch,
            "max_wait_ms": max_wait_ms,
            "max_idle_ms": max_idle_ms,
            "checkpoint": checkpoint,
            "limits": limits,
        }
        self._on_commit = on_commit
        self._evict = evict
        self._start_timeout = start_timeout
        self._ids = itertools.count()
        self._pending: dict[int, Waiter] = {}
        self._lock = threading.Lock()  # guards _pending, the socket's writes and _sock
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._receiver: threading.Thread | None = None
        # The event loop that reads the answers, when started on one; and what it is reading.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watched: tuple[FrameReader, socket.socket, subprocess.Popen[bytes]] | None = None
        self._outbox: list[tuple[int, Sequence[AuditEvent], object | None]] = []
        self._closed = False
        self.restarts = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("up" if self._sock is not None else "down")
        return f"ProcessJournal({state}, {len(self._pending)} waiting)"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer process and wait until it is ready.

        Called with an event loop running in this thread, the answers are read on that loop;
        otherwise a thread reads them.

        Raises:
            ConfigurationError: it did not come up (its own error went to stderr).
        """
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        if not self._spawn():
            raise ConfigurationError("the audit journal's writer process did not start")

    def _spawn(self) -> bool:
        parent, child = socket.socketpair()
        parent.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        try:
            proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
                [
                    sys.executable,
                    "-m",
                    "governance.audit.journal.sidecar",
                    str(child.fileno()),
                    *(["--json-logs"] if self._json_logs else []),
                ],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        reader = FrameReader(parent)
        try:
            parent.sendall(frame(("config", self._config)))
            ready = reader.next(self._start_timeout)
        except (OSError, EOFError):
            ready = None
        if ready != ("ready",):
            logger.error("audit journal: the writer process did not start")
            parent.close()
            proc.kill()
            proc.wait()
            return False
        if self._loop is not None:
            watched = (reader, parent, proc)
            if not self._on_loop(lambda: self._watch(watched)):
                logger.error("audit journal: the event loop that reads the answers is gone")
                parent.close()
                proc.kill()
                proc.wait()
                return False
        with self._lock:
            self._sock, self._proc = parent, proc
        if self._loop is None:
            self._receiver = threading.Thread(
                target=self._receive,
                args=(reader, parent, proc),
                name="journal-receive",
                daemon=True,
            )
            self._receiver.start()
        return True

    def close(self) -> None:
        """Send what is queued, let the writer process commit it all, and wait for it."""
        if self._closed:
            return
        self._flush()
        self._closed = True
        with self._lock:
            sock, proc = self._sock, self._proc
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.sendall(frame(("stop",)))
        if self._receiver is not None:
            self._receiver.join(timeout=60)
        watched = self._watched
        if watched is not None:
            reader, watched_sock, watched_proc = watched
            if self._on_loop(self._unwatch):
                # The loop no longer reads: the last answers are read here, until the goodbye.
                self._read_until_end(reader, time.monotonic() + 60)
            self._ended(watched_sock, watched_proc)  # whatever is still unanswered is refused
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if sock is not None:
            sock.close()

    # -- appends ---------------------------------------------------------------------------

    async def append(self, events: Sequence[AuditEvent], record: object | None = None) -> list[int]:
        if self._closed or self._sock is None:
            raise AuditUnavailable("the audit log is not accepting writes")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[int]] = loop.create_future()
        ident = next(self._ids)
        with self._lock:
            self._pending[ident] = (loop, waiter)
        outbox = self._outbox
        if not outbox:
            # What is appended during this turn of the loop leaves in as few frames as it can.
            loop.call_soon(self._flush)
        outbox.append((ident, events, record))
        if len(outbox) >= _FLUSH_AT:
            self._flush()
        return await waiter

    def append_sync(self, events: Sequence[AuditEvent], timeout: float = 30.0) -> list[int]:
        future: Future[list[int]] = Future()
        if self._closed or self._sock is None:
            raise AuditUnavailable("the audit log is not accepting writes")
        ident = next(self._ids)
        with self._lock:
            self._pending[ident] = future
        self._send([(ident, events, None)])
        return future.result(timeout=timeout)

    def problem(self) -> str | None:
        if self._closed:
            return "the audit log is not accepting writes"
        return None if self._sock is not None else _down().message

    def _flush(self) -> None:
        items, self._outbox = self._outbox, []
        if items:
            self._send(items)

    def _send(self, items: list[tuple[int, Sequence[AuditEvent], object | None]]) -> None:
        with self._lock:
            # An append already refused (its writer process died while it sat in the outbox)
            # is not sent: its request was answered 503, so it must not reach the log.
            live = [(i, list(events), row) for i, events, row in items if i in self._pending]
            sock = self._sock
            if not live:
                return
            try:
                if sock is None:
                    raise OSError("no writer process")
                sock.sendall(frame(("append", live)))
                return
            except OSError:
                failed = [self._pending.pop(i, None) for i, _, _ in live]
        resolve([(waiter, _down()) for waiter in failed if waiter is not None])

    # -- answers ---------------------------------------------------------------------------

    def _receive(
        self, reader: FrameReader, sock: socket.socket, proc: subprocess.Popen[bytes]
    ) -> None:
        # The reader thread, when the journal was started without an event loop.
        self._read_until_end(reader, None)
        self._ended(sock, proc)

    def _read_until_end(self, reader: FrameReader, deadline: float | None) -> None:
        """Settle answers until the goodbye, the end of the stream, or ``deadline``."""
        while True:
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                message = reader.next(timeout)
            except (EOFError, OSError, ValueError):
                return
            if message is TIMED_OUT or message is None or message[0] == "bye":
                return
            if message[0] == "done":
                self._answer(message[1], message[2])

    def _watch(self, watched: tuple[FrameReader, socket.socket, subprocess.Popen[bytes]]) -> None:
        assert self._loop is not None
        self._watched = watched
        self._loop.add_reader(watched[1].fileno(), self._readable)

    def _unwatch(self) -> None:
        watched, self._watched = self._watched, None
        if watched is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(watched[1].fileno())

    def _readable(self) -> None:
        """On the event loop: settle every answer that has arrived whole."""
        watched = self._watched
        if watched is None:
            return
        reader, sock, proc = watched
        while True:
            try:
                message = reader.next(0)
            except (EOFError, OSError, ValueError):
                message = None
            if message is TIMED_OUT:
                return
            if message is None or message[0] == "bye":
                self._unwatch()
                self._ended(sock, proc)
                return
            if message[0] == "done":
                self._answer(message[1], message[2])

    def _on_loop(self, fn: Callable[[], None]) -> bool:
        """Run ``fn`` on the answers' event loop and wait for it; False if that loop is gone.

        Readers are added and removed on the loop's own thread (neither asyncio nor uvloop
        allows it from another while the loop runs); a loop that is not running is touched here.
        """
        loop = self._loop
        assert loop is not None
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if loop.is_closed():
            return False
        if here is loop or not loop.is_running():
            fn()
            return True
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # closed meanwhile
            return False
        return done.wait(10)

    def _ended(self, sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        """The writer process's stream ended: refuse what waits, restart it unless closing."""
        with self._lock:
            if self._sock is sock:
                self._sock = None
            stranded = list(self._pending.values())
            self._pending.clear()
        resolve([(waiter, _down()) for waiter in stranded])
        if self._closed:
            return
        # Not asked to stop: the writer process died. Refuse (503) until a new one is up.
        logger.error("audit journal: the writer process exited (%s); restarting", proc.poll())
        sock.close()
        if self._loop is None:
            self._restart()  # in the reader thread, which has nothing else to do
        else:
            # Never on the event loop: a restart waits for the new process to be ready.
            threading.Thread(target=self._restart, name="journal-restart", daemon=True).start()

    def _answer(
        self,
        results: list[tuple[int, list[int] | str | tuple[str, str], list[tuple[str, str]]]],
        size: Any,
    ) -> None:
        outcomes: list[tuple[Waiter, Outcome]] = []
        metrics.GROUP_COMMIT.observe(len(results))  # the writer answers a batch at once
        with self._lock:
            for ident, outcome, evicted in results:
                for dek_id, subject_ref in evicted:
                    self._evict(dek_id, subject_ref)
                waiter = self._pending.pop(ident, None)
                if waiter is None:
                    continue
                if isinstance(outcome, str):
                    outcomes.append((waiter, AuditUnavailable(outcome)))
                elif isinstance(outcome, tuple):
                    outcomes.append((waiter, StaleWrite(outcome[1])))
                else:
                    outcomes.append((waiter, outcome))
        resolve(outcomes)
        if size is not None and self._on_commit is not None:
            try:
                self._on_commit(size)
            except Exception as exc:
                logger.warning("after-commit hook failed: %s", type(exc).__name__)

    def _restart(self) -> None:
        pause = 0.5
        while not self._closed:
            time.sleep(pause)
            if self._closed:
                return
            if self._spawn():
                self.restarts += 1
                logger.warning("audit journal: writer process restarted")
                return
            pause = min(pause * 2, 10.0)


def _down() -> AuditUnavailable:
    return AuditUnavailable("the audit log's writer process is not running")
