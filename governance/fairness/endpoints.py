"""Routes of the fairness domain: audits, thresholds, the gate, overrides, mitigation, feedback.

Importing this module (the app does, for every domain) imports :mod:`governance.fairness.gate`,
which registers the promotion gate with the model registry.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from governance.api.dependencies import JobsDep, KeysDep, SettingsDep
from governance.api.deps import Authorize, Caller
from governance.audit import log as audit_log
from governance.db.base import DbInt
from governance.fairness.feedback import feedback
from governance.fairness.gate import gate_status, overrides
from governance.fairness.mitigation.budget import refusal_event
from governance.fairness.mitigation.new_version import MitigationComputed, MitigationPlan, mitigator
from governance.fairness.monitoring import MonitorPlan, compute_monitor, plan_monitor, store_monitor
from governance.fairness.result import FairnessResult
from governance.fairness.schemas import (
    AuditCreate,
    AuditOut,
    AuditSummary,
    FeedbackCreate,
    FeedbackOut,
    GateStatusOut,
    MitigationCreate,
    MitigationOut,
    MonitorCreate,
    OverrideCreate,
    OverrideOut,
    ThresholdsOut,
    ThresholdsUpdate,
)
from governance.fairness.service import AuditPlan, fairness
from governance.fairness.thresholds.versions import thresholds_store
from governance.kit.problems import responses
from governance.kit.transaction import SessionsDep, TransactionDep
from governance.privacy.ledger import BudgetExceeded
from governance.registry.service import registry

router = APIRouter(tags=["fairness"])

CanReadFairness = Annotated[Caller, Depends(Authorize("api:fairness", "read"))]
CanAudit = Annotated[Caller, Depends(Authorize("api:fairness", "audit"))]
CanWriteThresholds = Annotated[Caller, Depends(Authorize("api:fairness", "write"))]
CanMitigate = Annotated[Caller, Depends(Authorize("api:fairness", "mitigate"))]
CanOverride = Annotated[Caller, Depends(Authorize("api:models", "override"))]
CanGiveFeedback = Annotated[Caller, Depends(Authorize("api:feedback", "feedback"))]


@router.post(
    "/v1/fairness/audits",
    operation_id="create_bias_audit",
    status_code=201,
    responses=responses(404, 409, 422, 503),
)
async def create_audit(
    body: AuditCreate, sessions: SessionsDep, settings: SettingsDep, jobs: JobsDep, caller: CanAudit
) -> AuditOut:
    """Audit a registered model version on a dataset's evaluation split; the result is stored
    against the exact artifact (sha256) with its verdict under the current thresholds."""
    policies_dir = settings.policies_dir

    def plan() -> AuditPlan:
        with sessions.begin() as session:
            return fairness.plan_audit(
                session,
                caller.ctx,
                model=body.model,
                version=body.version,
                dataset=body.dataset,
                sensitive=body.sensitive,
                bootstrap=body.bootstrap,
                seed=body.seed,
                policies_dir=policies_dir,
            )

    # Checked in a short transaction, computed in the heavy-job queue with none open (so no
    # request waits on SQLite's write lock meanwhile), stored after a re-check in another.
    planned = await run_in_threadpool(plan)
    computed = await jobs.run("fairness.audit", fairness.compute_audit, planned)

    def store() -> AuditOut:
        with sessions.begin() as session:
            row = fairness.store_audit(
                session, caller.ctx, planned, computed, policies_dir=policies_dir
            )
            return AuditOut.of(row)

    return await run_in_threadpool(store)


@router.get("/v1/fairness/audits", operation_id="list_bias_audits", responses=responses())
def list_audits(
    caller: CanReadFairness,
    session: TransactionDep,
    model: str | None = None,
    version: str | None = None,
    kind: str | None = Query(default=None, pattern="^(dataset|live)$"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[AuditSummary]:
    """List fairness audits, newest first."""
    rows = fairness.list_audits(session, model=model, version=version, kind=kind, limit=limit)
    return [AuditSummary.of(r) for r in rows]


@router.get(
    "/v1/fairness/audits/{audit_id}", operation_id="get_bias_audit", responses=responses(404)
)
def get_audit(audit_id: DbInt, caller: CanReadFairness, session: TransactionDep) -> AuditOut:
    """One audit with its full result."""
    return AuditOut.of(fairness.get(session, audit_id))


@router.get(
    "/v1/fairness/thresholds", operation_id="get_fairness_thresholds", responses=responses()
)
def get_thresholds(
    settings: SettingsDep, caller: CanReadFairness, session: TransactionDep
) -> ThresholdsOut:
    """The current fairness thresholds (the version the gate uses)."""
    row = thresholds_store.current(session, policies_dir=settings.policies_dir)
    return ThresholdsOut.of(row)


@router.get(
    "/v1/fairness/thresholds/versions",
    operation_id="list_fairness_threshold_versions",
    responses=responses(),
)
def list_threshold_versions(
    caller: CanReadFairness,
    session: TransactionDep,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[ThresholdsOut]:
    """Every version of the thresholds, newest first, with author, reason and diff."""
    return [ThresholdsOut.of(r) for r in thresholds_store.history(session, limit=limit)]


@router.put(
    "/v1/fairness/thresholds",
    operation_id="update_fairness_thresholds",
    responses=responses(409, 422),
)
def update_thresholds(
    body: ThresholdsUpdate,
    settings: SettingsDep,
    caller: CanWriteThresholds,
    session: TransactionDep,
) -> ThresholdsOut:
    """Replace the thresholds with a new, immutable, audited version."""
    row = thresholds_store.update(
        session,
        caller.ctx,
        document=body.document,
        reason=body.reason,
        base_version=body.base_version,
        policies_dir=settings.policies_dir,
    )
    return ThresholdsOut.of(row)


@router.get("/v1/fairness/gate/{name}/{version}", responses=responses(404))
def get_gate_status(
    name: str, version: str, caller: CanReadFairness, session: TransactionDep
) -> GateStatusOut:
    """What the fairness gate would decide for this version now, and why."""
    row = registry.get(session, name, version)
    return GateStatusOut.of(row.name, row.version, gate_status(session, row))


@router.post(
    "/v1/fairness/overrides",
    operation_id="create_gate_override",
    status_code=201,
    responses=responses(404, 409, 422),
)
def create_override(
    body: OverrideCreate, caller: CanOverride, session: TransactionDep
) -> OverrideOut:
    """Approve a version that fails the gate (compliance officers; never its trainer or
    registrant), with a written justification."""
    row = overrides.override(
        session,
        caller.ctx,
        model=body.model,
        version=body.version,
        justification=body.justification,
    )
    return OverrideOut.of(row)


@router.get("/v1/fairness/overrides", operation_id="list_gate_overrides", responses=responses())
def list_overrides(
    caller: CanReadFairness,
    session: TransactionDep,
    model: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[OverrideOut]:
    """Gate overrides, newest first."""
    rows = overrides.list_overrides(session, model=model, limit=limit)
    return [OverrideOut.of(r) for r in rows]


@router.post("/v1/fairness/mitigations", status_code=201, responses=responses(404, 409, 422, 503))
async def create_mitigation(
    body: MitigationCreate,
    sessions: SessionsDep,
    settings: SettingsDep,
    jobs: JobsDep,
    caller: CanMitigate,
) -> MitigationOut:
    """Fit ThresholdOptimizer post-processing on the training split and register the result
    as a new model version; returns the before/after trade-off and its plot.

    On private rows the fit sees only noisy per-group histograms, charged to the dataset's
    privacy ledger (409 over its cap, ledger unchanged); the reservation commits before the
    noise is drawn."""
    settings = settings

    def plan() -> MitigationPlan:
        with sessions.begin() as session:
            return mitigator.plan(
                session,
                caller.ctx,
                model=body.model,
                version=body.version,
                dataset=body.dataset,
                sensitive=body.sensitive,
                constraints=body.constraints,
                new_version=body.new_version,
                policies_dir=settings.policies_dir,
                epsilon=body.epsilon,
            )

    def store(computed: MitigationComputed) -> MitigationOut:
        with sessions.begin() as session:
            out = mitigator.store(
                session,
                caller.ctx,
                planned,
                computed,
                models_dir=settings.resolved_models_dir,
                policies_dir=settings.policies_dir,
            )
            return MitigationOut(
                model=out.version.name,
                base_version=out.base.version,
                version=out.version.version,
                artifact_sha256=out.version.artifact_sha256,
                tradeoff=out.tradeoff,
                postprocessing=out.spec,
                plot_file=out.plot_path.name,
                plot_png_base64=base64.b64encode(out.plot_png).decode(),
                privacy_claim=out.claim,
                ledger_run=out.ledger_run,
            )

    def refused(exc: BudgetExceeded) -> None:
        # The refused transaction rolled back; the refusal itself is evidence, as in training.
        with sessions.begin() as session:
            audit_log.append(
                session,
                [
                    refusal_event(
                        caller.ctx,
                        exc,
                        dataset=body.dataset,
                        model=body.model,
                        base_version=body.version,
                    )
                ],
            )

    try:
        planned = await run_in_threadpool(plan)
    except BudgetExceeded as exc:
        await run_in_threadpool(refused, exc)
        raise
    # mkdtemp makes the folder 0700: the new artifact waits there for its registration.
    workdir = Path(tempfile.mkdtemp(prefix="warden-mitigate-"))
    try:
        compute = partial(mitigator.compute, planned, mitigated_by=caller.ctx.name, workdir=workdir)
        computed = await jobs.run("fairness.mitigate", compute)
        return await run_in_threadpool(store, computed)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@router.post(
    "/v1/fairness/monitor",
    operation_id="run_fairness_monitor",
    status_code=201,
    responses=responses(404, 409, 422, 503),
)
async def run_monitor(
    body: MonitorCreate,
    sessions: SessionsDep,
    settings: SettingsDep,
    jobs: JobsDep,
    caller: CanAudit,
) -> AuditOut:
    """Audit live predictions that received their outcomes in a time window (fast path)."""
    policies_dir = settings.policies_dir

    def plan() -> MonitorPlan:
        with sessions.begin() as session:
            return plan_monitor(
                session,
                model=body.model,
                version=body.version,
                since=body.since,
                until=body.until,
                sensitive=body.sensitive,
                bootstrap=body.bootstrap,
                seed=body.seed,
                policies_dir=policies_dir,
            )

    def store(result: FairnessResult) -> AuditOut:
        with sessions.begin() as session:
            row = store_monitor(session, caller.ctx, planned, result, policies_dir=policies_dir)
            return AuditOut.of(row)

    planned = await run_in_threadpool(plan)
    result = await jobs.run("fairness.monitor", compute_monitor, planned)
    return await run_in_threadpool(store, result)


@router.post(
    "/v1/feedback", status_code=201, tags=["feedback"], responses=responses(404, 409, 410, 422)
)
def give_feedback(
    body: FeedbackCreate, keys: KeysDep, caller: CanGiveFeedback, session: TransactionDep
) -> FeedbackOut:
    """Report the true outcome of one of your served predictions, by its request id."""
    outcome = feedback.record(
        session,
        caller.ctx,
        keys=keys,
        digest_key=keys.digest_key(),
        principal=caller.name,
        request_id=body.request_id,
        label=body.label,
        row=body.row,
        sensitive=body.sensitive,
    )
    return FeedbackOut(
        model=outcome.model,
        model_version=outcome.model_version,
        attributes=sorted(json.loads(outcome.group_key)),
    )
