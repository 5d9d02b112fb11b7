"""The privacy-budget ledger: an odometer over a dataset's runs, and a filter in front of it.

A ledger belongs to the rows, not to a name (:mod:`governance.datasets.ledgers`): every
registration holding the same rows (or a subset or superset of them) charges one ledger, so a
copy registered under another name sees the original's spend. Its cap is the strictest of the
caps of the names charging it (smallest ε, smallest δ, non-private only if all permit it), so
naming a copy with a bigger cap in ``privacy.yaml`` cannot raise it.

Every run that touched a dataset charges a :class:`~governance.privacy.accounting.Mechanism`.
The dataset's spent ε is recomposed over ALL charged mechanisms at once (the smaller of the PRV
and PLD bounds, at the cap's δ), which is much tighter than adding each run's ε; both are
reported. A new run is admitted only if its planned mechanism, composed with the history, stays
within the cap.

Fail closed:
- a run is reserved (charging its PLANNED mechanism) in a committed transaction before training
  starts; completion replaces the charge with the mechanism actually run;
- an aborted run charges the steps it ran; a run that died without reporting keeps the planned
  charge;
- a non-private run is charged as σ = 0, an unbounded ε: after one, no DP run fits the cap;
- a missing or invalid ``policies/privacy.yaml`` refuses every run.

Concurrency: a reservation locks the dataset's row, then its ledger's (``SELECT ... FOR
UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers), so two runs
on one ledger, under one name or two, are checked one after the other, and the second sees the
first's reservation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.datasets.models import Dataset, Ledger
from governance.errors import RefusedByRule
from governance.kit.context import Context
from governance.kit.events import AuditEvent
from governance.privacy.accounting import (
    Mechanism,
    compose_epsilon,
    naive_sum_epsilon,
    tightest_epsilon,
)
from governance.privacy.errors import PrivacyError
from governance.privacy.models import FAILED, TrainingRun

POLICY_FILE = "privacy.yaml"
_CAP_KEYS = {"epsilon", "delta", "allow_non_private"}


class PrivacyPolicyError(PrivacyError):
    """``policies/privacy.yaml`` is missing or invalid: no run can be admitted (503)."""

    status_code = 503
    title = "Privacy policy unavailable"
    type_slug = "privacy-policy"


class BudgetExceeded(PrivacyError, RefusedByRule):
    """The planned run, composed with the dataset's history, would pass the cap (409)."""

    status_code = 409
    title = "Privacy budget exceeded"
    type_slug = "privacy-budget-exceeded"


class NonPrivateRefused(PrivacyError):
    """Non-private training on a dataset whose policy does not permit it (403)."""

    status_code = 403
    title = "Non-private training not permitted"
    type_slug = "non-private-refused"


@dataclass(frozen=True)
class BudgetCap:
    """A dataset's budget: total ε at δ, and whether non-private training is allowed."""

    epsilon: float
    delta: float
    allow_non_private: bool = False


@dataclass(frozen=True)
class PrivacyPolicy:
    """The parsed ``privacy.yaml``."""

    defaults: BudgetCap
    datasets: dict[str, BudgetCap] = field(default_factory=dict)

    def cap_for(self, dataset: str) -> BudgetCap:
        return self.datasets.get(dataset, self.defaults)


def strictest(caps: Sequence[BudgetCap]) -> BudgetCap:
    """The cap a shared ledger keeps: no name charging it may raise what another allows."""
    return BudgetCap(
        epsilon=min(c.epsilon for c in caps),
        delta=min(c.delta for c in caps),
        allow_non_private=all(c.allow_non_private for c in caps),
    )


def _cap(doc: Any, where: str, problems: list[str]) -> BudgetCap | None:
    if not isinstance(doc, dict):
        problems.append(f"{where}: expected a mapping")
        return None
    for key in sorted(set(doc) - _CAP_KEYS):
        problems.append(f"{where}.{key}: unknown key")
    eps, delta, allow = doc.get("epsilon"), doc.get("delta"), doc.get("allow_non_private", False)
    ok = True
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < math.inf:
        problems.append(f"{where}.epsilon: a positive finite number is required")
        ok = False
    if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 < delta < 1:
        problems.append(f"{where}.delta: a number strictly between 0 and 1 is required")
        ok = False
    if not isinstance(allow, bool):
        problems.append(f"{where}.allow_non_private: true or false")
        ok = False
    if not ok:
        return None
    assert isinstance(eps, int | float) and isinstance(delta, int | float)
    return BudgetCap(epsilon=float(eps), delta=float(delta), allow_non_private=allow)


