"""The seam between the predict path and encrypted record storage (``governance.records``).

The predict path asks a :class:`Recorder` to prepare a record before the audit append. The
recorder encrypts the payloads (CPU only, no I/O on a warm key cache) and returns the sealed
row, which the journal stores inside the same group-commit transaction as the audit entry:
both are durable together, or neither is.
"""

from __future__ import annotations

from typing import Protocol

from governance.kit.context import Context
from governance.records.sink import PreparedRecord

__all__ = ["PreparedRecord", "Recorder"]


class Recorder(Protocol):
    async def prepare(
        self,
        *,
        ctx: Context,
        principal: str,
        model: str,
        model_version: str,
        subject_id: str | None,
        request_id: str,
        request_json: bytes,
        response_json: bytes,
        row_count: int,
    ) -> PreparedRecord:
        """Encrypt a request/response pair and return how to store it.

        The documents arrive as canonical JSON bytes: the predict path encodes each once and
        uses the same bytes for the audit entry's digests.
        """
        ...
