"""API schemas of stored records and erasure receipts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class RecordOut(BaseModel):
    """A stored record's metadata: never its content."""

    id: str
    request_id: str
    created_at: datetime
    principal: str
    model: str
    model_version: str
    subject_ref: str = Field(description="The data subject's keyed blind index, never its id.")
    dek_id: str
    dek_version: int
    format_version: int
    row_count: int
    audit_seq: int | None
    key_state: str = Field(description="active, decrypt_only, or destroyed (erased: unreadable)")


class DecryptRequest(BaseModel):
    """Why the record is being opened; audited with the decryption."""

    model_config = ConfigDict(extra="forbid")
    purpose: str = Field(
        min_length=8,
        max_length=500,
        description="Why the record is read in clear; written to the audit log.",
    )


class DecryptedRecordOut(BaseModel):
    """A stored record opened: the request and response as the model saw them."""

    record: RecordOut
    purpose: str
    request: dict[str, Any]
    response: dict[str, Any]


class PurgeRequest(BaseModel):
    """Purge the records past their retention period (or only count them)."""

    model_config = ConfigDict(extra="forbid")
    dry_run: StrictBool = False


class PurgeOut(BaseModel):
    """What a retention purge removed, or would remove on a dry run."""

    deleted: dict[str, int]
    total: int
    cutoffs: dict[str, datetime | None]
    dry_run: bool
    audit_seq: int
    audit_min_days: int = Field(description="Audit entries are kept at least this long.")


class KeyBytesOut(BaseModel):
    """Where the destroyed keys' bytes stand in the database files."""

    status: Literal["done", "pending", "residual", "unknown"] = Field(
        description="done: they left the database files at removed_at. pending: a reader kept "
        "SQLite's write-ahead log busy; the checkpoint is retried with backoff. residual: the "
        "database keeps old row versions (PostgreSQL, until VACUUM reuses their space). "
        "unknown: an erasure made before this was tracked."
    )
    removed_at: datetime | None
    attempts: int = Field(description="Checkpoints tried so far.")
    last_try_at: datetime | None


class ErasureReceiptOut(BaseModel):
    """Evidence of an erasure (GDPR Art. 17)."""

    receipt_id: str
    subject_ref: str
    erased_at: datetime
    erased_by: str
    dek_ids: list[str] = Field(description="The data keys destroyed by this erasure.")
    records_affected: int = Field(description="Records made unreadable by this erasure.")
    audit_seq: int | None
    key_bytes: KeyBytesOut
    residual_exposure: list[str] = Field(
        description="Where copies of the destroyed keys may still exist, and why they stop opening."
    )
    exposure_ends_by: datetime | None = Field(
        description="When the current KEK is due to be retired by the rotation schedule: "
        "after that no copy of a destroyed key can be unwrapped."
    )
