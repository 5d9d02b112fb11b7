"""Live monitoring: the same audit, over served predictions that received their outcomes.

``monitor`` reads the outcomes of a model's predictions in a time window and runs
:func:`~governance.fairness.metrics.audit_predictions` on them with the bincount fast path
(MetricFrame takes about 14 s per million rows; the fast path well under one), then judges the
result under the current thresholds and stores it as a ``live`` audit. Live audits inform; they
do not gate promotion (the gate judges an artifact on a fixed evaluation split).

A million outcomes never leave the database as rows: it counts them per (sensitive values,
truth, decision) cell, and only the distinct keys (a few dozen) are parsed from JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from governance.fairness.errors import AuditConflict, AuditInputError
from governance.fairness.metrics import audit_predictions, evaluate_thresholds
from governance.fairness.models import LIVE, FairnessAudit, Outcome
from governance.fairness.result import FairnessResult
from governance.fairness.service import MAX_BOOTSTRAP, fairness
from governance.fairness.thresholds.bounds import ModelThresholds
from governance.fairness.thresholds.versions import thresholds_store
from governance.kit.context import Context
from governance.registry.service import registry

if TYPE_CHECKING:
    import pandas as pd

UNKNOWN: Final[str] = "unknown"


@dataclass(frozen=True)
class OutcomeColumns:
    """A window's outcomes as arrays, with each row's sensitive values decoded."""

    y_true: NDArray[np.int8]
    y_pred: NDArray[np.int8]
    sensitive: pd.DataFrame


def load_outcomes(
    session: Session,
    *,
    model: str,
    since: datetime,
    until: datetime,
    version: str | None = None,
    features: Sequence[str] | None = None,
) -> OutcomeColumns:
    """Read a window's outcomes (``since <= predicted_at < until``) as columns.

    The database counts the rows per (group, truth, decision) cell, so a million outcomes
    cross the wire as a few dozen rows; the columns are rebuilt from the counts with
    ``np.repeat``. An audit depends only on those counts, so row order is irrelevant.

    Args:
        session: a session to read with.
        model: the model name.
        since: start of the window (inclusive, timezone-aware).
        until: end of the window (exclusive, timezone-aware).
        version: only this model version; None takes every version in the window.
        features: the sensitive attributes to decode; None takes every attribute seen.
            A prediction without a value for one is put in the group ``"unknown"``.

    Returns:
        The columns (possibly empty).
    """
    cells = (
        select(Outcome.group_key, Outcome.y_true, Outcome.y_pred, func.count())
        .where(Outcome.model == model, Outcome.predicted_at >= since, Outcome.predicted_at < until)
        .group_by(Outcome.group_key, Outcome.y_true, Outcome.y_pred)
    )
    if version is not None:
        cells = cells.where(Outcome.model_version == version)
    rows = session.execute(cells).all()
    # pandas loads with the first monitoring window, not with the server that routes to it.
    import pandas as pd

    if not rows:
        empty = np.zeros(0, dtype=np.int8)
        return OutcomeColumns(empty, empty, pd.DataFrame(columns=list(features or [])))
    keys, truth, decision, counts = zip(*rows, strict=True)
    repeats = np.asarray(counts, dtype=np.int64)
    codes, uniques = pd.factorize(np.asarray(keys, dtype=object))
    decoded = [json.loads(key) for key in uniques]
    names = list(features) if features else sorted({k for doc in decoded for k in doc})
    row_codes = np.repeat(codes, repeats)
    sensitive = pd.DataFrame(
        {
            name: np.asarray([str(doc.get(name, UNKNOWN)) for doc in decoded], dtype=object)[
                row_codes
            ]
            for name in names
        }
    )
    return OutcomeColumns(
        y_true=np.repeat(np.asarray(truth, dtype=np.int8), repeats),
        y_pred=np.repeat(np.asarray(decision, dtype=np.int8), repeats),
        sensitive=sensitive,
    )


def monitor(
    session: Session,
    ctx: Context,
    *,
    model: str,
    since: datetime,
    until: datetime,
    version: str | None = None,
    sensitive: Sequence[str] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    policies_dir: Path | None = None,
) -> FairnessAudit:
    """Audit a model's live predictions in a time window, and store the result.

    Args:
        session: the caller's transaction.
        ctx: who runs it.
        model: the model name.
        since: window start (inclusive, timezone-aware).
        until: window end (exclusive, timezone-aware).
        version: restrict to one version (its artifact hash is recorded); None: all versions.
        sensitive: attributes to audit; None audits every attribute seen in the window.
        bootstrap: bootstrap replicates (0 skips the intervals).
        seed: seeds the bootstrap.
        policies_dir: where the thresholds seed lives, if none is stored yet.

    Returns:
        The stored ``live`` audit (``passed`` under the current thresholds).

    Raises:
        AuditInputError: a bad window, no outcomes in it, or no sensitive attribute.
        ModelNotFound: ``version`` names a version that is not registered.
    """
    plan = plan_monitor(
        session,
        model=model,
        since=since,
        until=until,
        version=version,
        sensitive=sensitive,
        bootstrap=bootstrap,
        seed=seed,
        policies_dir=policies_dir,
    )
    return store_monitor(session, ctx, plan, compute_monitor(plan), policies_dir=policies_dir)


@dataclass(frozen=True)
class MonitorPlan:
    """A window's outcomes and the limits to judge them by, read in a short transaction."""

    model: str
    version: str | None
    artifact_sha256: str | None
    since: datetime
    until: datetime
    columns: OutcomeColumns
    bootstrap: int
    seed: int
    thresholds_version: int
    limits: ModelThresholds


