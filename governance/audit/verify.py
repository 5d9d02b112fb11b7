"""Verifying the live log: every entry, every stored node and every signed checkpoint.

One pass in seq order, O(n) time and O(log n + chunk) memory:

- each entry's canonical bytes are parsed, its ``seq`` field and its indexed columns (time,
  event type, action, actor, resource, decision, outcome, request id) are compared with the
  document, and its leaf hash is recomputed and compared with the stored one;
- the tree is rebuilt from those recomputed leaves with a stack of perfect subtrees (the compact
  range), and every node it completes is compared with the stored node;
- when the rebuilt tree reaches a checkpoint's size, the checkpoint's signature is verified
  and its signed root compared with the rebuilt root and with the stored root column;
- sequence numbers must run 0..head-1 without a gap, and no node may lie outside the tree.

The first problem in seq order is raised, naming the seq (or the checkpoint) where the log
stops verifying. Someone who rewrites history consistently (entry, leaf, nodes and root column
all recomputed) still cannot forge a checkpoint signature: the first checkpoint covering the
rewrite fails, and the range between the last good checkpoint and it holds the rewrite.

The database's administrator can also delete the checkpoints that cover a rewrite, or cut
entries off the end. An anchor catches both: a checkpoint known from outside the database (one
an auditor saw before, or the signer's memory). The log must be at least that long, its
entries must hash to the anchor's root at its size, and the anchor must still be among the
stored checkpoints. :func:`check_anchored` then bounds how far the head may run ahead of the
latest checkpoint, in entries and in time.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from governance.audit import repository
from governance.audit.errors import AuditVerificationError
from governance.audit.log import index_columns, resource_label, tree_size
from governance.audit.models import AuditCheckpoint, AuditEntry, AuditNode
from governance.audit.note import Checkpoint, VerifierKey, parse_vkey, verify_note
from governance.db.base import as_utc, utcnow

__all__ = ["LogReport", "check_anchored", "verify_log"]

_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class LogReport:
    """What a verified log proves: entries ``0..tree_size-1`` form the tree whose signed
    checkpoints all verify under the key, the largest being ``latest_checkpoint``."""

    tree_size: int
    entries_checked: int
    checkpoints_checked: int
    latest_checkpoint: int | None
    root: bytes
    seconds: float
    anchor_size: int | None = None

    @property
    def entries_per_second(self) -> float:
        return self.entries_checked / self.seconds if self.seconds > 0 else float("inf")


def _time_text(value: datetime) -> str:
    # Same text as audit.events.to_entry writes; the column is UTC at millisecond precision.
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _fold(stack: list[tuple[int, bytes]]) -> bytes:
    if not stack:
        return _sha256(b"").digest()
    root = stack[-1][1]
    for _, node in reversed(stack[:-1]):
        root = _sha256(b"\x01" + node + root).digest()
    return root


class _Checkpoints:
    """Checkpoints in size order, fetched a page at a time."""

    def __init__(self, session: Session, page: int = 1000) -> None:
        self._session = session
        self._page = page

    def __iter__(self) -> Iterator[AuditCheckpoint]:
        after: int | None = None
        while True:
            rows = repository.list_checkpoints(self._session, after=after, limit=self._page)
            yield from rows
            if len(rows) < self._page:
                return
            after = rows[-1].tree_size


_ENTRY_COLUMNS = (
    AuditEntry.seq,
    AuditEntry.canonical,
    AuditEntry.leaf_hash,
    AuditEntry.time,
    AuditEntry.event_type,
    AuditEntry.action,
    AuditEntry.actor,
    AuditEntry.resource,
    AuditEntry.decision,
    AuditEntry.outcome,
    AuditEntry.request_id,
)


def _driver_rows(dialect: str) -> bool:
    """Whether to read rows from the driver cursor directly: on SQLite the driver streams
    ``fetchmany`` and takes no server-side cursor, so plain tuples cost nothing extra."""
    return dialect == "sqlite"


_NODES = select(AuditNode.idx, AuditNode.hash).where(
    AuditNode.level == bindparam("level"),
    AuditNode.idx >= bindparam("lo"),
    AuditNode.idx <= bindparam("hi"),
)


class _Reader:
    """Entries and stored nodes as plain driver tuples.

    The verifier touches every entry, so per-row work is what it costs: on SQLite the rows
    come straight from the driver cursor (SQLAlchemy's row objects and type processing cost
    more than the checks themselves), on the same connection and so in the same snapshot.
    Other databases stream through SQLAlchemy Core with a server-side cursor. Either way the
    time column comes back raw and goes through :meth:`time_text`, which converts each
    distinct stored value once (entries appended in one batch share their time).
    """

    def __init__(self, session: Session) -> None:
        self._conn = session.connection()
        dialect = self._conn.dialect
        self._raw = _driver_rows(dialect.name)
        self._to_datetime = (
            AuditEntry.time.type.dialect_impl(dialect).result_processor(dialect, None)
            if self._raw
            else None
        )
        self._nodes_sql = str(_NODES.compile(dialect=dialect))
        self._last_time: object = None
        self._last_text = ""

    def entries(self, chunk: int) -> Generator[Sequence[Any], None, None]:
        """Every stored entry's ``_ENTRY_COLUMNS``, in seq order, ``chunk`` rows per fetch."""
        query = select(*_ENTRY_COLUMNS).order_by(AuditEntry.seq)
        if not self._raw:
            # Statement-level, so the session's connection keeps its own options.
            yield from self._conn.execute(query.execution_options(yield_per=chunk))
            return
        cursor = self._conn.connection.cursor()
        try:
            cursor.execute(str(query.compile(dialect=self._conn.dialect)))
            while rows := cursor.fetchmany(chunk):
                yield from rows
        finally:
            cursor.close()

    def nodes(self, level: int, lo: int, hi: int) -> list[bytes | None]:
        """Stored hashes of nodes ``(level, lo..hi)`` by position; ``None`` where one is missing."""
        found: list[bytes | None] = [None] * (hi - lo + 1)
        rows: Iterable[Sequence[Any]]
        if self._raw:
            cursor = self._conn.connection.cursor()
            try:
                # SQLite's compiled form takes its "?" parameters in order of appearance.
                cursor.execute(self._nodes_sql, (level, lo, hi))
                rows = cursor.fetchall()
            finally:
                cursor.close()
        else:
            rows = self._conn.execute(_NODES, {"level": level, "lo": lo, "hi": hi})
        for idx, node in rows:
            found[idx - lo] = node
        return found

    def time_text(self, stored: object) -> str:
        """The entry-document text of a stored time value (cached for runs of equal values)."""
        if stored != self._last_time:
            when = self._to_datetime(stored) if self._to_datetime is not None else stored
            self._last_text = _time_text(when)  # type: ignore[arg-type]
            self._last_time = stored
        return self._last_text


