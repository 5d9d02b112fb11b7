"""Bias audits of registered models, stored against the exact artifact they judged.

``audit_model`` loads a registered version (verifying every hash against the registered
manifest digest), predicts on the dataset's evaluation (test) split through the serving code
path, audits the decisions with :func:`~governance.fairness.metrics.audit_predictions`, judges
them under the current threshold version, and stores result and verdict with the artifact's
sha256 and a ``fairness.audit`` event. The API runs it as three steps (plan, compute with no
transaction open, store after a re-check) so that a long bootstrap never holds the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.datasets.models import Dataset
from governance.datasets.service import datasets as dataset_service
from governance.fairness.errors import AuditConflict, AuditInputError, AuditNotFound, NotTabular
from governance.fairness.metrics import audit_predictions, evaluate_thresholds
from governance.fairness.models import DATASET, FairnessAudit
from governance.fairness.result import FairnessResult, GateVerdict
from governance.fairness.thresholds.bounds import ModelThresholds
from governance.fairness.thresholds.versions import thresholds_store
from governance.kit.context import Context
from governance.registry.service import registry

EVALUATION_SPLIT: Final[str] = "test"
MAX_BOOTSTRAP: Final[int] = 2000


def _dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


def failure_summary(verdict: GateVerdict) -> list[dict[str, Any]]:
    """The verdict's failures as JSON (feature, measure, value, bound, limit, reason)."""
    return [f.to_dict() for f in verdict.failures]


def _require_tabular(artifact_dir: str, sha256: str, model: str, version: str) -> None:
    """Refuse a model whose input is a tensor (a manifest that does not verify is left to the
    audit's own loading, which reports it)."""
    from inference.artifact import read_manifest
    from inference.errors import ManifestError

    try:
        manifest = read_manifest(artifact_dir, expected_sha256=sha256)
    except ManifestError:
        return
    if manifest.input_tensor is not None:
        raise NotTabular(model, version)


def _judge(result: FairnessResult, limits: ModelThresholds) -> GateVerdict:
    return evaluate_thresholds(
        result,
        limits.measures,
        features=limits.features_to_check([a.name for a in result.audits]),
    )


def _window(start: datetime | None, end: datetime | None) -> list[str | None] | None:
    if start is None:
        return None
    return [start.isoformat(), end.isoformat() if end is not None else None]


@dataclass(frozen=True)
class AuditPlan:
    """What an audit reads from the database, taken in a short transaction before it computes.

    ``dataset`` is detached from its session: the computation reads its files, not the database.
    """

    model: str
    model_version: str
    artifact_dir: str
    artifact_sha256: str
    dataset: Dataset
    features: list[str]
    bootstrap: int
    seed: int
    thresholds_version: int
    limits: ModelThresholds


@dataclass(frozen=True)
class AuditComputed:
    """An audit's result and verdict, computed with no transaction open."""

    result: FairnessResult
    verdict: GateVerdict
    dataset_name: str
    dataset_hash: str


