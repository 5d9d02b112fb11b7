"""The proof data a console page embeds for the browser to check on its own.

The page puts one of these dicts, as JSON, in a ``<script type="application/json">`` element;
``governance/console/static/verify.js`` recomputes every hash and verifies the checkpoint's
signature with WebCrypto, so the page's verdict never rests on the server's word. The shapes
follow the API's (``GET /v1/audit/entries/{seq}``, ``GET /v1/audit/consistency``) with the
log's verifier key and a ``kind`` added; hashes are lowercase hex.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from governance.audit.models import AuditCheckpoint
from governance.audit.service import audit

__all__ = ["consistency_payload", "entry_proof_payload"]


def _checkpoint(row: AuditCheckpoint) -> dict[str, Any]:
    return {
        "tree_size": row.tree_size,
        "root_hash": row.root_hash.hex(),
        "note": row.note,
    }


def entry_proof_payload(session: Session, seq: int, *, vkey: str) -> dict[str, Any]:
    """One entry, its inclusion proof and the latest signed checkpoint, for the browser.

    Args:
        session: a read session on the log.
        seq: the entry's sequence number (its leaf index).
        vkey: the log's verifier key (``signing.public_vkey``), which the page shows so the
            auditor can compare it with the published one.

    Returns:
        ``{"kind": "inclusion", "vkey", "seq", "canonical", "leaf_hash", "inclusion"}`` where
        ``inclusion`` is ``{"tree_size", "proof": [hex], "checkpoint": {"tree_size",
        "root_hash", "note"}}``, or None while no checkpoint covers the entry.

    Raises:
        AuditNotFound: no entry ``seq``.
    """
    found = audit.entry(session, seq)
    inclusion = None
    if found.checkpoint is not None and found.proof is not None:
        inclusion = {
            "tree_size": found.checkpoint.tree_size,
            "proof": [node.hex() for node in found.proof],
            "checkpoint": _checkpoint(found.checkpoint),
        }
    return {
        "kind": "inclusion",
        "vkey": vkey,
        "seq": found.entry.seq,
        "canonical": found.entry.canonical,
        "leaf_hash": found.entry.leaf_hash.hex(),
        "inclusion": inclusion,
    }


def consistency_payload(
    session: Session, *, vkey: str, first: int, second: int | None = None
) -> dict[str, Any]:
    """Two signed checkpoints and the consistency proof between them, for the browser.

    Args:
        session: a read session on the log.
        vkey: the log's verifier key.
        first: the older checkpoint's tree size.
        second: the newer checkpoint's tree size (default: the latest).

    Returns:
        ``{"kind": "consistency", "vkey", "size1", "size2", "proof": [hex], "checkpoint1",
        "checkpoint2"}``, each checkpoint as in :func:`entry_proof_payload`.

    Raises:
        AuditNotFound: no checkpoint at one of the sizes.
        InvalidProofRequest: ``first`` is larger than ``second``.
    """
    found = audit.consistency(session, first=first, second=second)
    return {
        "kind": "consistency",
        "vkey": vkey,
        "size1": found.older.tree_size,
        "size2": found.newer.tree_size,
        "proof": [node.hex() for node in found.proof],
        "checkpoint1": _checkpoint(found.older),
        "checkpoint2": _checkpoint(found.newer),
    }