def load_privacy_policy(policies_dir: Path) -> PrivacyPolicy:
    """Read and validate ``privacy.yaml`` (read on every run, so an edit applies at once).

    Args:
        policies_dir: the folder holding ``privacy.yaml``.

    Returns:
        The caps.

    Raises:
        PrivacyPolicyError: the file is missing, unreadable or invalid (every problem listed).
    """
    path = policies_dir / POLICY_FILE
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrivacyPolicyError(f"{POLICY_FILE} not found in the policies folder") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise PrivacyPolicyError(f"{POLICY_FILE} is not readable UTF-8 YAML") from None
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise PrivacyPolicyError(f"{POLICY_FILE}: expected a mapping")
    # "mitigation" is read by governance.fairness.mitigation.budget (its default ε),
    # "require_dp_claim" by governance.privacy.claim_gate.
    for key in sorted(set(doc) - {"defaults", "datasets", "mitigation", "require_dp_claim"}):
        problems.append(f"{key}: unknown key")
    defaults = _cap(doc.get("defaults"), "defaults", problems)
    per: dict[str, BudgetCap] = {}
    raw = doc.get("datasets") or {}
    if not isinstance(raw, dict):
        problems.append("datasets: expected a mapping of dataset name to cap")
        raw = {}
    for name, cap_doc in raw.items():
        cap = _cap(cap_doc, f"datasets.{name}", problems)
        if cap is not None:
            per[str(name)] = cap
    if problems or defaults is None:
        raise PrivacyPolicyError(
            f"{POLICY_FILE} is invalid: " + "; ".join(problems), extra={"problems": problems}
        )
    return PrivacyPolicy(defaults=defaults, datasets=per)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class LedgerSummary:
    """A dataset's spend: recomposed (tight) and summed (naive), against its cap.

    Attributes:
        dataset: the dataset's name.
        cap: its budget (the strictest of its ledger's names).
        runs: every run charged to its ledger, under any name, oldest first (failed runs
            charge nothing but are listed).
        epsilon_recomposed: ε of the composition of every charged mechanism, at ``cap.delta``.
        epsilon_naive: the sum of each run's ε at ``cap.delta`` (valid at ``delta_naive``).
        delta_naive: the δ of the naive sum: ``cap.delta`` times the runs charged.
        remaining: ``cap.epsilon - epsilon_recomposed`` (never below 0).
        ledger_id: the ledger (None: a bundled dataset not registered yet).
        shared_with: the other datasets charging the same ledger.
        run_datasets: the name each run was charged under.
        accountant: which accountant gave ``epsilon_recomposed`` (``"prv"`` or ``"pld"``).
    """

    dataset: str
    cap: BudgetCap
    runs: Sequence[TrainingRun]
    per_run_epsilon: dict[int, float]
    epsilon_recomposed: float
    epsilon_naive: float
    delta_naive: float
    remaining: float
    ledger_id: int | None = None
    shared_with: tuple[str, ...] = ()
    run_datasets: dict[int, str] = field(default_factory=dict)
    accountant: str = "prv"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (an unbounded ε is ``null`` with ``unbounded: true``)."""
        return {
            "dataset": self.dataset,
            "cap": {
                "epsilon": self.cap.epsilon,
                "delta": self.cap.delta,
                "allow_non_private": self.cap.allow_non_private,
            },
            "epsilon_recomposed": _finite(self.epsilon_recomposed),
            "accountant": self.accountant,
            "epsilon_naive": _finite(self.epsilon_naive),
            "delta_naive": self.delta_naive,
            "remaining": self.remaining,
            "unbounded": not math.isfinite(self.epsilon_recomposed),
            "runs": len(self.runs),
            "ledger": self.ledger_id,
            "shared_with": list(self.shared_with),
        }


def charged_history(session: Session, ledger_id: int) -> list[tuple[TrainingRun, str]]:
    """Every run charged to the ledger, under any of its names, oldest first."""
    query = (
        select(TrainingRun, Dataset.name)
        .join(Dataset, Dataset.id == TrainingRun.dataset_id)
        .where(Dataset.ledger_id == ledger_id)
        .order_by(TrainingRun.id)
    )
    return [(run, name) for run, name in session.execute(query)]


def _mechanisms(runs: Sequence[TrainingRun]) -> list[Mechanism]:
    out = []
    for run in runs:
        mech = run.charged
        if run.status != FAILED and mech is not None:
            out.append(mech)
    return out


def summarize(
    session: Session,
    *,
    dataset: Dataset | None,
    name: str,
    cap: BudgetCap,
    shared_with: Sequence[str] = (),
) -> LedgerSummary:
    """The spend so far of the dataset's ledger (an unregistered dataset has spent nothing).

    Raises:
        AccountingError: the accountant failed on the recorded history.
    """
    history = charged_history(session, dataset.ledger_id) if dataset is not None else []
    runs = [run for run, _ in history]
    per_run: dict[int, float] = {}
    for run in runs:
        mech = run.charged
        if run.status != FAILED and mech is not None and mech.steps > 0:
            per_run[run.id] = compose_epsilon([mech], cap.delta)
    tightest = tightest_epsilon(_mechanisms(runs), cap.delta)
    total = tightest.epsilon
    return LedgerSummary(
        dataset=name,
        cap=cap,
        runs=runs,
        per_run_epsilon=per_run,
        epsilon_recomposed=total,
        epsilon_naive=naive_sum_epsilon(per_run.values()),
        delta_naive=cap.delta * len(per_run),
        remaining=max(cap.epsilon - total, 0.0) if math.isfinite(total) else 0.0,
        ledger_id=dataset.ledger_id if dataset is not None else None,
        shared_with=tuple(shared_with),
        run_datasets={run.id: run_name for run, run_name in history},
        accountant=tightest.accountant,
    )


def lock_dataset(session: Session, dataset_id: int) -> Dataset:
    """Lock the dataset's row, then its ledger's, until the transaction ends.

    Datasets before ledgers, the order a registration that merges ledgers takes them in; the
    dataset's row, read under its lock, names its ledger as of now.
    """
    dataset = session.execute(
        select(Dataset).where(Dataset.id == dataset_id).with_for_update()
    ).scalar_one()
    session.execute(select(Ledger.id).where(Ledger.id == dataset.ledger_id).with_for_update())
    return dataset


@dataclass(frozen=True)
class Admission:
    """What the check found: the spend before, and with, the planned run."""

    before: float
    after: float
    cap: BudgetCap


def admit(
    session: Session,
    *,
    dataset: Dataset,
    planned: Mechanism,
    private: bool,
    cap: BudgetCap,
    shared_with: Sequence[str] = (),
) -> Admission:
    """Check a planned run against its ledger's cap; the caller holds the locks.

    Args:
        session: the transaction holding the locks (see :func:`lock_dataset`).
        dataset: the locked dataset.
        planned: the run's planned mechanism (σ = 0 for a non-private run).
        private: whether the run is private.
        cap: the ledger's budget.
        shared_with: the other datasets charging the ledger (named in a refusal).

    Returns:
        The spend before and after the run.

    Raises:
        NonPrivateRefused: non-private training that the policy does not permit.
        BudgetExceeded: the composed ε would pass the cap (nothing is written).
    """
    history = _mechanisms([run for run, _ in charged_history(session, dataset.ledger_id)])
    before = compose_epsilon(history, cap.delta)
    shared = (
        f" (its privacy ledger is shared with {', '.join(repr(n) for n in shared_with)})"
        if shared_with
        else ""
    )
    if not private:
        if not cap.allow_non_private:
            raise NonPrivateRefused(
                f"dataset {dataset.name!r}{shared} does not permit non-private training "
                "(allow_non_private in policies/privacy.yaml and in its schema)"
            )
        # Explicitly permitted: the cap does not apply to a run that has no ε at all.
        return Admission(before=before, after=math.inf, cap=cap)
    after = compose_epsilon([*history, planned], cap.delta)
    if after > cap.epsilon:
        extra: dict[str, Any] = {
            "dataset": dataset.name,
            "cap_epsilon": cap.epsilon,
            "cap_delta": cap.delta,
            "spent_epsilon": _finite(before),
            "planned_run_epsilon": _finite(compose_epsilon([planned], cap.delta)),
            "epsilon_after_run": _finite(after),
            "ledger": dataset.ledger_id,
            "ledger_shared_with": list(shared_with),
        }
        spent = f"{before:.4g}" if math.isfinite(before) else "unbounded (a non-private run)"
        raise BudgetExceeded(
            f"training on {dataset.name!r}{shared} would spend ε = {after:.4g} in total at "
            f"δ = {cap.delta:g}, over its cap of ε = {cap.epsilon:g} (already spent: {spent})",
            extra=extra,
        )
    return Admission(before=before, after=after, cap=cap)


def mechanism_details(mech: Mechanism | None) -> dict[str, Any] | None:
    """A mechanism for an audit event (JSON-safe)."""
    return mech.to_dict() if mech is not None else None


def run_event(
    ctx: Context, action: str, run: TrainingRun, dataset: str, **details: Any
) -> AuditEvent:
    """The ``privacy.run`` audit event for a run (no data, only the mechanism and outcome)."""
    body: dict[str, Any] = {
        "run_id": run.id,
        "status": run.status,
        "private": run.private,
        "dataset_hash": run.dataset_hash,
        "target_epsilon": run.target_epsilon,
        "delta": run.delta,
        "mechanism": mechanism_details(run.charged),
        "model": run.model_name,
        "model_version": run.model_version,
    }
    body.update(details)
    return ctx.event(
        "privacy.run",
        action,
        resource={"dataset": dataset, "run": run.id},
        model_version=run.model_version,
        details=body,
    )