class FairnessAuditService:
    """Runs, stores and reads fairness audits; stateless.

    An audit is three steps so that its computation never holds a transaction (on SQLite, the
    write lock every other request needs): :meth:`plan_audit` reads and checks in a short
    transaction, :meth:`compute_audit` predicts and bootstraps with none open, and
    :meth:`store_audit` re-checks what may have changed meanwhile and writes, in another short
    one. :meth:`audit_model` runs the three in one caller's transaction (the CLI).
    """

    def audit_model(
        self,
        session: Session,
        ctx: Context,
        *,
        model: str,
        version: str | None = None,
        dataset: str = "adult",
        sensitive: Sequence[str] | None = None,
        bootstrap: int = 200,
        seed: int = 0,
        policies_dir: Path | None = None,
    ) -> FairnessAudit:
        """Audit a registered model version on a dataset's evaluation split and store it.

        Args:
            session: the caller's transaction.
            ctx: who runs the audit.
            model: the registered model's name.
            version: its version; None audits the serving version (else the newest).
            dataset: the dataset to evaluate on (its test split).
            sensitive: the sensitive attributes to audit (and their intersection); None audits
                every attribute the dataset declares.
            bootstrap: bootstrap replicates for the confidence intervals (0 skips them).
            seed: seeds the bootstrap.
            policies_dir: where the thresholds seed lives, if none is stored yet.

        Returns:
            The stored audit row (``passed`` is the verdict under the current thresholds).

        Raises:
            ModelNotFound: no such model version.
            UnknownDataset: no such dataset.
            AuditInputError: the artifact does not verify, the dataset does not fit the model,
                or a sensitive attribute is not declared by the dataset.
        """
        plan = self.plan_audit(
            session,
            ctx,
            model=model,
            version=version,
            dataset=dataset,
            sensitive=sensitive,
            bootstrap=bootstrap,
            seed=seed,
            policies_dir=policies_dir,
        )
        computed = self.compute_audit(plan)
        return self.store_audit(session, ctx, plan, computed, policies_dir=policies_dir)

    def plan_audit(
        self,
        session: Session,
        ctx: Context,
        *,
        model: str,
        version: str | None = None,
        dataset: str = "adult",
        sensitive: Sequence[str] | None = None,
        bootstrap: int = 200,
        seed: int = 0,
        policies_dir: Path | None = None,
    ) -> AuditPlan:
        """Check an audit's inputs and read what it needs (arguments as :meth:`audit_model`).

        Raises:
            ModelNotFound, UnknownDataset, AuditInputError: as :meth:`audit_model`.
        """
        from governance.fairness._evaluation import resolve_named_dataset

        if isinstance(bootstrap, bool) or not 0 <= bootstrap <= MAX_BOOTSTRAP:
            raise AuditInputError(f"bootstrap must be between 0 and {MAX_BOOTSTRAP}")
        row = registry.get(session, model, version)
        _require_tabular(row.artifact_dir, row.artifact_sha256, row.name, row.version)
        data = resolve_named_dataset(session, ctx, dataset)
        declared = [s.name for s in dataset_service.schema_of(data).sensitive]
        features = list(dict.fromkeys(sensitive)) if sensitive else declared
        unknown = [f for f in features if f not in declared]
        if unknown:
            raise AuditInputError(
                f"dataset {dataset!r} declares no sensitive attribute {unknown[0]!r} "
                f"(declared: {', '.join(declared)})"
            )
        current = thresholds_store.current(session, policies_dir=policies_dir)
        limits = thresholds_store.policy(current).thresholds_for(row.name)
        session.expunge(data)
        return AuditPlan(
            model=row.name,
            model_version=row.version,
            artifact_dir=row.artifact_dir,
            artifact_sha256=row.artifact_sha256,
            dataset=data,
            features=features,
            bootstrap=bootstrap,
            seed=seed,
            thresholds_version=current.version,
            limits=limits,
        )

    def compute_audit(self, plan: AuditPlan) -> AuditComputed:
        """Predict on the evaluation split and audit the decisions; touches no database.

        Raises:
            AuditInputError / UnknownDataset: the artifact does not verify or the dataset does
                not fit the model.
        """
        # Heavy imports (torch, pandas loaders) stay out of the CLI's start-up path.
        from governance.fairness._evaluation import load_artifact, load_resolved, predict_split

        loaded = load_artifact(
            plan.model, plan.model_version, plan.artifact_dir, plan.artifact_sha256
        )
        data = load_resolved(plan.dataset)
        split = data.test
        predictions = predict_split(loaded, data, split)
        result = audit_predictions(
            y_true=predictions.y_true,
            y_pred=predictions.y_pred,
            sensitive=split.sensitive[plan.features],
            min_group_size=plan.limits.min_group_size,
            bootstrap=plan.bootstrap,
            seed=plan.seed,
        )
        return AuditComputed(
            result=result,
            verdict=_judge(result, plan.limits),
            dataset_name=data.name,
            dataset_hash=data.content_hash,
        )

    def store_audit(
        self,
        session: Session,
        ctx: Context,
        plan: AuditPlan,
        computed: AuditComputed,
        *,
        policies_dir: Path | None = None,
    ) -> FairnessAudit:
        """Re-check what may have changed since :meth:`plan_audit`, then store the audit.

        The verdict is judged again under the thresholds current now, so a threshold change
        during the computation cannot store a verdict under a version that no longer governs.

        Raises:
            ModelNotFound: the version was deleted meanwhile.
            AuditConflict: its artifact or the dataset changed meanwhile, or the thresholds
                changed the minimum group size the audit was computed with (409).
        """
        row = registry.get(session, plan.model, plan.model_version)
        if row.artifact_sha256 != plan.artifact_sha256:
            raise AuditConflict(
                f"model {plan.model} {plan.model_version} changed during the audit; run it again"
            )
        data = dataset_service.get(session, plan.dataset.name)
        if data.content_hash != computed.dataset_hash:
            raise AuditConflict(
                f"dataset {data.name!r} was registered again during the audit; run it again"
            )
        verdict = computed.verdict
        current = thresholds_store.current(session, policies_dir=policies_dir)
        if current.version != plan.thresholds_version:
            limits = thresholds_store.policy(current).thresholds_for(row.name)
            if limits.min_group_size != plan.limits.min_group_size:
                raise AuditConflict(
                    "the fairness thresholds changed the minimum group size during the audit; "
                    "run it again"
                )
            verdict = _judge(computed.result, limits)
        return self.store(
            session,
            ctx,
            kind=DATASET,
            model=row.name,
            model_version=row.version,
            artifact_sha256=row.artifact_sha256,
            dataset=computed.dataset_name,
            dataset_hash=computed.dataset_hash,
            split=EVALUATION_SPLIT,
            features=plan.features,
            result=computed.result,
            verdict=verdict,
            thresholds_version=current.version,
        )

    def store(
        self,
        session: Session,
        ctx: Context,
        *,
        kind: str,
        model: str,
        model_version: str | None,
        artifact_sha256: str | None,
        features: Sequence[str],
        result: FairnessResult,
        verdict: GateVerdict,
        thresholds_version: int,
        dataset: str | None = None,
        dataset_hash: str | None = None,
        split: str | None = None,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
    ) -> FairnessAudit:
        """Store an audit result and append its ``fairness.audit`` event.

        Returns:
            The stored row (flushed, so it has its id).
        """
        row = FairnessAudit(
            kind=kind,
            model=model,
            model_version=model_version,
            artifact_sha256=artifact_sha256,
            dataset=dataset,
            dataset_hash=dataset_hash,
            split=split,
            window_start=window_start,
            window_end=window_end,
            sensitive=_dumps(list(features)),
            n_rows=result.n_rows,
            engine=result.engine,
            bootstrap=result.bootstrap,
            seed=result.seed,
            thresholds_version=thresholds_version,
            passed=verdict.passed,
            verdict=_dumps(verdict.to_dict()),
            result=_dumps(result.to_dict()),
            audited_by=ctx.name[:64],
        )
        session.add(row)
        session.flush()
        audit_log.append(
            session,
            [
                ctx.event(
                    "fairness.audit",
                    "audit" if kind == DATASET else "monitor",
                    resource={"model": model, "version": model_version},
                    model_version=model_version,
                    details={
                        "audit_id": row.id,
                        "kind": kind,
                        "artifact_sha256": artifact_sha256,
                        "dataset": dataset,
                        "dataset_hash": dataset_hash,
                        "split": split,
                        "window": _window(window_start, window_end),
                        "sensitive": list(features),
                        "n_rows": result.n_rows,
                        "thresholds_version": thresholds_version,
                        "passed": verdict.passed,
                        "failures": failure_summary(verdict),
                    },
                )
            ],
        )
        return row

    def get(self, session: Session, audit_id: int) -> FairnessAudit:
        """One audit.

        Raises:
            AuditNotFound: no such audit.
        """
        row = session.get(FairnessAudit, audit_id)
        if row is None:
            raise AuditNotFound(f"fairness audit {audit_id} does not exist")
        return row

    def list_audits(
        self,
        session: Session,
        *,
        model: str | None = None,
        version: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[FairnessAudit]:
        """Audits, newest first, optionally filtered."""
        query = select(FairnessAudit).order_by(FairnessAudit.id.desc()).limit(limit)
        if model is not None:
            query = query.where(FairnessAudit.model == model)
        if version is not None:
            query = query.where(FairnessAudit.model_version == version)
        if kind is not None:
            query = query.where(FairnessAudit.kind == kind)
        return list(session.scalars(query))

    def latest_for_artifact(self, session: Session, artifact_sha256: str) -> FairnessAudit | None:
        """The newest dataset audit of exactly this artifact (what the gate judges)."""
        return session.scalar(
            select(FairnessAudit)
            .where(FairnessAudit.artifact_sha256 == artifact_sha256, FairnessAudit.kind == DATASET)
            .order_by(FairnessAudit.id.desc())
            .limit(1)
        )


fairness = FairnessAuditService()
