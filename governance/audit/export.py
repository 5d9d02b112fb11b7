"""Exporting a range of the live log as an offline-verifiable bundle (docs/audit-bundle.md).

The bundle holds the entries with the exact canonical bytes that were hashed, each with its
inclusion proof against the newest checkpoint, the earliest checkpoint that covers the whole
range (evidence that the entries were signed soon after they were written), the newest
checkpoint, the consistency proof between them, the public key and a README.

Exports chain: each ``audit.export`` entry names the checkpoint its bundle ended at, and the
next bundle includes that checkpoint too, with the consistency proof from it to its own newest,
so whoever kept the previous bundle checks the new one with ``--trusted`` against it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import merkle, repository
from governance.audit.bundle import write_bundle
from governance.audit.canonical import parse_canonical
from governance.audit.checkpoints import fetch_nodes
from governance.audit.errors import (
    AuditIntegrityError,
    AuditNotFound,
    CanonicalizationError,
    InvalidProofRequest,
    NotYetCheckpointed,
)
from governance.audit.log import tree_size
from governance.audit.models import AuditCheckpoint, AuditEntry
from governance.audit.note import parse_vkey, verify_note

__all__ = [
    "EXPORT_EVENT",
    "consistency_between",
    "export_bundle",
    "previous_checkpoint",
    "previous_export_checkpoint",
    "seq_range",
]

# The event that records an export; its details name the checkpoint the bundle ended at.
EXPORT_EVENT = "audit.export"


def previous_checkpoint(session: Session, event_type: str = EXPORT_EVENT) -> AuditCheckpoint | None:
    """The checkpoint the latest ``event_type`` entry (an export, a report) says it ended at.

    Returns:
        The stored checkpoint; None when no such entry names one.

    Raises:
        AuditIntegrityError: the entry names a checkpoint the database lost.
    """
    canonical = session.scalar(
        select(AuditEntry.canonical)
        .where(AuditEntry.event_type == event_type)
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    )
    if canonical is None:
        return None
    try:
        details = parse_canonical(canonical.encode("utf-8")).get("details") or {}
    except (CanonicalizationError, AttributeError):
        return None
    size = details.get("checkpoint") if isinstance(details, dict) else None
    if type(size) is not int:
        return None
    row = repository.get_checkpoint(session, size)
    if row is None:
        raise AuditIntegrityError(
            f"the checkpoint at tree size {size}, where the previous {event_type} ended, is "
            "missing from the database"
        )
    return row


def previous_export_checkpoint(session: Session) -> str | None:
    """The signed note of the checkpoint the latest export ended at (None: none named).

    Raises:
        AuditIntegrityError: the export's entry names a checkpoint the database lost.
    """
    row = previous_checkpoint(session)
    return None if row is None else row.note


def consistency_between(session: Session, size1: int, size2: int) -> list[bytes]:
    """The RFC 9162 consistency proof from tree size ``size1`` to ``size2``, from stored nodes.

    Raises:
        InvalidProofRequest: ``size1 > size2``.
        MissingNodeError: the node store lacks a node the proof needs.
    """
    nodes = fetch_nodes(session, merkle.consistency_proof_keys(size1, size2))
    return merkle.consistency_proof(size1, size2, merkle.getter_from_mapping(nodes))


class _PrefetchedNodes:
    """A node getter that reads the nodes one chunk of entries needs in a single query per
    level, so an export costs O(entries / chunk * log n) queries instead of one per node."""

    def __init__(self, session: Session, tree: int, extra: list[merkle.NodeKey]) -> None:
        self._session = session
        self._tree = tree
        self._nodes = fetch_nodes(session, list(dict.fromkeys(extra)))
        self._fixed = dict(self._nodes)

    def prefetch(self, seqs: list[int]) -> None:
        keys: list[merkle.NodeKey] = []
        for seq in seqs:
            keys.extend(merkle.inclusion_proof_keys(seq, self._tree))
        self._nodes = dict(self._fixed)
        missing = [k for k in dict.fromkeys(keys) if k not in self._nodes]
        self._nodes.update(fetch_nodes(self._session, missing))

    def get(self, level: int, index: int) -> bytes:
        node = self._nodes.get((level, index))
        if node is None:
            node = fetch_nodes(self._session, [(level, index)]).get((level, index))
            if node is None:
                return merkle.getter_from_mapping({})(level, index)  # raises MissingNodeError
        return node


def _entries(
    session: Session, store: _PrefetchedNodes, from_seq: int, to_seq: int, chunk: int
) -> Iterator[tuple[int, bytes]]:
    start = from_seq
    while start <= to_seq:
        end = min(to_seq, start + chunk - 1)
        batch = list(repository.stream_canonical(session, start, end, chunk=chunk))
        # write_bundle builds each entry's proof right after taking it from this iterator.
        store.prefetch([seq for seq, _ in batch])
        yield from batch
        if len(batch) < end - start + 1:
            return
        start = end + 1


def seq_range(
    session: Session,
    *,
    from_seq: int | None = None,
    to_seq: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[int, int]:
    """Resolve an export range given as seqs or times (inclusive at both ends).

    Args:
        session: the session.
        from_seq: the first seq; or ``since``: the first entry at or after that time.
        to_seq: the last seq; or ``until``: the last entry at or before that time. Neither:
            the last entry covered by the newest checkpoint.

    Returns:
        ``(from_seq, to_seq)``.

    Raises:
        InvalidProofRequest: both a seq and a time for one end, or an empty range.
        AuditNotFound: no entry in the time range.
    """
    if (from_seq is not None and since is not None) or (to_seq is not None and until is not None):
        raise InvalidProofRequest("give each end of the range as a seq or a time, not both")
    if since is not None:
        from_seq = repository.seq_at_or_after(session, since)
        if from_seq is None:
            raise AuditNotFound("no audit entry at or after the start time")
    if until is not None:
        to_seq = repository.seq_at_or_before(session, until)
        if to_seq is None:
            raise AuditNotFound("no audit entry at or before the end time")
    if to_seq is None:
        latest = repository.latest_checkpoint(session)
        if latest is None:
            raise NotYetCheckpointed("no checkpoint has been signed yet")
        to_seq = latest.tree_size - 1
    first = 0 if from_seq is None else from_seq
    if first < 0 or to_seq < first:
        raise InvalidProofRequest("the export range is empty")
    return first, to_seq


def export_bundle(
    session: Session,
    *,
    from_seq: int,
    to_seq: int,
    out_dir: str | os.PathLike[str],
    vkey: str,
    previous: str | None = None,
    chunk: int = 1000,
) -> Path:
    """Write the bundle of entries ``from_seq..to_seq`` (inclusive) to ``out_dir``.

    Args:
        session: a session on the log's database (a read transaction).
        from_seq: the first entry.
        to_seq: the last entry; a checkpoint must already cover it.
        out_dir: the bundle directory to create; it must not exist.
        vkey: the log's verifier key (its name is the log's origin).
        previous: a signed checkpoint the bundle must prove its newest extends (the previous
            export's); it is included with the consistency proof from it.
        chunk: entries read (and proof nodes fetched) per batch.

    Returns:
        The bundle directory.

    Raises:
        InvalidProofRequest: an empty or negative range.
        AuditNotFound: ``to_seq`` beyond the log.
        NotYetCheckpointed: no checkpoint covers ``to_seq`` yet (sign one first).
        AuditError: the stored tree does not reproduce a signed root, or ``out_dir`` exists.
        AuditIntegrityError: ``previous`` lies beyond the newest checkpoint, or has another
            root than the stored checkpoint of its size.
        AuditVerificationError: ``previous`` is not signed by ``vkey``.
    """
    if from_seq < 0 or to_seq < from_seq:
        raise InvalidProofRequest("the export range is empty")
    if to_seq >= tree_size(session):
        raise AuditNotFound(f"no audit entry {to_seq}")
    covering = repository.first_checkpoint_covering(session, to_seq)
    latest = repository.latest_checkpoint(session)
    if covering is None or latest is None:
        raise NotYetCheckpointed(
            f"entry {to_seq} is not covered by a signed checkpoint yet; sign one first"
        )
    heads = {covering.tree_size: covering.note, latest.tree_size: latest.note}
    if previous is not None:
        seen = verify_note(previous, vkey, origin=parse_vkey(vkey).name)
        if seen.size > latest.tree_size:
            raise AuditIntegrityError(
                f"rollback: the previous export ended at tree size {seen.size}, beyond the "
                f"newest checkpoint ({latest.tree_size})"
            )
        stored = repository.get_checkpoint(session, seen.size)
        if stored is not None and stored.root_hash != seen.root:
            raise AuditIntegrityError(
                f"the stored checkpoint at tree size {seen.size} has another root than the "
                "previous export's"
            )
        # write_bundle proves it against the stored tree (its root must be reproduced).
        heads.setdefault(seen.size, previous)
    sizes = sorted(heads)
    keys = [
        *(k for a, b in itertools.pairwise(sizes) for k in merkle.consistency_proof_keys(a, b)),
        *(key for size in sizes for key in merkle.root_keys(size)),
    ]  # fmt: skip
    store = _PrefetchedNodes(session, latest.tree_size, keys)
    return write_bundle(
        out_dir,
        origin=parse_vkey(vkey).name,
        vkey=vkey,
        entries=_entries(session, store, from_seq, to_seq, chunk),
        checkpoints=list(heads.values()),
        get=store.get,
    )
