"""API schemas of the model registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelVersionOut(BaseModel):
    """A registered model version and its stage."""

    name: str
    version: str
    stage: str
    artifact_sha256: str
    registered_by: str
    registered_at: datetime
    trained_by: str | None
    stage_changed_by: str | None
    stage_changed_at: datetime | None


class DpClaimOut(BaseModel):
    """The DP claim the privacy ledger supports for this artifact, not its manifest's."""

    status: Literal["ledger", "none", "void"] = Field(
        description="ledger: covered by the privacy ledger; none: no DP guarantee; "
        "void: trained with replayable noise, void until retrained"
    )
    statement: str
    epsilon: float | None
    delta: float | None
    accountant: str | None = Field(description="prv or pld: whichever gave the smaller ε")
    runs: list[int] = Field(description="the ledger runs that produced the artifact")
    manifest_claims_dp: bool = Field(description="whether the uploaded manifest claims DP")


class ModelDetail(ModelVersionOut):
    """A model version with its manifest and the DP claim its ledger supports."""

    manifest: dict[str, Any] = Field(
        description="the artifact's manifest as registered; its training section is the "
        "uploader's word: the DP claim is dp_claim"
    )
    dp_claim: DpClaimOut


class ArtifactUpload(BaseModel):
    """An artifact sent inline: its manifest and every file it names, base64-encoded."""

    model_config = ConfigDict(extra="forbid")
    manifest: dict[str, Any]
    files: dict[str, str] = Field(description="file name → base64 content", max_length=16)
