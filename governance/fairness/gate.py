"""The fairness deployment gate, and the compliance officer's override of it.

Importing this module registers :func:`fairness_gate` with the model registry, so every
promotion (API or ``warden models promote``) passes through it. A version may serve when

- the newest dataset audit of its exact artifact (sha256 of its manifest) passes the current
  threshold version (an audit made under older thresholds is re-judged under the current ones,
  unless the minimum group size changed, which makes its numbers stale), or
- a compliance officer overrode the gate for that artifact with a written justification. The
  officer may not be whoever trained or registered the model (separation of duties).

Anything else is refused with a 409 naming each failing measure: no thresholds, no audit, a
failing audit, an artifact that changed. A measure that passes only because a group below
``min_group_size`` was left out is ``insufficient evidence``: refused like a failure, it needs
an officer's override or an audit on more evaluation data. Every decision is a
``fairness.gate`` audit event. An allow is appended in the promotion's transaction; a deny is
written once that transaction has rolled back (the refusal rolls it back, and on SQLite it
holds the write lock until then).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.fairness.errors import (
    FairnessError,
    GateRefused,
    OverrideRefused,
    SeparationOfDuties,
)
from governance.fairness.metrics import evaluate_thresholds
from governance.fairness.models import FairnessAudit, GateOverride, ThresholdVersion
from governance.fairness.result import FAIL, INSUFFICIENT_EVIDENCE, Outcome, result_from_dict
from governance.fairness.service import fairness
from governance.fairness.thresholds.versions import thresholds_store
from governance.kit import metrics
from governance.kit.context import Context
from governance.kit.events import AuditEvent
from governance.registry.models import ModelVersion
from governance.registry.service import register_promotion_gate, registry

logger = logging.getLogger(__name__)

MIN_JUSTIFICATION_LENGTH: Final[int] = 40
_PENDING_KEY: Final[str] = "fairness.gate.pending_denials"
_ARMED_KEY: Final[str] = "fairness.gate.listeners_armed"

Basis = Literal["audit", "override", "none"]


@dataclass(frozen=True)
class GateStatus:
    """What the gate would decide for a version now, and on what basis."""

    passed: bool
    basis: Basis
    artifact_sha256: str
    thresholds_version: int | None
    audit_id: int | None = None
    override_id: int | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome:
        """The audit's verdict: ``pass``, ``fail``, or ``insufficient evidence`` when every
        failure is a measure that depends on a group too small to judge."""
        if not self.failures:
            return "pass"
        if all(f.get("outcome") == INSUFFICIENT_EVIDENCE for f in self.failures):
            return INSUFFICIENT_EVIDENCE
        return FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "outcome": self.outcome,
            "basis": self.basis,
            "artifact_sha256": self.artifact_sha256,
            "thresholds_version": self.thresholds_version,
            "audit_id": self.audit_id,
            "override_id": self.override_id,
            "failures": self.failures,
        }


def _failure(reason: str) -> dict[str, Any]:
    return {
        "feature": "*",
        "measure": "*",
        "value": None,
        "bound": None,
        "limit": None,
        "reason": reason,
        "outcome": FAIL,
    }


def _judge_audit(
    audit: FairnessAudit, current: ThresholdVersion, model_name: str
) -> list[dict[str, Any]]:
    """The failures of a stored audit under the current thresholds (empty: it passes)."""
    stored = json.loads(audit.verdict)
    # A verdict stored without an outcome predates the small-group check: judge it again.
    if audit.thresholds_version == current.version and "outcome" in stored:
        return list(stored["failures"])
    limits = thresholds_store.policy(current).thresholds_for(model_name)
    try:
        result = result_from_dict(json.loads(audit.result))
    except FairnessError as exc:
        return [_failure(f"audit {audit.id} cannot be re-judged: {exc.message}; re-run it")]
    if result.min_group_size != limits.min_group_size:
        return [
            _failure(
                f"audit {audit.id} used min_group_size {result.min_group_size}; the current "
                f"thresholds require {limits.min_group_size}: re-run the audit"
            )
        ]
    return [
        f.to_dict()
        for f in evaluate_thresholds(
            result,
            limits.measures,
            features=limits.features_to_check([a.name for a in result.audits]),
        ).failures
    ]


def latest_override(session: Session, artifact_sha256: str) -> GateOverride | None:
    """The newest override recorded for exactly this artifact."""
    return session.scalar(
        select(GateOverride)
        .where(GateOverride.artifact_sha256 == artifact_sha256)
        .order_by(GateOverride.id.desc())
        .limit(1)
    )


def gate_status(session: Session, row: ModelVersion) -> GateStatus:
    """Decide the gate for a version without side effects (nothing is written).

    Args:
        session: a session to read with.
        row: the registered version.

    Returns:
        The decision with its basis and, when it fails, every reason.
    """
    current = session.scalar(
        select(ThresholdVersion).order_by(ThresholdVersion.version.desc()).limit(1)
    )
    audit = fairness.latest_for_artifact(session, row.artifact_sha256)
    failures: list[dict[str, Any]]
    if current is None:
        # No audit has run yet (an audit stores the thresholds it was judged by).
        failures = [_failure("no fairness audit of this exact artifact (no audit has run yet)")]
    elif audit is None:
        failures = [_failure("no fairness audit of this exact artifact")]
    else:
        failures = _judge_audit(audit, current, row.name)
    version = current.version if current is not None else None
    audit_id = audit.id if audit is not None else None
    if not failures:
        return GateStatus(True, "audit", row.artifact_sha256, version, audit_id=audit_id)
    override = latest_override(session, row.artifact_sha256)
    if override is not None:
        return GateStatus(
            True,
            "override",
            row.artifact_sha256,
            version,
            audit_id=audit_id,
            override_id=override.id,
            failures=failures,
        )
    return GateStatus(False, "none", row.artifact_sha256, version, audit_id, failures=failures)


def _describe(failures: list[dict[str, Any]]) -> str:
    parts = []
    for item in failures:
        prefix = "" if item.get("feature") in (None, "*") else f"{item['feature']}: "
        parts.append(prefix + str(item.get("reason")))
    return "; ".join(parts)


def fairness_gate(session: Session, ctx: Context, row: ModelVersion) -> None:
    """The promotion gate registered with the model registry.

    Raises:
        GateRefused: the version has no passing audit of its artifact and no override (409,
            ``failures`` in the problem body).
    """
    status = gate_status(session, row)
    decision = ctx.event(
        "fairness.gate",
        "promote",
        decision="allow" if status.passed else "deny",
        reason=status.basis if status.passed else "fairness gate failed",
        resource={"model": row.name, "version": row.version},
        model_version=row.version,
        details=status.to_dict(),
    )
    metrics.GATE_DECISIONS.labels("allow" if status.passed else "deny", status.basis).inc()
    if status.passed:
        audit_log.append(session, [decision])
        return
    _log_after_rollback(session, decision)
    raise GateRefused(
        f"model {row.name} version {row.version} fails the fairness gate "
        f"({status.outcome}): {_describe(status.failures)}",
        extra={
            "outcome": status.outcome,
            "failures": status.failures,
            "artifact_sha256": status.artifact_sha256,
            "audit_id": status.audit_id,
            "thresholds_version": status.thresholds_version,
        },
    )


def _log_after_rollback(session: Session, denial: AuditEvent) -> None:
    """Append ``denial`` once the promotion's transaction ends (its rollback would erase it)."""
    session.info.setdefault(_PENDING_KEY, []).append(denial)
    if session.info.get(_ARMED_KEY):
        return  # listeners stay armed for the session's life; they no-op with nothing pending
    session.info[_ARMED_KEY] = True
    bind = session.get_bind()

    def take_pending(current: Session) -> list[AuditEvent]:
        events: list[AuditEvent] = current.info.pop(_PENDING_KEY, [])
        return events

    def after_rollback(current: Session) -> None:
        events = take_pending(current)
        if not events:
            return
        try:
            with Session(bind=bind) as other, other.begin():
                audit_log.append(other, events)
        except Exception as exc:  # the refusal stands either way (fail closed)
            logger.error("fairness gate denial could not be audited: %s", type(exc).__name__)

    def before_commit(current: Session) -> None:
        # The caller swallowed the refusal and commits: the denial goes in with it.
        events = take_pending(current)
        if events:
            audit_log.append(current, events)

    event.listen(session, "after_rollback", after_rollback)
    event.listen(session, "before_commit", before_commit)


