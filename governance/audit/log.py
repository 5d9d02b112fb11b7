"""Appending to the audit log inside a database transaction.

:func:`append` is the only writer. It locks the single head row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite transactions already start with ``BEGIN IMMEDIATE``), so every process that
appends takes its turn and the database hands out one gap-free sequence. Each entry's leaf hash
and the Merkle nodes it completes are stored in the same transaction as the entry: if the
transaction rolls back, no trace of the entries remains, and nothing after them is renumbered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from governance.audit.canonical import canonical_bytes
from governance.audit.events import AuditEvent
from governance.audit.merkle import (
    append_keys,
    getter_from_mapping,
    leaf_hash,
    nodes_to_store_on_batch_append,
)
from governance.audit.models import AuditEntry, AuditHead, AuditNode
from governance.db.base import utcnow


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


def append(session: Session, events: Sequence[AuditEvent]) -> list[int]:
    """Append events to the log in the caller's transaction.

    Args:
        session: the transaction the events belong to; they commit or roll back with it.
        events: the events, in order.

    Returns:
        The sequence number given to each event.
    """
    if not events:
        return []
    size = session.execute(
        select(AuditHead.tree_size).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    now = utcnow()
    rows: list[dict[str, Any]] = []
    leaves: list[bytes] = []
    for offset, event in enumerate(events):
        seq = size + offset
        data = canonical_bytes(event.to_entry(seq=seq, time=now))
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
    needed = append_keys(size, len(events))
    known: dict[tuple[int, int], bytes] = {}
    if needed:
        found = session.execute(
            select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(
                AuditNode.level.in_({k[0] for k in needed}),
                AuditNode.idx.in_({k[1] for k in needed}),
            )
        )
        known = {(lvl, idx): h for lvl, idx, h in found}
    nodes = nodes_to_store_on_batch_append(size, leaves, getter_from_mapping(known))
    session.execute(insert(AuditEntry), rows)
    session.execute(
        insert(AuditNode), [{"level": lvl, "idx": idx, "hash": h} for lvl, idx, h in nodes]
    )
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(tree_size=size + len(events)))
    return list(range(size, size + len(events)))


def tree_size(session: Session) -> int:
    """The number of entries committed so far."""
    return session.execute(select(AuditHead.tree_size).where(AuditHead.id == 1)).scalar_one()
