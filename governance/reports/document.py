"""The report data model: one typed document, rendered to JSON, HTML and PDF.

The published JSON Schema (``docs/report.schema.json``) is generated from these classes
(``Report.model_json_schema()``); a test keeps the two identical. Every number in a report is
read from the database, the registry's artifacts or the policy files when the report is built.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_FORMAT = "warden.report/1"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- meta -----------------------------------------------------------------------------------


class Checkpoint(_Doc):
    tree_size: int
    root_hash: str = Field(description="hex sha256 Merkle root (RFC 6962)")
    created_at: datetime
    note: str = Field(description="the C2SP signed note, verifiable with the log's public key")


class LogVerification(_Doc):
    verified: bool
    tree_size: int
    entries_checked: int
    checkpoints_checked: int
    latest_checkpoint: int | None
    root_hash: str | None
    seconds: float
    error: str | None = None
    first_bad_seq: int | None = None


class CheckpointChain(_Doc):
    previous: Checkpoint | None = Field(
        description="the checkpoint the previous report ended at (None: the first report)"
    )
    latest: Checkpoint = Field(description="this report's anchor checkpoint")
    consistency_proof: list[str] = Field(
        description="hex RFC 9162 consistency proof from previous to latest: reports chain"
    )


class InclusionProof(_Doc):
    seq: int = Field(description="the entry proved: the last entry of the report's range")
    tree_size: int = Field(description="the size of the anchoring checkpoint's tree")
    leaf_hash: str = Field(description="hex RFC 6962 leaf hash of the entry's canonical bytes")
    proof: list[str] = Field(description="hex RFC 9162 audit path, from the leaf's sibling up")


class AuditLogRange(_Doc):
    origin: str
    public_key: str = Field(description="C2SP verifier key of the log")
    first_seq: int | None = Field(description="first entry in the period (None: none)")
    last_seq: int | None = Field(
        description="last entry of the report's range: the period's last entry that the anchor "
        "covers"
    )
    entries_in_period: int
    entries_after_anchor: int = Field(
        default=0,
        description="entries of the period appended after the anchor was signed (while the "
        "report was generated): left to the next report",
    )
    tree_size_at_generation: int
    checkpoint: Checkpoint | None = Field(
        description="the anchor: the checkpoint signed for this report, covering the range's "
        "last entry (else the latest one found)"
    )
    checkpoint_covers_period: bool
    inclusion_proof: InclusionProof | None = Field(
        default=None, description="the range's last entry in the anchor's tree"
    )
    chain: CheckpointChain | None = Field(
        default=None, description="how this report's log extends the previous report's"
    )
    verification: LogVerification


class Generator(_Doc):
    name: str
    version: str


class Meta(_Doc):
    format: Literal["warden.report/1"] = "warden.report/1"
    id: str
    period_from: datetime
    period_to: datetime
    model: str | None = Field(description="the report is restricted to this model, if set")
    generated_at: datetime
    generated_by: str
    generator: Generator
    audit_log: AuditLogRange


# --- system and models ----------------------------------------------------------------------


class Deployment(_Doc):
    form: str
    database: Literal["sqlite", "postgresql", "other"]
    environment: str
    device: str
    key_provider: str
    serving_models: list[str]


class System(_Doc):
    name: str = Field(description="the governance service the AI systems are deployed behind")
    purpose: str = Field(description="what the governed AI systems are for (their model cards)")
    version: str
    deployment: Deployment


class ModelEntry(_Doc):
    name: str
    version: str
    stage: str
    registered_at: datetime
    registered_by: str
    trained_by: str | None
    artifact_sha256: str
    model_card_sha256: str | None
    model_card_verified: bool = Field(description="the card's sha256 matches the manifest's")
    model_card: dict[str, Any] | None


class ModelInventory(_Doc):
    count: int
    models: list[ModelEntry]


# --- privacy --------------------------------------------------------------------------------


class ModelPrivacy(_Doc):
    model: str
    version: str
    private: bool = Field(description="the privacy ledger covers a DP claim for this artifact")
    dp_claim: Literal["ledger", "none", "void"] = Field(
        description="ledger: covered; none: no DP guarantee; void: void DP claim until retrained"
    )
    dp_claim_statement: str
    dp_claim_uncovered: bool = Field(
        description="the manifest claims DP that the ledger does not cover: a finding"
    )
    epsilon: float | None
    delta: float | None
    accountant: str | None
    noise_multiplier: float | None
    sample_rate: float | None
    steps: int | None
    privacy_unit: str | None
    dataset: str | None


class LedgerRun(_Doc):
    id: str
    status: str
    started_at: datetime | None
    noise_multiplier: float | None
    sample_rate: float | None
    steps: int | None


class DatasetBudget(_Doc):
    dataset: str
    cap_epsilon: float | None
    delta: float | None
    spent_epsilon: float | None = Field(
        description="all runs recomposed with the PRV accountant; null when unbounded "
        "(a non-private run was charged)"
    )
    spent_epsilon_naive_sum: float | None
    runs: list[LedgerRun]


class Privacy(_Doc):
    models: list[ModelPrivacy]
    ledger_available: bool = Field(description="False while no privacy ledger is installed")
    datasets: list[DatasetBudget]


# --- fairness -------------------------------------------------------------------------------


class Interval(_Doc):
    low: float | None
    high: float | None


class GroupRow(_Doc):
    label: str
    count: int
    reliable: bool
    selection_rate: float | None
    selection_rate_ci: Interval | None
    accuracy: float | None
    true_positive_rate: float | None
    true_positive_rate_ci: Interval | None
    false_positive_rate: float | None
    false_positive_rate_ci: Interval | None


class DisparityRow(_Doc):
    measure: str
    value: float | None
    ci: Interval | None


class FeatureRow(_Doc):
    name: str
    groups: list[GroupRow]
    disparities: list[DisparityRow]


class FairnessAuditRow(_Doc):
    id: int
    created_at: datetime
    kind: str
    model: str
    model_version: str | None
    artifact_sha256: str | None
    dataset: str | None
    n_rows: int
    confidence_level: float | None
    bootstrap: int
    thresholds_version: int
    passed: bool
    audited_by: str
    failures: list[dict[str, Any]]
    features: list[FeatureRow]


class ThresholdsRow(_Doc):
    version: int
    created_at: datetime
    author: str
    reason: str
    document: dict[str, Any]


class GateDecision(_Doc):
    seq: int
    time: datetime
    model: str | None
    version: str | None
    decision: str
    reason: str
    actor: str | None


class OverrideRow(_Doc):
    id: int
    created_at: datetime
    model: str
    model_version: str
    artifact_sha256: str
    audit_id: int | None
    thresholds_version: int
    approved_by: str
    justification: str
    failures: list[dict[str, Any]]
    audit_seq: int | None = Field(default=None, description="the fairness.override entry")


class Fairness(_Doc):
    thresholds: list[ThresholdsRow]
    audits: list[FairnessAuditRow]
    gate_decisions: list[GateDecision]
    overrides: list[OverrideRow]


# --- access control -------------------------------------------------------------------------


class PolicySnapshot(_Doc):
    version: int
    sha256: str
    created_at: datetime
    rules: list[list[str]]


class PolicyChange(_Doc):
    version: int
    created_at: datetime
    kind: str
    author: str
    approved_by: str | None
    reason: str
    added: list[list[str]]
    removed: list[list[str]]


class RoleHoldingRow(_Doc):
    member: str
    member_kind: Literal["principal", "role"]
    role: str
    granted_at: datetime
    granted_in_version: int
    granted_by: str
    grant_approved_by: str | None
    grant_reason: str
    revoked_at: datetime | None
    revoked_in_version: int | None
    revoked_by: str | None
    revoke_approved_by: str | None
    revoke_reason: str | None


class PrivilegedPrincipal(_Doc):
    name: str
    roles: list[str]
    disabled: bool | None = Field(description="None: the name has no principal row")
    active_keys: int


class AccessControl(_Doc):
    policy: PolicySnapshot | None
    changes: list[PolicyChange]
    role_timeline: list[RoleHoldingRow]
    privileged_roles: list[str]
    privileged_actions: list[str]
    privileged_principals: list[PrivilegedPrincipal]


# --- usage ----------------------------------------------------------------------------------


class CountRow(_Doc):
    key: str
    allowed: int
    denied: int
    other: int
    total: int


class ReasonRow(_Doc):
    reason: str
    count: int


class TimeBucket(_Doc):
    start: datetime
    allowed: int
    denied: int
    other: int


class DenialBurst(_Doc):
    actor: str | None
    window_start: datetime
    denials: int


class CallCounts(_Doc):
    requests: int
    allowed: int
    denied: int
    other: int


class Usage(_Doc):
    requests: int = Field(description="every audited API call: predictions and administration")
    allowed: int
    denied: int
    other: int
    predictions: CallCounts = Field(
        description="calls to a model's predict route (served, or refused before serving)"
    )
    administrative: CallCounts = Field(
        description="every other call: registry, policy, keys, reports, audit reads"
    )
    explanation: str = Field(default="", description="how the totals relate")
    by_model: list[CountRow]
    by_principal: list[CountRow]
    denials_by_reason: list[ReasonRow]
    bucket_seconds: int
    timeline: list[TimeBucket]
    burst_window_seconds: int
    burst_threshold: int
    denial_bursts: list[DenialBurst]


# --- data protection and logging ------------------------------------------------------------


class KeyCounts(_Doc):
    total: int
    active: int = Field(description="keys that seal new records")
    decrypt_only: int = Field(description="retired by a rotation: they open old records only")
    destroyed: int = Field(description="erased (crypto-shredded): their records cannot be read")
    max_version: int
    kek_ids: list[str]
    explanation: str = Field(default="", description="how to read the counts")


class RotationRow(_Doc):
    id: int
    kind: str
    rotated_at: datetime
    rotated_by: str
    reason: str
    from_kek: str | None
    to_kek: str | None
    keys_affected: int


class ErasureRow(_Doc):
    id: str
    subject_ref: str
    erased_at: datetime
    erased_by: str
    dek_ids: list[str]
    records_affected: int
    audit_seq: int | None


class PurgeRow(_Doc):
    seq: int
    time: datetime
    actor: str | None
    total: int
    dry_run: bool
    deleted: dict[str, int]


class DataProtection(_Doc):
    encryption_scheme: str
    data_keys: KeyCounts
    rotations: list[RotationRow]
    erasures: list[ErasureRow]
    retention: dict[str, Any]
    purges: list[PurgeRow]
    records_stored: int


class EventCount(_Doc):
    event_type: str
    count: int


class Logging(_Doc):
    retention_min_days: int
    clock_source: str
    entry_format: str
    hash_algorithm: str
    checkpoint_format: str
    checkpoints_total: int
    log_verified: bool
    entries_by_type: list[EventCount]


# --- AI systems -----------------------------------------------------------------------------


class ModelCardView(_Doc):
    """The Mitchell et al. fields an auditor reads first, taken from the verified card."""

    intended_use: str | None
    out_of_scope_uses: list[str]
    data_provenance: str | None
    metrics: dict[str, float]
    ethical_considerations: list[str]
    caveats: list[str]


class SchemaBound(_Doc):
    feature: str
    type: str
    bounds: str = Field(description="categories, or the numeric range the manifest accepts")


class DataGovernance(_Doc):
    dataset: str | None
    content_hash: str | None
    file_hashes: dict[str, str]
    provenance: str | None
    privacy_unit: str | None
    input_schema: list[SchemaBound]
    dp_claim: str
    budget_cap_epsilon: float | None
    budget_spent_epsilon: float | None


class MeasureCheck(_Doc):
    feature: str
    measure: str
    value: float | None
    limit: str = Field(description="the threshold the value is judged against")
    passed: bool


class FairnessEvidence(_Doc):
    audit_id: int
    created_at: datetime
    passed: bool
    thresholds_version: int
    checks: list[MeasureCheck]
    excluded_groups: list[str] = Field(
        description="feature=group labels too small to judge (flagged, not silently dropped)"
    )


class ServingEvent(_Doc):
    seq: int
    time: datetime
    event: str
    actor: str | None


class AISystem(_Doc):
    anchor: str = Field(description="the section id the findings link to")
    name: str
    version: str
    stage: str
    in_scope_because: list[str]
    purpose: str | None
    model_card: ModelCardView | None
    data_governance: DataGovernance
    fairness: list[FairnessEvidence]
    gate: list[GateDecision]
    overrides: list[OverrideRow]
    serving_history: list[ServingEvent]
    predictions_in_period: int = Field(
        description="allowed predict calls to this model name in the period (all versions)"
    )


# --- organisation (GDPR Art. 30 record, filled by the officer) -------------------------------


class Organisation(_Doc):
    source: str = Field(description="the file the officer fills (policies/organisation.yaml)")
    controller: str | None
    representative: str | None
    dpo: str | None
    purposes: list[str]
    data_categories: list[str]
    subject_categories: list[str]
    recipients: list[str]
    transfers: list[str]
    retention: str | None
    security_measures: list[str]
    documents: dict[str, str] = Field(
        description="documents the organisation holds (e.g. dpia) by name -> reference"
    )
    missing: list[str] = Field(description="Art. 30 fields the file leaves empty")


# --- control status, findings and frameworks -------------------------------------------------

ControlStatus = Literal["effective", "exception", "gap", "not_applicable"]


class EvidenceRef(_Doc):
    section: str = Field(description="the id of the report section holding the evidence")
    audit_seqs: list[int] = Field(description="audit log entries that record it")


class Control(_Doc):
    id: str
    title: str
    section: str
    evidence: list[str] = Field(description="JSON Pointers into this report")
    status: ControlStatus
    rule: str = Field(description="the rule (docs/reports.md) that decided the status")
    note: str
    findings: list[str] = Field(description="ids of the findings against this control")


class Finding(_Doc):
    id: str
    severity: Literal["high", "medium", "low"]
    control: str
    title: str
    detail: str
    evidence: EvidenceRef
    to_close: str = Field(description="what would close the finding")


class FrameworkItem(_Doc):
    ref: str = Field(description="the article, heading or control of the framework")
    title: str
    status: ControlStatus
    controls: list[str] = Field(description="Warden controls whose status this item takes")
    evidence: list[str] = Field(description="report section ids that answer the item")
    statement: str = Field(description="what the evidence shows, or what is missing")
    organisation: dict[str, str] = Field(
        description="values the organisation file supplies for this item"
    )


class Framework(_Doc):
    id: str
    name: str
    source: str
    items: list[FrameworkItem]


class StatusCount(_Doc):
    status: ControlStatus
    count: int


class Summary(_Doc):
    period_from: datetime
    period_to: datetime
    systems: list[str] = Field(description="name:version of each AI system in scope")
    verified: bool = Field(
        description="the log verified and a signed checkpoint covers the report's range"
    )
    verification: str
    controls: list[StatusCount]
    findings: list[Finding]


class Report(_Doc):
    meta: Meta
    summary: Summary
    system: System
    systems: list[AISystem]
    organisation: Organisation
    models: ModelInventory
    privacy: Privacy
    fairness: Fairness
    access_control: AccessControl
    usage: Usage
    data_protection: DataProtection
    logging: Logging
    controls: list[Control]
    frameworks: list[Framework]


def report_json_schema() -> dict[str, Any]:
    """The published JSON Schema of ``report.json`` (draft 2020-12)."""
    schema = Report.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://warden.dev/schemas/report.schema.json",
        "title": "Warden compliance report",
        **schema,
    }
