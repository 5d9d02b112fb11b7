"""API schemas of key management."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class DataKeyOut(BaseModel):
    """A data key's metadata; key material never leaves the vault."""

    id: str
    subject_ref: str
    version: int
    state: str
    kek_id: str | None
    wrap_format: int = Field(
        description="2: the wrap binds the key's subject and version; 1: its id only (made "
        "before migration 0012, until a KEK rotation rewraps it)."
    )
    uses: int = Field(description="Seals reserved under this key (counted before sealing).")
    created_at: datetime
    rotated_at: datetime | None
    destroyed_at: datetime | None
    destroyed_by: str | None


class KekStatus(BaseModel):
    """The key-encryption key in use and the data keys it wraps."""

    current: str
    available: list[str]
    deks_per_kek: dict[str, int]
    retire_by: datetime | None = Field(
        default=None,
        description="When the rotation schedule rotates the current KEK out and retires it "
        "(WARDEN_KEK_ROTATION_DAYS after it was made); null when the provider does not say.",
    )


class RotationOut(BaseModel):
    """One key rotation as recorded."""

    id: int
    kind: str
    rotated_at: datetime
    rotated_by: str
    reason: str
    from_kek: str | None
    to_kek: str | None
    keys_affected: int


class DekRotateRequest(BaseModel):
    """Rotate one subject's data key (or every subject's) and why."""

    model_config = ConfigDict(extra="forbid")
    subject_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Rotate only this subject's keys; all active keys when absent.",
    )
    reason: str = Field(min_length=3, max_length=200)


class DekRotateOut(BaseModel):
    """What a data-key rotation did: keys replaced and records resealed."""

    rotated: int


class KekRotateRequest(BaseModel):
    """Rotate the key-encryption key (rewrapping every data key) and why."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=200)
    rotate_provider: StrictBool = Field(
        default=True,
        description="Create a new KEK version first; false only rewraps onto the current one.",
    )


class KekRotateOut(BaseModel):
    """What a key-encryption-key rotation did: the new KEK and the data keys rewrapped."""

    from_kek: str
    to_kek: str
    rewrapped: int
