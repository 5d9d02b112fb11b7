"""API schemas of the model registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelVersionOut(BaseModel):
    name: str
    version: str
    stage: str
    artifact_sha256: str
    registered_by: str
    registered_at: datetime
    trained_by: str | None
    stage_changed_by: str | None
    stage_changed_at: datetime | None


class ModelDetail(ModelVersionOut):
    manifest: dict[str, Any]


class ArtifactUpload(BaseModel):
    """An artifact sent inline: its manifest and every file it names, base64-encoded."""

    model_config = ConfigDict(extra="forbid")
    manifest: dict[str, Any]
    files: dict[str, str] = Field(description="file name → base64 content", max_length=16)
