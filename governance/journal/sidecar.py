"""The journal's writer process: ``python -m governance.journal.sidecar FD``.

Started by :class:`~governance.journal.remote.ProcessJournal` with one end of a socketpair.
It runs the same group-commit :class:`~governance.audit.writer.AuditWriter` a server would run
in a thread, with the records stored through :class:`~governance.records.sink.RecordSink`, and
answers each append once its transaction committed.

Messages in: ``("config", {...})`` first (the database URL travels here, never in argv), then
``("append", [(id, events, row), ...])`` and finally ``("stop",)``. Messages out: ``("ready",)``,
then ``("done", [(id, seqs or error text, evicted keys), ...], committed tree size)``, and
``("bye",)`` once stopped.

When the server goes away (end of stream, even after kill -9) the process still commits what
it had received, then exits: an entry is never lost for a request that was answered, and an
entry for a request that was not answered is harmless. Interrupts are ignored: the server
decides when its journal stops.
"""

from __future__ import annotations

import logging
import queue
import signal
import socket
import sys
import threading
from concurrent.futures import Future
from typing import Any

from governance.audit.writer import AuditWriter
from governance.db import make_engine, make_sessionmaker
from governance.journal.wire import read_frame, send_frame
from governance.records.sink import RecordRow, RecordSink

logger = logging.getLogger("governance.journal.sidecar")

_STOP = object()
Result = tuple[int, list[int] | str, list[tuple[str, str]]]


def _outcome(future: Future[list[int]]) -> list[int] | str:
    error = future.exception()
    if error is None:
        return future.result()
    # The writer raises AuditUnavailable with a fixed message; nothing else crosses over.
    return getattr(error, "message", None) or "the audit entry could not be written"


def _send_loop(sock: socket.socket, out: queue.Queue[Any]) -> None:
    """Send results as they settle: everything waiting goes in one frame."""
    while True:
        items = [out.get()]
        while True:
            try:
                items.append(out.get_nowait())
            except queue.Empty:
                break
        results: list[Result] = []
        size: int | None = None
        stop = False
        for item in items:
            if item is _STOP:
                stop = True
            elif item[0] == "size":
                size = item[1]
            else:
                results.append(item[1])
        try:
            if results or size is not None:
                send_frame(sock, ("done", results, size))
            if stop:
                send_frame(sock, ("bye",))
        except OSError:
            pass  # the server is gone; the entries are committed all the same
        if stop:
            return


def serve(sock: socket.socket) -> None:
    stream = sock.makefile("rb")
    first = read_frame(stream)
    if first is None or first[0] != "config":
        raise SystemExit("journal: expected a config frame")
    config: dict[str, Any] = first[1]
    engine = make_engine(config["database_url"])
    out: queue.Queue[Any] = queue.Queue()
    writer = AuditWriter(
        make_sessionmaker(engine),
        max_batch=config["max_batch"],
        max_wait_ms=config["max_wait_ms"],
        on_commit=lambda size: out.put(("size", size)),
    )
    sink = RecordSink()
    writer.start()
    sender = threading.Thread(target=_send_loop, args=(sock, out), name="journal-send")
    sender.start()
    send_frame(sock, ("ready",))
    try:
        while True:
            try:
                message = read_frame(stream)
            except (EOFError, OSError):
                message = None
            if message is None or message[0] == "stop":
                break
            for ident, events, row in message[1]:
                _submit(writer, sink, out, ident, events, row)
    finally:
        writer.close()  # commits everything received, settles every item
        out.put(_STOP)
        sender.join(timeout=30)
        engine.dispose()


def _submit(
    writer: AuditWriter,
    sink: RecordSink,
    out: queue.Queue[Any],
    ident: int,
    events: list[Any],
    row: RecordRow | None,
) -> None:
    evicted: list[tuple[str, str]] = []

    def evict(dek_id: str, subject_ref: str) -> None:
        evicted.append((dek_id, subject_ref))

    write = None if row is None else sink.write_fn(row, evict)
    future = writer.submit(events, write)
    future.add_done_callback(lambda f: out.put(("result", (ident, _outcome(f), evicted))))


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s journal %(levelname)s %(message)s"
    )
    sock = socket.socket(fileno=int(argv[1]))
    try:
        serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main(sys.argv)
