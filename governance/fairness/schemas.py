"""API schemas of the fairness domain."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from governance.db.base import StrictDbInt, UtcDatetime
from governance.fairness.gate import MIN_JUSTIFICATION_LENGTH, GateStatus
from governance.fairness.models import FairnessAudit, GateOverride, ThresholdVersion
from governance.fairness.result import Outcome
from governance.fairness.thresholds.versions import MIN_REASON_LENGTH

# Bounds shared by the API's schemas and the CLI's options, so that the two accept the same.
BOOTSTRAP_MAX = 2000
SEED_MAX = 2**31 - 1

ConstraintName = Literal[
    "demographic_parity",
    "true_positive_rate_parity",
    "false_positive_rate_parity",
    "true_negative_rate_parity",
    "false_negative_rate_parity",
]
_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_FEATURE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class AuditCreate(BaseModel):
    """Run a bias audit of a registered model version on a dataset's evaluation split."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(pattern=_NAME)
    version: str | None = Field(
        default=None, pattern=_NAME, description="Default: the serving version, else the newest."
    )
    dataset: str = Field(default="adult", pattern=_NAME)
    sensitive: list[str] | None = Field(
        default=None,
        max_length=8,
        description="Sensitive attributes (and their intersection); default: all the dataset "
        "declares.",
    )
    bootstrap: StrictInt = Field(default=200, ge=0, le=BOOTSTRAP_MAX)
    seed: StrictInt = Field(default=0, ge=0, le=SEED_MAX)


class AuditSummary(BaseModel):
    """A bias audit or monitor run as listed: what was audited and whether it passed."""

    id: int
    created_at: datetime
    kind: str
    model: str
    model_version: str | None
    artifact_sha256: str | None
    dataset: str | None
    dataset_hash: str | None
    split: str | None
    window_start: datetime | None
    window_end: datetime | None
    sensitive: list[str]
    n_rows: int
    engine: str
    thresholds_version: int
    passed: bool
    failures: list[dict[str, Any]]
    audited_by: str

    @classmethod
    def of(cls, row: FairnessAudit) -> AuditSummary:
        return cls(
            id=row.id,
            created_at=row.created_at,
            kind=row.kind,
            model=row.model,
            model_version=row.model_version,
            artifact_sha256=row.artifact_sha256,
            dataset=row.dataset,
            dataset_hash=row.dataset_hash,
            split=row.split,
            window_start=row.window_start,
            window_end=row.window_end,
            sensitive=json.loads(row.sensitive),
            n_rows=row.n_rows,
            engine=row.engine,
            thresholds_version=row.thresholds_version,
            passed=row.passed,
            failures=json.loads(row.verdict)["failures"],
            audited_by=row.audited_by,
        )


class AuditOut(AuditSummary):
    """An audit with its full result (per-group metrics, disparities, intervals)."""

    bootstrap: int
    seed: int
    result: dict[str, Any]

    @classmethod
    def of(cls, row: FairnessAudit) -> AuditOut:
        summary = AuditSummary.of(row).model_dump()
        return cls(**summary, bootstrap=row.bootstrap, seed=row.seed, result=json.loads(row.result))


class ThresholdsOut(BaseModel):
    """A fairness thresholds version."""

    version: int
    created_at: datetime
    author: str
    reason: str
    document: dict[str, Any]
    diff: dict[str, Any]

    @classmethod
    def of(cls, row: ThresholdVersion) -> ThresholdsOut:
        return cls(
            version=row.version,
            created_at=row.created_at,
            author=row.author,
            reason=row.reason,
            document=json.loads(row.document),
            diff=json.loads(row.diff),
        )


class ThresholdsUpdate(BaseModel):
    """A whole new thresholds document (``policies/fairness.yaml`` shape) and why."""

    model_config = ConfigDict(extra="forbid")
    document: dict[str, Any]
    reason: str = Field(min_length=MIN_REASON_LENGTH, max_length=2000)
    base_version: StrictDbInt | None = Field(
        default=None, description="The version edited; refused if the current one is newer."
    )


