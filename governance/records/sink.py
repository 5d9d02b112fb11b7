"""Storing sealed records inside the audit log's group commit: the database side, as data.

A :class:`RecordRow` is a sealed record ready to insert (ciphertext and metadata, never a key
or a plaintext) plus the data key it was sealed under. It is plain data, so it can be handed to
the audit writer in this process or in the journal's writer process alike.

:meth:`RecordSink.write_fn` turns a row into the audit writer's per-item ``write`` callback.
The rows of one group commit are stored together just before it commits: one key-state check
and one multi-row insert per batch, not per request (seals are counted when the sealing
process reserves them, :meth:`~governance.vault.keys.DataKeyService.reserve_uses`). The
states of the batch's keys are read and locked in the same transaction as the inserts, so an
erasure in any process is seen: a record sealed under a destroyed key is never stored (the
batch fails, the writer retries each item alone, and only those items fail with
:class:`StaleWrite`, which the predict path answers by sealing the record again under the
subject's fresh key). A key rotated elsewhere still stores the records sealed just before
(rotation never fails a request). Either way the key is reported through ``evict`` so that the
sealing process stops using it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert

from governance.audit.journal import Evict
from governance.audit.writer import GroupCommit, StaleWrite, WriteFn
from governance.db.base import utcnow
from governance.db.direct import DirectStatement
from governance.records.models import Record
from governance.vault.keys import data_keys
from governance.vault.models import ACTIVE, DECRYPT_ONLY

__all__ = ["PreparedRecord", "RecordRow", "RecordSink"]

_PENDING = "warden.records.pending"
_RECORDS = cast(Table, Record.__table__)
_INSERT_RECORDS = DirectStatement(insert(_RECORDS))


@dataclass(frozen=True)
class RecordRow:
    """A sealed record to insert, without its audit sequence number and creation time (both
    are known at commit)."""

    values: dict[str, Any]
    dek_id: str
    subject_ref: str

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled into a journal frame for every prediction: positional fields, not copyreg's.
        return (RecordRow, (self.values, self.dek_id, self.subject_ref))

    def __repr__(self) -> str:
        return f"RecordRow(id={self.values.get('id')!r}, dek_id={self.dek_id!r})"


@dataclass(frozen=True)
class PreparedRecord:
    """What the predict path's recorder hands back: the record's id, its data key and its row
    (all None when nothing is stored)."""

    record_id: str | None
    data_key_id: str | None
    row: RecordRow | None


class RecordSink:
    """Stores :class:`RecordRow` items in the audit writer's transaction. Holds no keys."""

    def write_fn(self, row: RecordRow, evict: Evict) -> WriteFn:
        """The audit writer's ``write`` callback for one record."""

        def write(tx: GroupCommit, seqs: list[int]) -> None:
            pending = tx.state.get(_PENDING)
            if pending is None:
                pending = tx.state[_PENDING] = []
                tx.before_commit(self._store_pending)
            pending.append(({**row.values, "audit_seq": seqs[0] if seqs else None}, row, evict))

        return write

    def _store_pending(self, tx: GroupCommit) -> None:
        pending: list[tuple[dict[str, Any], RecordRow, Evict]] = tx.state.pop(_PENDING, [])
        if not pending:
            return
        connection = tx.connection
        states = data_keys.lock_states(connection, [row.dek_id for _, row, _ in pending])
        refused = False
        for _, row, evict in pending:
            state = states.get(row.dek_id)
            if state == ACTIVE:
                continue
            # Rotated elsewhere (still stored: rotation never fails a request) or destroyed:
            # either way the sealing process must stop using it.
            evict(row.dek_id, row.subject_ref)
            refused = refused or state != DECRYPT_ONLY
        if refused:
            # The whole group commit rolls back; the audit writer then retries each request
            # alone, so only the ones sealed under a destroyed key fail, as stale: their
            # callers seal them again under a fresh key (governance/predict/service.py).
            raise StaleWrite(
                "a record's data key was destroyed by an erasure before the record was "
                "stored; the record was refused"
            )
        # A record is created when it becomes durable: the batch's commit, as its audit entry.
        # Stamped here rather than when sealed, so no datetime crosses the journal's socket
        # (pickling one costs as much as the rest of the record's fields together).
        created_at = utcnow()
        for values, _, _ in pending:
            values["created_at"] = created_at
        # One executemany on the DBAPI cursor (governance/db/direct.py), in the group commit's
        # transaction.
        _INSERT_RECORDS.executemany(connection, [values for values, _, _ in pending])
