"""API schemas of the identity domain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from governance.db.base import UtcDatetime


class PrincipalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["user", "service"] = "user"


class PrincipalOut(BaseModel):
    name: str
    kind: str
    disabled: bool
    created_at: datetime
    created_by: str | None


class KeyIssue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal: str = Field(min_length=1, max_length=64)
    expires_at: UtcDatetime | None = None


class KeyIssued(BaseModel):
    key_id: str
    principal: str
    expires_at: datetime | None
    token: str = Field(description="The API key. Shown once: Warden stores only its hash.")


class KeyOut(BaseModel):
    key_id: str
    principal: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal: str = Field(min_length=1, max_length=64)
    role: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)