class OverrideCreate(BaseModel):
    """Approve a version that fails the fairness gate, with a written justification."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(pattern=_NAME)
    version: str = Field(pattern=_NAME)
    justification: str = Field(min_length=MIN_JUSTIFICATION_LENGTH, max_length=4000)


class OverrideOut(BaseModel):
    """A recorded override of a failed fairness gate, with its justification."""

    id: int
    created_at: datetime
    model: str
    model_version: str
    artifact_sha256: str
    audit_id: int | None
    thresholds_version: int
    failures: list[dict[str, Any]]
    justification: str
    approved_by: str

    @classmethod
    def of(cls, row: GateOverride) -> OverrideOut:
        return cls(
            id=row.id,
            created_at=row.created_at,
            model=row.model,
            model_version=row.model_version,
            artifact_sha256=row.artifact_sha256,
            audit_id=row.audit_id,
            thresholds_version=row.thresholds_version,
            failures=json.loads(row.failures),
            justification=row.justification,
            approved_by=row.approved_by,
        )


class GateStatusOut(BaseModel):
    """What the gate would decide for a version now."""

    model: str
    version: str
    passed: bool
    outcome: Outcome = Field(
        description="the audit's verdict: pass, fail, or insufficient evidence (every failure "
        "depends on a group below min_group_size)"
    )
    basis: Literal["audit", "override", "none"]
    artifact_sha256: str
    thresholds_version: int | None
    audit_id: int | None
    override_id: int | None
    failures: list[dict[str, Any]]

    @classmethod
    def of(cls, model: str, version: str, status: GateStatus) -> GateStatusOut:
        return cls(model=model, version=version, **status.to_dict())


class MitigationCreate(BaseModel):
    """Fit a ThresholdOptimizer post-processing and register it as a new version."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(pattern=_NAME)
    version: str | None = Field(default=None, pattern=_NAME)
    dataset: str = Field(default="adult", pattern=_NAME)
    sensitive: str = Field(pattern=_FEATURE)
    constraints: ConstraintName = "demographic_parity"
    new_version: str | None = Field(default=None, pattern=_NAME)
    epsilon: StrictFloat | None = Field(
        default=None,
        gt=0,
        le=100,
        description="The ε the noisy release of a private dataset spends, charged to its "
        "ledger; default mitigation.epsilon of privacy.yaml. Unused on public rows.",
    )


class MitigationOut(BaseModel):
    """A mitigated model version: its thresholds, trade-off and privacy claim."""

    model: str
    base_version: str
    version: str
    artifact_sha256: str
    tradeoff: dict[str, Any]
    postprocessing: dict[str, Any]
    plot_file: str
    plot_png_base64: str
    privacy_claim: dict[str, Any] = Field(
        description="The version's DP claim: the composition of every access that produced "
        "it, or no guarantee"
    )
    ledger_run: int | None = Field(description="the mitigation's ledger run (None: public rows)")


class MonitorCreate(BaseModel):
    """Audit live predictions that received outcomes, in ``[since, until)``."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(pattern=_NAME)
    version: str | None = Field(default=None, pattern=_NAME)
    since: UtcDatetime
    until: UtcDatetime
    sensitive: list[str] | None = Field(default=None, max_length=8)
    bootstrap: StrictInt = Field(default=0, ge=0, le=BOOTSTRAP_MAX)
    seed: StrictInt = Field(default=0, ge=0, le=SEED_MAX)


class FeedbackCreate(BaseModel):
    """The true outcome of a served prediction."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=64)
    label: str = Field(min_length=1, max_length=128, description="One of the model's labels.")
    row: StrictDbInt = Field(default=0, ge=0, description="Which record of a batch request.")
    sensitive: dict[str, str] | None = Field(
        default=None,
        max_length=8,
        description="Sensitive attributes the request's own input does not contain.",
    )


class FeedbackOut(BaseModel):
    """The outcome recorded for a served prediction."""

    model: str
    model_version: str
    recorded: bool = True
    attributes: list[str]
