"""The journal's writer process: ``python -m governance.audit.journal.sidecar FD``.

Started by :class:`~governance.audit.journal.remote.ProcessJournal` with one end of a socketpair, it
runs the same group commit a server would run in a thread
(:meth:`~governance.audit.writer.AuditWriter.write`) and answers each append once committed.
One thread reads, batches, commits and answers; appends arriving meanwhile queue in the socket,
whose full buffer makes the server wait (backpressure).

Messages in: ``("config", {...})`` first (the database URL travels here, never in argv), then
``("append", [(id, events, row), ...])`` and finally ``("stop",)``. Messages out: ``("ready",)``,
then ``("done", [(id, seqs or error text or ("stale", text), evicted keys), ...], committed
tree size)``, and ``("bye",)`` once stopped.

When the server goes away (even kill -9) the process still commits what it received, then
exits, so an answered request's entry is never lost. Interrupts are ignored: the server decides
when its journal stops.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time
from typing import Any

from governance.audit.checkpoints import Checkpointer, CheckpointPolicy
from governance.audit.journal import RowSink
from governance.audit.journal.wire import TIMED_OUT, FrameReader, send_frame
from governance.audit.writer import (
    AuditUnavailable,
    AuditWriter,
    GroupCommit,
    Outcome,
    Pending,
    StaleWrite,
    WriteFn,
    next_wait,
)
from governance.db import make_engine
from governance.logs import configure_logging

logger = logging.getLogger("governance.audit.journal.sidecar")

# An outcome: the seqs, an error's text, or ("stale", text) for a StaleWrite (prepare again).
Answer = list[int] | str | tuple[str, str]
Result = tuple[int, Answer, list[tuple[str, str]]]


def _text(outcome: Outcome) -> Answer:
    if isinstance(outcome, StaleWrite):
        return ("stale", outcome.message)
    if isinstance(outcome, BaseException):
        # The writer fails an item with AuditUnavailable and a fixed message; nothing else
        # crosses over.
        return getattr(outcome, "message", None) or "the audit entry could not be written"
    return outcome


def _refuse(tx: GroupCommit, seqs: list[int]) -> None:
    # A record reached a writer given nothing to store it with: its append fails (fail closed).
    raise AuditUnavailable("this journal stores no records")


class _Batch:
    """The appends of one group commit, and the keys their records found stale."""

    def __init__(self, sink: RowSink | None) -> None:
        self._sink = sink
        self.idents: list[int] = []
        self.pending: list[Pending] = []
        self.evicted: list[list[tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self.idents)

    def add(self, ident: int, events: list[Any], row: object | None) -> None:
        evicted: list[tuple[str, str]] = []

        def evict(dek_id: str, subject_ref: str) -> None:
            evicted.append((dek_id, subject_ref))

        self.idents.append(ident)
        write: WriteFn | None = None
        if row is not None:
            write = _refuse if self._sink is None else self._sink.write_fn(row, evict)
        self.pending.append((events, write))
        self.evicted.append(evicted)

    def commit(self, writer: AuditWriter) -> tuple[list[Result], int | None]:
        # One frame can carry more than max_batch appends: the writer splits the transaction.
        outcomes, size = writer.write(self.pending)
        results = [
            (ident, _text(outcome), evicted)
            for ident, outcome, evicted in zip(self.idents, outcomes, self.evicted, strict=True)
        ]
        return results, size


def serve(sock: socket.socket) -> None:
    reader = FrameReader(sock)
    first = reader.next(None)
    if first is None or first[0] != "config":
        raise SystemExit("journal: expected a config frame")
    config: dict[str, Any] = first[1]
    policy: CheckpointPolicy | None = config.get("checkpoint")
    # The signing key is read from its file here, with the same checks as the server's.
    checkpointer = None if policy is None else Checkpointer.from_policy(policy)
    engine = make_engine(config["database_url"], limits=config.get("limits"))
    max_batch: int = config["max_batch"]
    writer = AuditWriter(engine, max_batch=max_batch, checkpointer=checkpointer)
    sink: RowSink | None = config.get("sink")
    window: float = config["max_wait_ms"] / 1000.0
    idle: float | None = config["max_idle_ms"]
    idle = None if idle is None else idle / 1000.0
    send_frame(sock, ("ready",))
    answering = True
    stopping = False
    try:
        while not stopping:
            message = _read(reader)
            if message is None or message[0] == "stop":
                break
            batch = _Batch(sink)
            for item in message[1]:
                batch.add(*item)
            # Whatever arrives within the window (and before a quiet spell) joins this batch.
            deadline = time.monotonic() + window
            while len(batch) < max_batch:
                message = _read(reader, max(next_wait(deadline, idle), 0.0))
                if message is TIMED_OUT:
                    break
                if message is None or message[0] == "stop":
                    stopping = True
                    break
                for item in message[1]:
                    batch.add(*item)
            results, size = batch.commit(writer)
            if answering:
                try:
                    send_frame(sock, ("done", results, size))
                except OSError:
                    answering = False  # the server is gone; the entries are committed all the same
        if answering:
            send_frame(sock, ("bye",))
    except OSError:
        pass  # the server went away while we said goodbye
    finally:
        writer.close()
        engine.dispose()


def _read(reader: FrameReader, timeout: float | None = None) -> Any:
    try:
        return reader.next(timeout)
    except (EOFError, OSError):
        return None  # the server is gone: commit what arrived whole, then stop


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(
        logging.WARNING,
        "%(asctime)s journal %(levelname)s %(message)s",
        json_lines="--json-logs" in argv[2:],
    )
    sock = socket.socket(fileno=int(argv[1]))
    try:
        serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main(sys.argv)
