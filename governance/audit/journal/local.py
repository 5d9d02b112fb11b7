"""The journal in a thread of this process."""

from __future__ import annotations

from collections.abc import Sequence

from governance.audit.checkpoints import Checkpointer, CheckpointPolicy
from governance.audit.journal import Evict, RowSink
from governance.audit.writer import AuditUnavailable, AuditWriter
from governance.kit.events import AuditEvent


class LocalJournal:
    """The group-commit thread of this process, storing records through its sink.

    Args:
        writer: the audit writer (not started yet).
        evict: told of each data key found rotated or destroyed when its records were stored.
        checkpoint: the checkpoints the writer signs as the log grows (None: none).
        sink: stores the records; without one an append with a record is refused.
    """

    def __init__(
        self,
        writer: AuditWriter,
        evict: Evict,
        checkpoint: CheckpointPolicy | None = None,
        sink: RowSink | None = None,
    ) -> None:
        self.writer = writer
        self._evict = evict
        self._sink = sink
        self._checkpoint = checkpoint

    def __repr__(self) -> str:
        return f"LocalJournal({self.writer.batches} batches, {self.writer.items} items)"

    def start(self) -> None:
        if self._checkpoint is not None:
            self.writer.checkpointer = Checkpointer.from_policy(self._checkpoint)
        self.writer.start()

    def close(self) -> None:
        self.writer.close()

    async def append(self, events: Sequence[AuditEvent], record: object | None = None) -> list[int]:
        write = None
        if record is not None:
            if self._sink is None:
                raise AuditUnavailable("this journal stores no records")
            write = self._sink.write_fn(record, self._evict)
        return await self.writer.append(events, write)

    def append_sync(self, events: Sequence[AuditEvent], timeout: float = 30.0) -> list[int]:
        return self.writer.append_sync(events, timeout=timeout)

    def problem(self) -> str | None:
        return None if self.writer.running else "the audit writer thread is not running"
