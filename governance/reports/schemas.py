"""API schemas of the reports domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from governance.db.base import as_utc

# An offset is required here (a report period is never guessed); then held as UTC.
UtcAwareDatetime = Annotated[AwareDatetime, AfterValidator(as_utc)]


class ReportCreate(BaseModel):
    """The period (and optionally the model) a compliance report covers."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    period_from: UtcAwareDatetime = Field(alias="from", description="period start (inclusive)")
    period_to: UtcAwareDatetime = Field(alias="to", description="period end (exclusive)")
    model: str | None = Field(default=None, max_length=64)
    frameworks: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=32,
        description="narrow the regulation mapping to these framework ids (policies/frameworks/)",
    )


class ReportOut(BaseModel):
    """A generated compliance report and its files."""

    id: str
    period_from: datetime
    period_to: datetime
    model: str | None
    generated_at: datetime
    generated_by: str
    files: list[str]


class ReportCreated(ReportOut):
    """A compliance report being generated: its id and where to fetch it."""

    audit_seq: int
    manifest_sha256: str
    log_verified: bool