class OverrideService:
    """Records compliance officers' overrides of the gate; stateless."""

    def override(
        self,
        session: Session,
        ctx: Context,
        *,
        model: str,
        version: str,
        justification: str,
    ) -> GateOverride:
        """Approve a version that does not pass the gate, with a written justification.

        Args:
            session: the caller's transaction.
            ctx: the approving compliance officer (the API checks ``api:models override``).
            model: the model name.
            version: the version to approve; the override binds its artifact's sha256.
            justification: why this version may serve despite failing; stored and audited.

        Returns:
            The stored override.

        Raises:
            ModelNotFound: no such version.
            SeparationOfDuties: the officer trained or registered this model version.
            OverrideRefused: the justification is too short, the version passes the gate
                without one, or an override already covers its artifact.
        """
        row = registry.get(session, model, version)
        involved = {n for n in (row.trained_by, row.registered_by) if n}
        if ctx.name in involved:
            raise SeparationOfDuties(
                f"{ctx.name} trained or registered {model} {version} and may not approve it"
            )
        text = justification.strip()
        if len(text) < MIN_JUSTIFICATION_LENGTH:
            raise OverrideRefused(
                f"a written justification of at least {MIN_JUSTIFICATION_LENGTH} characters "
                "is required",
                status_code=422,
            )
        current = thresholds_store.current(session)
        status = gate_status(session, row)
        if status.passed and status.basis == "audit":
            raise OverrideRefused(
                f"{model} {version} passes the fairness gate (audit {status.audit_id}); "
                "there is nothing to override"
            )
        if status.basis == "override":
            raise OverrideRefused(
                f"{model} {version} is already approved by override {status.override_id}"
            )
        override = GateOverride(
            model=row.name,
            model_version=row.version,
            artifact_sha256=row.artifact_sha256,
            audit_id=status.audit_id,
            thresholds_version=current.version,
            failures=json.dumps(status.failures, sort_keys=True, allow_nan=False),
            justification=text,
            approved_by=ctx.name[:64],
            approved_by_principal_id=ctx.actor.principal_id,
        )
        session.add(override)
        session.flush()
        audit_log.append(
            session,
            [
                ctx.event(
                    "fairness.override",
                    "override",
                    resource={"model": row.name, "version": row.version},
                    model_version=row.version,
                    details={
                        "override_id": override.id,
                        "artifact_sha256": row.artifact_sha256,
                        "audit_id": status.audit_id,
                        "thresholds_version": current.version,
                        "failures": status.failures,
                        "justification": text,
                        "trained_by": row.trained_by,
                        "registered_by": row.registered_by,
                    },
                )
            ],
        )
        return override

    def list_overrides(
        self, session: Session, *, model: str | None = None, limit: int = 100
    ) -> list[GateOverride]:
        """Overrides, newest first."""
        query = select(GateOverride).order_by(GateOverride.id.desc()).limit(limit)
        if model is not None:
            query = query.where(GateOverride.model == model)
        return list(session.scalars(query))


overrides = OverrideService()

register_promotion_gate(fairness_gate)
