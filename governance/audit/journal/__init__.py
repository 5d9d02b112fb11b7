"""The journal: where a server process makes its audit entries and sealed records durable.

Every governed call appends its audit entry (and, for predictions, its sealed record) through
the runtime's journal and waits until both are committed. The group commit itself is
:class:`~governance.audit.writer.AuditWriter`; the journal decides where it runs:

- :class:`~governance.audit.journal.local.LocalJournal`: a thread of this process;
- :class:`~governance.audit.journal.remote.ProcessJournal`: a writer process of its own
  (:mod:`governance.audit.journal.sidecar`), fed over a socket. The server's event loop then shares
  its GIL with nothing but inference, and the database work runs on another core.

Either way an entry is durable before the request it records is answered, a failed write is a
refusal (503), and records sealed under a destroyed key are never stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from governance.audit.writer import WriteFn
from governance.kit.events import AuditEvent

__all__ = ["Evict", "Journal", "RowSink"]

# Called with (dek_id, subject_ref) when a key must no longer seal records.
Evict = Callable[[str, str], None]


class RowSink(Protocol):
    """Stores the rows that ride in their audit entries' group commit (the sealed records).

    Handed in by the wiring point, so the log stores records without knowing what they are.
    Picklable: a writer process receives it with its configuration.
    """

    def write_fn(self, row: Any, evict: Evict) -> WriteFn:
        """The audit writer's ``write`` callback for one row."""
        ...


class Journal(Protocol):
    def start(self) -> None:
        """Start accepting appends."""
        ...

    def close(self) -> None:
        """Finish what is queued, then refuse further appends."""
        ...

    async def append(self, events: Sequence[AuditEvent], record: object | None = None) -> list[int]:
        """Append events (and a record, in the same transaction); return their seqs once durable.

        Raises:
            AuditUnavailable: the write failed or the journal is closed (answer 503).
        """
        ...

    def append_sync(self, events: Sequence[AuditEvent], timeout: float = 30.0) -> list[int]:
        """Blocking :meth:`append` of events alone, for threads."""
        ...

    def problem(self) -> str | None:
        """Why the writer cannot take appends now (not running), or None."""
        ...