def _chunk_nodes(reader: _Reader, first: int, last: int) -> list[tuple[int, list[bytes | None]]]:
    """Stored nodes completed by appending leaves ``first..last``, per level as ``(lo, hashes)``
    with ``hashes[j - lo]`` the node ``(level, j)``: node (k, j) is completed by leaf
    ``(j + 1) * 2**k - 1``, so level k holds the j with that leaf inside the range."""
    levels: list[tuple[int, list[bytes | None]]] = []
    level = 0
    while (1 << level) <= last + 1:
        lo = -(-(first + 1) // (1 << level)) - 1  # ceil((first + 1) / 2**k) - 1
        hi = (last + 1) // (1 << level) - 1
        levels.append((lo, reader.nodes(level, lo, hi) if lo <= hi else []))
        level += 1
    return levels


# ``json.loads`` strips surrounding whitespace with two regex calls and two Python-level
# wrappers per entry; ``raw_decode`` skips them. Anything it does not read whole goes through
# ``json.loads`` so the outcome for odd input is exactly as before.
_raw_decode = json.JSONDecoder().raw_decode


def _parse(seq: int, canonical: str) -> Any:
    try:
        doc, end = _raw_decode(canonical)
        if end == len(canonical):
            return doc
    except (ValueError, TypeError):
        pass
    try:
        return json.loads(canonical)
    except ValueError:
        raise AuditVerificationError(f"entry {seq} is not JSON", first_bad_seq=seq) from None


def _check_document(
    seq: int,
    canonical: str,
    when: str,
    columns: Sequence[Any],
) -> None:
    """Parse the entry and compare its ``seq`` and the indexed columns with the document;
    ``when`` is the time column as document text, ``columns`` the rest in ``_ENTRY_COLUMNS``
    order."""
    doc = _parse(seq, canonical)
    if type(doc) is not dict or doc.get("seq") != seq or type(doc.get("seq")) is not int:
        raise AuditVerificationError(
            f"entry {seq}: its own seq field does not match (moved or reordered)",
            first_bad_seq=seq,
        )
    event_type, action, actor, resource, decision, outcome, request_id = columns
    try:
        actor_doc = doc["actor"]
        expected = (
            *index_columns(doc["event_type"], doc["action"], actor_doc["name"], doc["decision"]),
            resource_label(doc["resource"]),
            doc["outcome"],
            doc["request_id"],
            doc["time"],
        )
    except (KeyError, TypeError):
        raise AuditVerificationError(
            f"entry {seq} lacks a required field", first_bad_seq=seq
        ) from None
    stored = (event_type, action, actor, decision, resource, outcome, request_id, when)
    if expected != stored:
        names = ("event_type", "action", "actor", "decision", "resource", "outcome",
                 "request_id", "time")  # fmt: skip
        column = next(n for n, a, b in zip(names, expected, stored, strict=True) if a != b)
        raise AuditVerificationError(
            f"entry {seq}: indexed column {column!r} differs from the signed entry",
            first_bad_seq=seq,
        )


def verify_log(
    session: Session,
    key: str | VerifierKey,
    *,
    anchor: Checkpoint | None = None,
    chunk: int = 4096,
    progress: Callable[[int], None] | None = None,
) -> LogReport:
    """Verify the whole stored log against the log's public key.

    Args:
        session: a session on the log's database (read only; a long read transaction).
        key: the log's verifier key (``warden audit public-key``); its name is the origin
            every checkpoint must carry.
        anchor: a checkpoint known from outside the database, already verified under ``key``:
            the log must extend it, and still store it.
        chunk: entries per read batch (memory is O(chunk + log n)).
        progress: called with the number of entries checked so far, once per chunk.

    Returns:
        The report.

    Raises:
        AuditVerificationError: the first problem in seq order, with ``first_bad_seq`` when an
            entry, a stored node or the sequence is to blame and ``checkpoint_size`` when a
            checkpoint is.
    """
    started = time.perf_counter()
    vkey = parse_vkey(key) if isinstance(key, str) else key
    head = tree_size(session)
    anchor_size = -1 if anchor is None else anchor.size
    if anchor is not None and anchor.size > head:
        raise AuditVerificationError(
            f"rollback: the log holds {head} entries, fewer than the anchor checkpoint's "
            f"{anchor.size}",
            checkpoint_size=anchor.size,
        )
    anchor_stored = False
    stack: list[tuple[int, bytes]] = []
    checkpoints = iter(_Checkpoints(session))
    pending = next(checkpoints, None)
    # A plain int for the per-entry test: reading the ORM attribute costs more than the test.
    pending_size = -1 if pending is None else pending.tree_size
    last_good: int | None = None
    checked_checkpoints = 0

    def check_anchor(size: int) -> None:
        assert anchor is not None
        if _fold(stack) != anchor.root:
            raise AuditVerificationError(
                f"the entries do not hash to the anchor checkpoint's root at tree size {size}: "
                "the log is not consistent with it (history rewritten or forked)",
                checkpoint_size=size,
                extra={"last_good_checkpoint": last_good},
            )

    def check_checkpoint(size: int) -> None:
        nonlocal pending, pending_size, last_good, checked_checkpoints, anchor_stored
        while pending is not None and pending.tree_size == size:
            row = pending
            where = f"checkpoint {row.tree_size}"
            extra = {"last_good_checkpoint": last_good}
            try:
                signed = verify_note(row.note, vkey, origin=vkey.name)
            except AuditVerificationError as exc:
                raise AuditVerificationError(
                    f"{where}: {exc.message}", checkpoint_size=row.tree_size, extra=extra
                ) from None
            if signed.size != row.tree_size or signed.root != row.root_hash:
                raise AuditVerificationError(
                    f"{where}: stored size or root differs from the signed note",
                    checkpoint_size=row.tree_size,
                    extra=extra,
                )
            if signed.root != _fold(stack):
                raise AuditVerificationError(
                    f"{where}: the entries do not hash to the signed root (history was "
                    "rewritten after this checkpoint's predecessor)",
                    checkpoint_size=row.tree_size,
                    extra=extra,
                )
            last_good = row.tree_size
            anchor_stored = anchor_stored or row.tree_size == anchor_size
            checked_checkpoints += 1
            pending = next(checkpoints, None)
            pending_size = -1 if pending is None else pending.tree_size

    if anchor_size == 0:
        check_anchor(0)
    if pending is not None and pending.tree_size == 0:
        check_checkpoint(0)
    reader = _Reader(session)
    expected = 0
    stored: list[tuple[int, list[bytes | None]]] = []
    # Closed on the way out, also when an error leaves rows unread: an open SQLite statement
    # would otherwise live on in the traceback's frame.
    with closing(reader.entries(chunk)) as rows:
        for seq, canonical, stored_leaf, when, *columns in rows:
            if seq != expected:
                raise AuditVerificationError(
                    f"entry {expected} is missing (next stored entry is {seq})",
                    first_bad_seq=expected,
                )
            if seq >= head:
                raise AuditVerificationError(
                    f"entry {seq} lies beyond the log head ({head} entries)", first_bad_seq=seq
                )
            if seq % chunk == 0:
                if progress is not None and seq:
                    progress(seq)
                stored = _chunk_nodes(reader, seq, min(seq + chunk, head) - 1)
            _check_document(seq, canonical, reader.time_text(when), columns)
            leaf = _sha256(b"\x00" + canonical.encode("utf-8")).digest()
            if leaf != stored_leaf:
                raise AuditVerificationError(
                    f"entry {seq}: stored leaf hash differs from the entry's hash",
                    first_bad_seq=seq,
                )
            lo, hashes = stored[0]
            if hashes[seq - lo] != leaf:
                raise AuditVerificationError(
                    f"entry {seq}: stored tree leaf (0, {seq}) differs", first_bad_seq=seq
                )
            level, index, node = 0, seq, leaf
            while stack and stack[-1][0] == level:
                node = _sha256(b"\x01" + stack.pop()[1] + node).digest()
                level += 1
                index >>= 1
                lo, hashes = stored[level]
                if hashes[index - lo] != node:
                    raise AuditVerificationError(
                        f"entry {seq}: stored tree node ({level}, {index}) differs",
                        first_bad_seq=seq,
                    )
            stack.append((level, node))
            expected = seq + 1
            if expected == anchor_size:
                check_anchor(expected)
            if expected == pending_size:
                check_checkpoint(expected)
    if expected < head:
        raise AuditVerificationError(
            f"entry {expected} is missing (the log head says {head} entries)",
            first_bad_seq=expected,
        )
    if pending is not None:
        raise AuditVerificationError(
            f"checkpoint {pending.tree_size} lies beyond the log head ({head} entries)",
            checkpoint_size=pending.tree_size,
            extra={"last_good_checkpoint": last_good},
        )
    # Every aligned perfect subtree inside the tree was compared above; any other row is junk.
    wanted = sum(head >> level for level in range(head.bit_length()))
    if repository.count_nodes(session) != wanted:
        raise AuditVerificationError(
            "the node store holds nodes outside the tree", extra={"expected_nodes": wanted}
        )
    if anchor_size > 0 and not anchor_stored:
        raise AuditVerificationError(
            f"the anchor checkpoint at tree size {anchor_size} is missing from the stored "
            "checkpoints (deleted from the database)",
            checkpoint_size=anchor_size,
        )
    if progress is not None:
        progress(expected)
    return LogReport(
        tree_size=head,
        entries_checked=expected,
        checkpoints_checked=checked_checkpoints,
        latest_checkpoint=last_good,
        root=_fold(stack),
        seconds=time.perf_counter() - started,
        anchor_size=None if anchor is None else anchor.size,
    )


def check_anchored(
    session: Session,
    report: LogReport,
    *,
    max_lag: int | None,
    max_age: timedelta | None,
    now: datetime | None = None,
) -> None:
    """Refuse a verified log whose newest entries no checkpoint covers, or not for long.

    Args:
        session: the session ``report`` was verified on (the same snapshot).
        report: what :func:`verify_log` proved.
        max_lag: most entries the head may run ahead of the latest checkpoint (None: any).
        max_age: longest the oldest entry no checkpoint covers may have waited (None: any).
        now: the time to measure against (default: now, UTC).

    Raises:
        AuditVerificationError: no checkpoint at all while there are entries, or one of the
            bounds passed.
    """
    head, latest = report.tree_size, report.latest_checkpoint
    if head == 0:
        return
    if latest is None:
        raise AuditVerificationError(
            f"no signed checkpoint: none of the log's {head} entries is anchored "
            "(checkpoints deleted, or never signed)"
        )
    lag = head - latest
    if max_lag is not None and lag > max_lag:
        raise AuditVerificationError(
            f"the latest checkpoint ({latest}) is {lag} entries behind the head ({head}), "
            f"more than {max_lag}",
            checkpoint_size=latest,
        )
    if max_age is not None and lag > 0:
        oldest = repository.get_entry(session, latest)
        if oldest is not None:
            waited = (now or utcnow()) - as_utc(oldest.time)
            if waited > max_age:
                raise AuditVerificationError(
                    f"entry {latest} has waited {waited.total_seconds():.0f} s for a checkpoint, "
                    f"more than {max_age.total_seconds():.0f} s (run `warden audit checkpoint` "
                    "if no server signs)",
                    first_bad_seq=latest,
                )
