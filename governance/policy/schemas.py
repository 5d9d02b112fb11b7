"""API schemas of the policy domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PolicyVersionOut(BaseModel):
    version: int
    parent: int | None
    created_at: datetime
    author: str
    approved_by: str | None
    reason: str
    kind: str
    sha256: str
    diff: dict[str, Any]


class PolicyOut(PolicyVersionOut):
    rules: list[list[str]]


class PolicyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add: list[list[Any]] = Field(default_factory=list, max_length=10_000)
    remove: list[list[Any]] = Field(default_factory=list, max_length=10_000)
    reason: str = Field(min_length=1, max_length=2000)
    base_version: int | None = None
