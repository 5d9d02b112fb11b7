"""Appending to the audit log inside a database transaction.

:func:`append` is the only writer. Its first statement advances the single head row
(``UPDATE ... RETURNING``), which takes that row's lock on PostgreSQL (SQLite transactions
already start with ``BEGIN IMMEDIATE``), so every process that appends takes its turn and the
database hands out one gap-free sequence. Each entry's leaf hash
and the Merkle nodes it completes are stored in the same transaction as the entry: if the
transaction rolls back, no trace of the entries remains, and nothing after them is renumbered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from governance.audit.canonical import canonical_bytes
from governance.audit.errors import MissingNodeError
from governance.audit.events import to_entry
from governance.audit.merkle import (
    getter_from_mapping,
    leaf_hash,
    nodes_to_store_on_batch_append,
    root_keys,
)
from governance.audit.models import AuditEntry, AuditHead, AuditNode
from governance.db.base import utcnow
from governance.db.direct import DirectStatement
from governance.kit.events import AuditEvent


def resource_label(resource: Mapping[str, Any]) -> str | None:
    """The searchable ``k=v,k=v`` column value of an entry's resource (at most 160 chars)."""
    if not resource:
        return None
    return ",".join(f"{k}={resource[k]}" for k in sorted(resource))[:160]


def index_columns(
    event_type: str, action: str, actor: str | None, decision: str
) -> tuple[str, str, str | None, str]:
    """The truncated copies of entry fields kept in indexed columns for filtering.

    Verification recomputes them from the canonical entry, so a rewrite of an index column
    (to hide an entry from a filter) is caught like any other.
    """
    return event_type[:48], action[:48], actor[:64] if actor else None, decision[:8]


_ENTRIES: Table = AuditEntry.__table__  # type: ignore[assignment]
_NODES: Table = AuditNode.__table__  # type: ignore[assignment]
_HEAD: Table = AuditHead.__table__  # type: ignore[assignment]
# Built once and run on the DBAPI cursor (governance/db/direct.py): the group commit runs
# them for every batch, and SQLAlchemy's execution machinery cost more than the SQL.
_ADVANCE_HEAD = DirectStatement(
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(tree_size=_HEAD.c.tree_size + bindparam("count"))
    .returning(_HEAD.c.tree_size)
)
_INSERT_ENTRIES = DirectStatement(insert(_ENTRIES))
_INSERT_NODES = DirectStatement(insert(_NODES))


@dataclass(frozen=True)
class Frontier:
    """The perfect-subtree hashes that make up a tree of ``size`` leaves.

    They are all that appending to that tree reads. Stored nodes never change, so a frontier
    known for the current size is as good as reading it; one for another size is useless.
    """

    size: int
    nodes: dict[tuple[int, int], bytes]


@dataclass(frozen=True)
class Appended:
    seqs: list[int]
    frontier: Frontier


def append(session: Session, events: Sequence[AuditEvent]) -> list[int]:
    """Append events to the log in the caller's transaction.

    Args:
        session: the transaction the events belong to; they commit or roll back with it.
        events: the events, in order.

    Returns:
        The sequence number given to each event.
    """
    return append_batch(session.connection(), events).seqs if events else []


def append_batch(
    connection: Connection, events: Sequence[AuditEvent], *, frontier: Frontier | None = None
) -> Appended:
    """:func:`append` on a connection's transaction, also returning the frontier after it.

    Args:
        connection: the transaction the events belong to (a session's, or the group
            commit's own).
        events: the events, in order (at least one).
        frontier: the caller's frontier from its last committed append; used only when it is
            still the frontier of the current tree (no other writer appended since), which
            saves reading the nodes. Pass one only once the append that produced it committed.

    Returns:
        The sequence numbers and the frontier of the new tree (valid once this commits).
    """
    count = len(events)
    # One statement reserves the range and takes the head's row lock (PostgreSQL) or the
    # database's write lock (SQLite): every appender, in any process, takes its turn here.
    ((new_size,),) = _ADVANCE_HEAD.execute(connection, {"count": count})
    size = new_size - count
    now = utcnow()
    rows: list[dict[str, Any]] = []
    leaves: list[bytes] = []
    for offset, event in enumerate(events):
        seq = size + offset
        data = canonical_bytes(to_entry(event, seq=seq, time=now))
        leaf = leaf_hash(data)
        leaves.append(leaf)
        event_type, action, actor, decision = index_columns(
            event.event_type, event.action, event.actor.name, event.decision
        )
        rows.append(
            {
                "seq": seq,
                "time": now,
                "event_type": event_type,
                "action": action,
                "actor": actor,
                "resource": resource_label(event.resource),
                "decision": decision,
                "outcome": event.outcome,
                "request_id": event.request_id,
                "canonical": data.decode("utf-8"),
                "leaf_hash": leaf,
            }
        )
    if frontier is not None and frontier.size == size:
        known = frontier.nodes
    else:
        # The frontier of the current tree: every node an append can read (append_keys) is
        # one of these perfect subtrees, and they carry over into the next frontier.
        wanted = root_keys(size)
        known = {}
        if wanted:
            found = connection.execute(
                select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(
                    AuditNode.level.in_({k[0] for k in wanted}),
                    AuditNode.idx.in_({k[1] for k in wanted}),
                )
            )
            keys = set(wanted)
            known = {(lvl, idx): h for lvl, idx, h in found if (lvl, idx) in keys}
    nodes = nodes_to_store_on_batch_append(size, leaves, getter_from_mapping(known))
    _INSERT_ENTRIES.executemany(connection, rows)
    _INSERT_NODES.executemany(
        connection, [{"level": lvl, "idx": idx, "hash": h} for lvl, idx, h in nodes]
    )
    everything = {**known, **{(lvl, idx): h for lvl, idx, h in nodes}}
    try:
        after = Frontier(new_size, {k: everything[k] for k in root_keys(new_size)})
    except KeyError:
        raise MissingNodeError("the node store lacks a frontier node of the log") from None
    return Appended(list(range(size, new_size)), after)


def lock_head(session: Session) -> None:
    """Take the log's head lock now, before locking anything else.

    Appending locks the head first (its first statement), and the group commit then locks the
    batch's data-key rows. A transaction that locks other rows and then appends must take the
    head first too, or PostgreSQL finds a deadlock and aborts one of them. (SQLite transactions
    are serialised whole, from ``BEGIN IMMEDIATE``.)
    """
    session.execute(select(AuditHead.tree_size).where(AuditHead.id == 1).with_for_update())


def tree_size(session: Session) -> int:
    """The number of entries committed so far."""
    return session.execute(select(AuditHead.tree_size).where(AuditHead.id == 1)).scalar_one()