def plan_monitor(
    session: Session,
    *,
    model: str,
    since: datetime,
    until: datetime,
    version: str | None = None,
    sensitive: Sequence[str] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    policies_dir: Path | None = None,
) -> MonitorPlan:
    """Check a live audit's inputs and read its outcomes (arguments as :func:`monitor`).

    Raises:
        AuditInputError, ModelNotFound: as :func:`monitor`.
    """
    if since.tzinfo is None or until.tzinfo is None:
        raise AuditInputError("the window needs timezone-aware times")
    if not since < until:
        raise AuditInputError("the window's start must be before its end")
    if isinstance(bootstrap, bool) or not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise AuditInputError(f"bootstrap must be between 0 and {MAX_BOOTSTRAP}")
    artifact = registry.get(session, model, version).artifact_sha256 if version else None
    columns = load_outcomes(
        session, model=model, since=since, until=until, version=version, features=sensitive
    )
    if columns.y_true.size == 0:
        raise AuditInputError(f"no outcomes of {model} were reported in that window")
    if columns.sensitive.shape[1] == 0:
        raise AuditInputError("the outcomes in that window carry no sensitive attribute")
    current = thresholds_store.current(session, policies_dir=policies_dir)
    return MonitorPlan(
        model=model,
        version=version,
        artifact_sha256=artifact,
        since=since,
        until=until,
        columns=columns,
        bootstrap=bootstrap,
        seed=seed,
        thresholds_version=current.version,
        limits=thresholds_store.policy(current).thresholds_for(model),
    )


def compute_monitor(plan: MonitorPlan) -> FairnessResult:
    """The live audit's metrics and intervals; touches no database."""
    columns = plan.columns
    return audit_predictions(
        y_true=columns.y_true,
        y_pred=columns.y_pred,
        sensitive=columns.sensitive,
        min_group_size=plan.limits.min_group_size,
        bootstrap=plan.bootstrap,
        seed=plan.seed,
        use_fast_path=True,
    )


def store_monitor(
    session: Session,
    ctx: Context,
    plan: MonitorPlan,
    result: FairnessResult,
    *,
    policies_dir: Path | None = None,
) -> FairnessAudit:
    """Judge under the thresholds current now and store, re-checking the version's artifact.

    Raises:
        ModelNotFound: the version was deleted meanwhile.
        AuditConflict: its artifact, or the minimum group size, changed meanwhile (409).
    """
    if plan.version is not None:
        row = registry.get(session, plan.model, plan.version)
        if row.artifact_sha256 != plan.artifact_sha256:
            raise AuditConflict(f"model {plan.model} {plan.version} changed during the audit")
    current = thresholds_store.current(session, policies_dir=policies_dir)
    limits = plan.limits
    if current.version != plan.thresholds_version:
        limits = thresholds_store.policy(current).thresholds_for(plan.model)
        if limits.min_group_size != plan.limits.min_group_size:
            raise AuditConflict(
                "the fairness thresholds changed the minimum group size during the audit; "
                "run it again"
            )
    return fairness.store(
        session,
        ctx,
        kind=LIVE,
        model=plan.model,
        model_version=plan.version,
        artifact_sha256=plan.artifact_sha256,
        features=list(plan.columns.sensitive.columns),
        result=result,
        verdict=evaluate_thresholds(result, limits.measures),
        thresholds_version=current.version,
        window_start=plan.since,
        window_end=plan.until,
    )
