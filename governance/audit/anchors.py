"""Anchoring rows that grant power in the log: content hashes and the entries that name them.

The database is not the root of trust. A row that grants power (a policy version, an API key, a
fairness thresholds version, a model's serving stage) is used only if the latest audit entry
about it names the row's content hash, and that entry is the one the log committed: its
canonical document hashes to its stored leaf, which is also the stored level-0 Merkle node at
its seq. Tying those leaves to signed checkpoints is the tree-wide verification's job
(``warden audit verify``), not each load's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from governance.audit.canonical import canonical_bytes, parse_canonical
from governance.audit.errors import CanonicalizationError
from governance.audit.merkle import leaf_hash
from governance.audit.models import AuditEntry, AuditNode

__all__ = ["ANCHOR_EVENT", "Anchor", "content_hash", "latest_about", "unanchored"]

# The event ``warden audit anchor`` writes for a row created before rows were anchored.
ANCHOR_EVENT = "audit.anchor"
# Candidates read per lookup: the entries about one row are few (an issue and a revocation).
_CANDIDATES = 64


def content_hash(kind: str, content: Mapping[str, Any]) -> str:
    """The hex SHA-256 of a row's meaningful content, as canonical JSON with its kind.

    Args:
        kind: what the row is (``policy_version``, ``api_key``, ...); two kinds with the same
            fields never share a hash.
        content: the fields that give the row its power, JSON-safe.

    Returns:
        64 lowercase hex characters.
    """
    return hashlib.sha256(canonical_bytes({"kind": kind, "content": dict(content)})).hexdigest()


@dataclass(frozen=True)
class Anchor:
    """The latest entry about a row, and whether the log vouches for it."""

    seq: int
    event_type: str
    action: str
    resource: dict[str, Any]
    details: dict[str, Any]
    # Empty when the entry verifies; otherwise why it does not (no content from it).
    fault: str = ""

    @property
    def content_hash(self) -> str | None:
        value = self.details.get("content_hash")
        return value if isinstance(value, str) else None

    def names(self, expected: str) -> bool:
        """Whether this verified entry names ``expected`` as the row's content hash."""
        return not self.fault and self.content_hash == expected


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def latest_about(
    session: Session,
    *,
    event_types: Sequence[str],
    labels: Sequence[str] = (),
    contains: str | None = None,
    about: Callable[[Mapping[str, Any]], bool],
) -> Anchor | None:
    """The latest entry of ``event_types`` about one row, checked against the stored leaf.

    Candidates are found by the indexed columns (event type, resource label), then each is
    read from its canonical document, newest first, until one whose resource ``about`` accepts:
    the columns only narrow the search, the canonical document decides.

    Args:
        session: a session on the database.
        event_types: the events that change this kind of row (and :data:`ANCHOR_EVENT`).
        labels: resource labels (``k=v,k=v``) an entry about the row has exactly.
        contains: a substring of the resource label, for rows named by more than one shape.
        about: whether an entry's canonical resource is about this row.

    Returns:
        The latest entry about the row (with ``fault`` set if it does not verify), or None
        when the log holds none.
    """
    where = []
    if labels:
        where.append(AuditEntry.resource.in_(list(labels)))
    if contains is not None:
        where.append(AuditEntry.resource.like(f"%{_escape_like(contains)}%", escape="\\"))
    query = (
        select(AuditEntry.seq, AuditEntry.canonical, AuditEntry.leaf_hash)
        .where(AuditEntry.event_type.in_(list(event_types)), or_(*where))
        .order_by(AuditEntry.seq.desc())
        .limit(_CANDIDATES)
    )
    for seq, canonical, stored_leaf in session.execute(query):
        try:
            document = parse_canonical(canonical.encode("utf-8"))
        except CanonicalizationError:
            return Anchor(seq, "", "", {}, {}, fault=f"entry {seq} is not canonical JSON")
        if not isinstance(document, dict):
            return Anchor(seq, "", "", {}, {}, fault=f"entry {seq} is not an object")
        resource = document.get("resource")
        if not isinstance(resource, dict) or not about(resource):
            continue
        details = document.get("details")
        anchor = Anchor(
            seq=seq,
            event_type=str(document.get("event_type", "")),
            action=str(document.get("action", "")),
            resource=resource,
            details=details if isinstance(details, dict) else {},
        )
        return _checked(session, anchor, document, canonical, stored_leaf)
    return None


def _checked(
    session: Session, anchor: Anchor, document: dict[str, Any], canonical: str, stored: bytes
) -> Anchor:
    leaf = leaf_hash(canonical.encode("utf-8"))
    node = session.scalar(
        select(AuditNode.hash).where(AuditNode.level == 0, AuditNode.idx == anchor.seq)
    )
    if document.get("seq") != anchor.seq:
        fault = f"entry {anchor.seq} names another seq"
    elif leaf != bytes(stored):
        fault = f"entry {anchor.seq} does not hash to its stored leaf"
    elif node is None or bytes(node) != leaf:
        fault = f"entry {anchor.seq}'s leaf is not the stored Merkle leaf"
    else:
        return anchor
    return Anchor(anchor.seq, anchor.event_type, anchor.action, {}, {}, fault=fault)


def unanchored(anchor: Anchor | None, expected: str, what: str) -> str | None:
    """Why ``what`` (a row whose content hashes to ``expected``) is not anchored, or None.

    The message names the row and the entry's seq, never the row's content.
    """
    if anchor is None:
        return f"{what} is not anchored: no audit entry records it"
    if anchor.fault:
        return f"{what} is not anchored: {anchor.fault}"
    if anchor.content_hash != expected:
        return (
            f"{what} is not anchored: the latest audit entry about it (seq {anchor.seq}, "
            f"{anchor.event_type} {anchor.action}) does not name its content"
        )
    return None
