"""Bias audits of registered models, stored against the exact artifact they judged.

``audit_model`` loads a registered version (verifying every hash against the registered
manifest digest), predicts on the dataset's evaluation (test) split through the serving code
path, audits the decisions with :func:`~governance.fairness.metrics.audit_predictions`, judges
them under the current threshold version, and stores result and verdict with the artifact's
sha256 and a ``fairness.audit`` event, in the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.context import Context
from governance.fairness.errors import AuditInputError, AuditNotFound
from governance.fairness.metrics import audit_predictions, evaluate_thresholds
from governance.fairness.models import DATASET, FairnessAudit
from governance.fairness.result import FairnessResult, GateVerdict
from governance.fairness.thresholds_store import thresholds_store
from governance.registry.service import registry

EVALUATION_SPLIT: Final[str] = "test"
MAX_BOOTSTRAP: Final[int] = 2000


def _dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


def failure_summary(verdict: GateVerdict) -> list[dict[str, Any]]:
    """The verdict's failures as JSON (feature, measure, value, bound, limit, reason)."""
    return [f.to_dict() for f in verdict.failures]


def _window(start: datetime | None, end: datetime | None) -> list[str | None] | None:
    if start is None:
        return None
    return [start.isoformat(), end.isoformat() if end is not None else None]


class FairnessAuditService:
    """Runs, stores and reads fairness audits; stateless."""

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
        # Heavy imports (torch, pandas loaders) stay out of the CLI's start-up path.
        from governance.fairness._evaluation import (
            load_named_dataset,
            load_registered,
            predict_split,
        )

        if isinstance(bootstrap, bool) or not 0 <= bootstrap <= MAX_BOOTSTRAP:
            raise AuditInputError(f"bootstrap must be between 0 and {MAX_BOOTSTRAP}")
        row = registry.get(session, model, version)
        loaded = load_registered(row)
        data = load_named_dataset(session, ctx, dataset)
        split = data.test
        declared = list(split.sensitive.columns)
        features = list(dict.fromkeys(sensitive)) if sensitive else declared
        unknown = [f for f in features if f not in declared]
        if unknown:
            raise AuditInputError(
                f"dataset {dataset!r} declares no sensitive attribute {unknown[0]!r} "
                f"(declared: {', '.join(declared)})"
            )
        predictions = predict_split(loaded, data, split)
        current = thresholds_store.current(session, policies_dir=policies_dir)
        limits = thresholds_store.policy(current).thresholds_for(row.name)
        result = audit_predictions(
            y_true=predictions.y_true,
            y_pred=predictions.y_pred,
            sensitive=split.sensitive[features],
            min_group_size=limits.min_group_size,
            bootstrap=bootstrap,
            seed=seed,
        )
        verdict = evaluate_thresholds(
            result,
            limits.measures,
            features=limits.features_to_check([a.name for a in result.audits]),
        )
        return self.store(
            session,
            ctx,
            kind=DATASET,
            model=row.name,
            model_version=row.version,
            artifact_sha256=row.artifact_sha256,
            dataset=data.name,
            dataset_hash=data.content_hash,
            split=EVALUATION_SPLIT,
            features=features,
            result=result,
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
