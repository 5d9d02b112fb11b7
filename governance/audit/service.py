"""Browsing the log: filtered pages of entries, one entry with its inclusion proof, and
consistency proofs between signed checkpoints. Reads only; proofs come from stored nodes in
O(log n) reads whatever the log's size."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from governance.audit import merkle, repository
from governance.audit.errors import AuditNotFound, InvalidProofRequest
from governance.audit.models import AuditCheckpoint, AuditEntry
from governance.audit.repository import EntryFilter

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class EntryPage:
    """One page of entries; ``next_after`` is the cursor of the next page (None at the end):
    its ``after``, or its ``before`` for a page newest first."""

    entries: list[AuditEntry]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class EntryProof:
    """An entry with its inclusion proof against ``checkpoint`` (None while no checkpoint
    covers it yet)."""

    entry: AuditEntry
    checkpoint: AuditCheckpoint | None
    proof: list[bytes] | None


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The proof that the tree at ``newer`` extends the tree at ``older``."""

    older: AuditCheckpoint
    newer: AuditCheckpoint
    proof: list[bytes]


class AuditService:
    """Read-side queries of the audit log (writes go through ``governance.audit.log``)."""

    def list_entries(
        self,
        session: Session,
        flt: EntryFilter,
        *,
        after: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
        before: int | None = None,
    ) -> EntryPage:
        """A page of entries matching ``flt``, with keyset pagination on seq.

        Args:
            session: the request's session.
            flt: the filter.
            after: oldest first, return entries with ``seq > after`` (the previous page's
                ``next_after``).
            limit: page size, 1..``MAX_PAGE``.
            newest_first: newest first instead, entries with ``seq < before`` (the previous
                page's ``next_after``).

        Returns:
            The page.

        Raises:
            InvalidProofRequest: a page size out of range.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidProofRequest(f"limit must be between 1 and {MAX_PAGE}")
        # One row more than asked tells whether another page exists without a COUNT.
        query = repository.filtered_entries(
            flt, after=after, limit=limit + 1, newest_first=newest_first, before=before
        )
        rows = list(session.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        return EntryPage(rows, rows[-1].seq if more else None)

    def entry(self, session: Session, seq: int) -> EntryProof:
        """One entry with its inclusion proof against the latest checkpoint.

        Raises:
            AuditNotFound: no entry ``seq``.
        """
        row = repository.get_entry(session, seq)
        if row is None:
            raise AuditNotFound(f"no audit entry {seq}")
        head = repository.latest_checkpoint(session)
        if head is None or head.tree_size <= seq:
            return EntryProof(row, None, None)
        get = repository.node_getter(session, merkle.inclusion_proof_keys(seq, head.tree_size))
        return EntryProof(row, head, merkle.inclusion_proof(seq, head.tree_size, get))

    def latest_checkpoint(self, session: Session) -> AuditCheckpoint:
        """The most recent signed checkpoint.

        Raises:
            AuditNotFound: nothing was signed yet.
        """
        row = repository.latest_checkpoint(session)
        if row is None:
            raise AuditNotFound("no checkpoint has been signed yet")
        return row

    def checkpoints(
        self, session: Session, *, after: int | None = None, limit: int = 100
    ) -> list[AuditCheckpoint]:
        """Checkpoints with ``tree_size > after``, smallest first.

        Raises:
            InvalidProofRequest: a page size out of range.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidProofRequest(f"limit must be between 1 and {MAX_PAGE}")
        return repository.list_checkpoints(session, after=after, limit=limit)

    def consistency(
        self, session: Session, *, first: int, second: int | None = None
    ) -> ConsistencyProof:
        """The RFC 9162 consistency proof between two signed checkpoints.

        Args:
            session: the request's session.
            first: the older checkpoint's tree size.
            second: the newer checkpoint's tree size (default: the latest).

        Returns:
            Both checkpoints and the proof.

        Raises:
            AuditNotFound: no checkpoint at one of the sizes.
            InvalidProofRequest: ``first > second``.
        """
        older = repository.get_checkpoint(session, first)
        if older is None:
            raise AuditNotFound(f"no checkpoint at tree size {first}")
        newer = (
            repository.latest_checkpoint(session)
            if second is None
            else repository.get_checkpoint(session, second)
        )
        if newer is None:
            raise AuditNotFound(f"no checkpoint at tree size {second}")
        keys = merkle.consistency_proof_keys(older.tree_size, newer.tree_size)
        get = repository.node_getter(session, keys)
        return ConsistencyProof(
            older, newer, merkle.consistency_proof(older.tree_size, newer.tree_size, get)
        )


audit = AuditService()
