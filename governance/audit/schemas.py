"""API shapes of the audit log. Hashes and proofs are lowercase hex; notes are C2SP text."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from governance.audit.models import AuditCheckpoint, AuditEntry
from governance.audit.verify import LogReport
from governance.db.base import StrictDbBigInt, UtcDatetime


class AuditEntryOut(BaseModel):
    """An entry: its indexed columns and the signed document they were copied from."""

    seq: int
    time: datetime
    event_type: str
    action: str
    actor: str | None
    resource: str | None = Field(description="`k=v,k=v` label of the resource")
    decision: str
    outcome: int | None
    request_id: str | None
    document: dict[str, Any] = Field(description="the entry as hashed into the log")

    @classmethod
    def of(cls, row: AuditEntry) -> AuditEntryOut:
        return cls(
            seq=row.seq,
            time=row.time,
            event_type=row.event_type,
            action=row.action,
            actor=row.actor,
            resource=row.resource,
            decision=row.decision,
            outcome=row.outcome,
            request_id=row.request_id,
            document=json.loads(row.canonical),
        )


class EntryPage(BaseModel):
    """One page of audit entries, in the order asked for."""

    entries: list[AuditEntryOut]
    next_after: int | None = Field(
        description="pass as `after` (as `before` newest first) for the next page; null: last"
    )


class CheckpointOut(BaseModel):
    """A signed tree head."""

    tree_size: int
    root_hash: str
    created_at: datetime
    note: str = Field(description="C2SP signed checkpoint (c2sp.org/tlog-checkpoint)")

    @classmethod
    def of(cls, row: AuditCheckpoint) -> CheckpointOut:
        return cls(
            tree_size=row.tree_size,
            root_hash=row.root_hash.hex(),
            created_at=row.created_at,
            note=row.note,
        )


class InclusionOut(BaseModel):
    """RFC 9162 inclusion proof of leaf `seq` in the tree of `tree_size`."""

    tree_size: int
    proof: list[str]
    checkpoint: CheckpointOut


class EntryProofOut(BaseModel):
    """One audit entry with its leaf bytes and its inclusion proof."""

    entry: AuditEntryOut
    canonical: str = Field(description="the exact text whose UTF-8 bytes are the leaf")
    leaf_hash: str = Field(description="SHA-256(0x00 || canonical)")
    inclusion: InclusionOut | None = Field(description="null until a checkpoint covers the entry")


class ConsistencyOut(BaseModel):
    """RFC 9162 consistency proof that the tree at `size2` extends the tree at `size1`."""

    size1: int
    size2: int
    root1: str
    root2: str
    proof: list[str]
    checkpoint1: CheckpointOut
    checkpoint2: CheckpointOut


class PublicKeyOut(BaseModel):
    """The audit log's verifier key."""

    origin: str
    vkey: str = Field(description="C2SP verifier key `<name>+<key id>+<base64(0x01 || key)>`")


class VerifyOut(BaseModel):
    """Outcome of verifying the live log; `ok` false names the first bad position."""

    ok: bool
    tree_size: int | None = None
    entries_checked: int | None = None
    checkpoints_checked: int | None = None
    latest_checkpoint: int | None = None
    root_hash: str | None = None
    seconds: float | None = None
    error: str | None = None
    first_bad_seq: int | None = None
    checkpoint_size: int | None = None

    @classmethod
    def of(cls, report: LogReport) -> VerifyOut:
        return cls(
            ok=True,
            tree_size=report.tree_size,
            entries_checked=report.entries_checked,
            checkpoints_checked=report.checkpoints_checked,
            latest_checkpoint=report.latest_checkpoint,
            root_hash=report.root.hex(),
            seconds=round(report.seconds, 6),
        )


class ExportRequest(BaseModel):
    """Each end as a seq or a time (not both); `to` defaults to the newest checkpoint."""

    model_config = ConfigDict(extra="forbid")

    from_seq: StrictDbBigInt | None = Field(default=None, ge=0)
    to_seq: StrictDbBigInt | None = Field(default=None, ge=0)
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None
