"""Appending to the audit log inside a database transaction.

:func:`append` is the only writer. It locks the single head row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite transactions already start with ``BEGIN IMMEDIATE``), so every process that
appends takes its turn and the database hands out one gap-free sequence. Each entry's leaf hash
and the Merkle nodes it completes are stored in the same transaction as the entry: if the
transaction rolls back, no trace of the entries remains, and nothing after them is renumbered.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from governance.audit.canonical import canonical_bytes
from governance.audit.events import AuditEvent
from governance.audit.merkle import append_keys, leaf_hash, nodes_to_store_on_batch_append
from governance.audit.models import AuditEntry, AuditHead, AuditNode
from governance.db.base import utcnow


def _resource_label(event: AuditEvent) -> str | None:
    if not event.resource:
        return None
    return ",".join(f"{k}={event.resource[k]}" for k in sorted(event.resource))[:160]


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
    rows, leaves = [], []
    for offset, event in enumerate(events):
        seq = size + offset
        data = canonical_bytes(event.to_entry(seq=seq, time=now))
        leaf = leaf_hash(data)
        leaves.append(leaf)
        rows.append(
            {
                "seq": seq,
                "time": now,
                "event_type": event.event_type[:48],
                "action": event.action[:48],
                "actor": (event.actor.name or None) and event.actor.name[:64],
                "resource": _resource_label(event),
                "decision": event.decision[:8],
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
    nodes = nodes_to_store_on_batch_append(size, leaves, lambda lvl, idx: known[(lvl, idx)])
    session.execute(insert(AuditEntry), rows)
    session.execute(
        insert(AuditNode), [{"level": lvl, "idx": idx, "hash": h} for lvl, idx, h in nodes]
    )
    session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(tree_size=size + len(events))
    )
    return [r["seq"] for r in rows]


def tree_size(session: Session) -> int:
    """The number of entries committed so far."""
    return session.execute(select(AuditHead.tree_size).where(AuditHead.id == 1)).scalar_one()
