"""A mitigation's access to private rows: its ledger charge, and the DP claim of its version.

Fitting group thresholds reads the fit dataset's rows once more, so a mitigation on a dataset
covered by a privacy ledger is a ledger run like training: admitted against the cap (refused
with 409, ledger unchanged), reserved before the noisy release is computed, and completed with
the new version's artifact hash. A dataset whose schema declares its rows public is read
without a charge, unless it shares a ledger with private rows (a public copy of private data
is still private); the fit is then recorded as a zero-charge run in the base's ledger, naming
the public dataset, so the ledger can prove that the mitigation read no private rows.

The mitigated version states the guarantee of every access that produced it, exactly as
:mod:`governance.privacy.claims` recomputes it from the ledger for the registry and the report:
the base's training run (found by its artifact hash, never read from the base's manifest) and
the mitigation's run, composed by the tighter of PRV and PLD at their largest δ. A base with no
private ledger run has no DP guarantee, and neither has its mitigation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.datasets.models import Dataset
from governance.datasets.service import datasets as dataset_service
from governance.db.base import utcnow
from governance.fairness.errors import MitigationError
from governance.kit.context import Context
from governance.kit.events import AuditEvent
from governance.privacy.accounting import Mechanism, compose_epsilon, tightest_epsilon
from governance.privacy.claims import (
    NO_GUARANTEE,
    VOID_STATEMENT,
    access_kind,
    is_zero_charge,
    ledger_statement,
)
from governance.privacy.kinds import SECRET_RANDOMNESS
from governance.privacy.ledger import (
    POLICY_FILE,
    BudgetCap,
    BudgetExceeded,
    PrivacyPolicyError,
    admit,
    lock_dataset,
    run_event,
)
from governance.privacy.models import COMPLETED, RESERVED, TrainingRun

RUN_KIND: Final[str] = "mitigation"


@dataclass(frozen=True)
class Access:
    """One ledger run that produced a version: a read of private rows, or a zero-charge fit on
    public rows (``mechanism`` None, ``fit_dataset`` the public dataset it read)."""

    kind: str
    run_id: int
    dataset: str
    ledger: int
    mechanism: Mechanism | None
    delta: float | None
    fit_dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.kind,
            "run_id": self.run_id,
            "dataset": self.dataset,
            "ledger": self.ledger,
            "mechanism": self.mechanism.to_dict() if self.mechanism is not None else None,
            "epsilon": (
                compose_epsilon([self.mechanism], self.delta)
                if self.mechanism is not None and self.delta is not None
                else 0.0
            ),
            "delta": self.delta,
        }
        if self.fit_dataset is not None:
            doc["fit_dataset"] = self.fit_dataset
        return doc


@dataclass(frozen=True)
class MitigationBudget:
    """What a planned mitigation spends, and the guarantee its version will state.

    Attributes:
        charged: whether the fit dataset is covered by a ledger (False: public rows).
        epsilon: the release's ε at ``delta`` (None for public rows: no noise is added).
        delta: δ of the release and of the stated guarantee.
        mechanism: the Gaussian release (None for public rows).
        run_id: the reserved ledger row (None for public rows).
        base_access: the base's private training run, if the ledger has one.
    """

    charged: bool
    epsilon: float | None
    delta: float | None
    mechanism: Mechanism | None
    run_id: int | None
    base_access: Access | None
    fit_dataset: str
    fit_ledger: int
    accesses: list[Access] = field(default_factory=list)

    def claim(self, *, mechanism_randomness: Any) -> dict[str, Any]:
        """The version's DP claim: the composition of every access, or no guarantee at all.

        The same composition, δ and statement as :func:`governance.privacy.claims.claim_for`
        computes from the ledger once the version is registered.

        Args:
            mechanism_randomness: the base manifest's ``training.mechanism_randomness``: a
                base whose noise followed from a recorded seed has a void claim.
        """
        accesses = self._accesses()
        if self.base_access is None:
            return {
                "private": False,
                "status": "none",
                "statement": f"{NO_GUARANTEE}: the base model's training is not a "
                "differentially private run in the privacy ledger",
                "accesses": accesses,
            }
        if mechanism_randomness not in SECRET_RANDOMNESS:
            return {
                "private": False,
                "status": "void",
                "statement": VOID_STATEMENT,
                "accesses": accesses,
            }
        charged = [a for a in self.accesses if a.mechanism is not None and a.delta is not None]
        delta = max(float(a.delta) for a in charged if a.delta is not None)
        tightest = tightest_epsilon([a.mechanism for a in charged if a.mechanism], delta)
        if not math.isfinite(tightest.epsilon):
            return {
                "private": False,
                "status": "none",
                "statement": NO_GUARANTEE,
                "accesses": accesses,
            }
        claim: dict[str, Any] = {
            "private": True,
            "status": "ledger",
            "epsilon": tightest.epsilon,
            "delta": delta,
            "accountant": tightest.accountant,
            "epsilon_by_accountant": {"prv": tightest.prv, "pld": tightest.pld},
            "dataset": self.base_access.dataset,
            "runs": [a.run_id for a in self.accesses],
            "accesses": accesses,
            "statement": ledger_statement(
                epsilon=tightest.epsilon,
                delta=delta,
                accountant=tightest.accountant,
                runs=[(a.run_id, a.kind) for a in self.accesses],
            ),
        }
        others = [a for a in charged if a.ledger != self.base_access.ledger]
        if others:
            # Another dataset's rows were read too: the composed ε bounds them as well, and
            # each also has its own, tighter guarantee.
            claim["other_datasets"] = {
                a.dataset: {"epsilon": compose_epsilon([a.mechanism], a.delta), "delta": a.delta}
                for a in others
                if a.mechanism is not None and a.delta is not None
            }
        return claim

    def _accesses(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.accesses]


def default_epsilon(policies_dir: Path) -> float:
    """``mitigation.epsilon`` of ``privacy.yaml``: the release's ε when the caller names none.

    Raises:
        PrivacyPolicyError: the file or the key is missing or invalid (no mitigation runs).
    """
    try:
        doc = yaml.safe_load((policies_dir / POLICY_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise PrivacyPolicyError(f"{POLICY_FILE} is not readable UTF-8 YAML") from None
    section = doc.get("mitigation") if isinstance(doc, dict) else None
    value = section.get("epsilon") if isinstance(section, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise PrivacyPolicyError(
            f"{POLICY_FILE}: mitigation.epsilon must be a positive number (the budget a "
            "mitigation spends when none is given)"
        )
    return float(value)


def base_access(session: Session, artifact_sha256: str) -> Access | None:
    """The completed private training run whose artifact is the base, if the ledger has one."""
    found = session.execute(
        select(TrainingRun, Dataset)
        .join(Dataset, Dataset.id == TrainingRun.dataset_id)
        .where(
            TrainingRun.artifact_sha256 == artifact_sha256,
            TrainingRun.status == COMPLETED,
            TrainingRun.model_kind != RUN_KIND,
        )
        .order_by(TrainingRun.id.desc())
    ).first()
    if found is None:
        return None
    run, dataset = found
    mech = run.charged
    if not run.private or mech is None or run.delta is None:
        return None
    return Access(access_kind(run), run.id, dataset.name, dataset.ledger_id, mech, run.delta)


def is_public(session: Session, dataset: Dataset) -> bool:
    """Rows read without a charge: declared public, and every name sharing them says so too."""
    sharing = session.scalars(select(Dataset).where(Dataset.ledger_id == dataset.ledger_id)).all()
    members = {m.id: m for m in [dataset, *sharing]}.values()
    return all(dataset_service.schema_of(m).privacy.public for m in members)


def reserve(
    session: Session,
    ctx: Context,
    *,
    dataset_id: int,
    epsilon: float | None,
    cap: BudgetCap,
    shared_with: list[str],
    model: str,
    target: str,
    base_artifact_sha256: str,
) -> MitigationBudget:
    """Admit the release against the fit dataset's ledger and reserve it (flushed, not
    committed); a public dataset is reserved as a zero-charge run in the base's ledger (or,
    when the base has no private ledger run, planned with no run: there is no guarantee to
    keep).

    Args:
        epsilon: the release's ε; the caller resolved the policy's default.
        cap: the fit dataset's ledger cap (the strictest of its names).

    Raises:
        BudgetExceeded: the release, composed with the ledger, would pass the cap (nothing is
            written; its ``extra`` names the planned mechanism for the refusal's audit event).
        MitigationError: a non-positive ε.
    """
    from governance.fairness.mitigation.dp_histograms import gaussian_mechanism

    dataset = lock_dataset(session, dataset_id)
    base = base_access(session, base_artifact_sha256)
    accesses = [base] if base is not None else []
    if is_public(session, dataset):
        zero = (
            _reserve_zero_charge(session, ctx, base=base, fit=dataset, model=model, target=target)
            if base is not None
            else None
        )
        return MitigationBudget(
            charged=False,
            epsilon=None,
            delta=None,
            mechanism=None,
            run_id=zero.run_id if zero is not None else None,
            base_access=base,
            fit_dataset=dataset.name,
            fit_ledger=dataset.ledger_id,
            accesses=[*accesses, zero] if zero is not None else accesses,
        )
    if epsilon is None or not 0 < epsilon < math.inf:
        raise MitigationError("a mitigation on private rows needs a positive, finite epsilon")
    delta = cap.delta
    if base is not None and base.ledger == dataset.ledger_id and base.delta is not None:
        delta = min(base.delta, cap.delta)
    mechanism = gaussian_mechanism(epsilon=epsilon, delta=delta)
    try:
        admission = admit(
            session,
            dataset=dataset,
            planned=mechanism,
            private=True,
            cap=cap,
            shared_with=shared_with,
        )
    except BudgetExceeded as exc:
        exc.extra.update(kind=RUN_KIND, mechanism=mechanism.to_dict(), target_epsilon=epsilon)
        raise
    run = TrainingRun(
        dataset_id=dataset.id,
        dataset_hash=dataset.content_hash,
        status=RESERVED,
        private=True,
        target_epsilon=epsilon,
        delta=delta,
        planned_noise_multiplier=mechanism.noise_multiplier,
        planned_sample_rate=mechanism.sample_rate,
        planned_steps=mechanism.steps,
        noise_multiplier=mechanism.noise_multiplier,
        sample_rate=mechanism.sample_rate,
        steps=mechanism.steps,
        model_kind=RUN_KIND,
        # Not a training run: no epochs or batches, and no seed (the noise has none to record).
        epochs=0,
        batch_size=0,
        seed=0,
        model_name=model,
        model_version=target,
        registered=False,
        started_by=ctx.name,
    )
    session.add(run)
    session.flush()
    audit_log.append(
        session,
        [
            run_event(
                ctx,
                "start",
                run,
                dataset.name,
                kind=RUN_KIND,
                cap_epsilon=cap.epsilon,
                cap_delta=cap.delta,
                ledger=dataset.ledger_id,
                ledger_shared_with=shared_with,
                epsilon_before=_json(admission.before),
                epsilon_after=_json(admission.after),
            )
        ],
    )
    mine = Access(access_kind(run), run.id, dataset.name, dataset.ledger_id, mechanism, delta)
    return MitigationBudget(
        charged=True,
        epsilon=epsilon,
        delta=delta,
        mechanism=mechanism,
        run_id=run.id,
        base_access=base,
        fit_dataset=dataset.name,
        fit_ledger=dataset.ledger_id,
        accesses=[*accesses, mine],
    )


def _reserve_zero_charge(
    session: Session, ctx: Context, *, base: Access, fit: Dataset, model: str, target: str
) -> Access:
    """Record a fit on public rows in the base's ledger: no mechanism, nothing charged."""
    base_run = session.get(TrainingRun, base.run_id)
    assert base_run is not None
    ledger_dataset = session.get(Dataset, base_run.dataset_id)
    assert ledger_dataset is not None
    run = TrainingRun(
        dataset_id=ledger_dataset.id,
        dataset_hash=ledger_dataset.content_hash,
        status=RESERVED,
        private=True,
        target_epsilon=0.0,
        # The base's δ: the version's guarantee is the base's, unchanged.
        delta=base.delta,
        model_kind=RUN_KIND,
        epochs=0,
        batch_size=0,
        seed=0,
        model_name=model,
        model_version=target,
        registered=False,
        started_by=ctx.name,
        fit_dataset=fit.name,
    )
    session.add(run)
    session.flush()
    audit_log.append(
        session,
        [
            run_event(
                ctx,
                "start",
                run,
                ledger_dataset.name,
                kind=RUN_KIND,
                charge="none: the fit dataset's rows are public",
                fit_dataset=fit.name,
                fit_dataset_hash=fit.content_hash,
                ledger=ledger_dataset.ledger_id,
            )
        ],
    )
    assert is_zero_charge(run)
    return Access(
        access_kind(run),
        run.id,
        ledger_dataset.name,
        ledger_dataset.ledger_id,
        None,
        None,
        fit_dataset=fit.name,
    )


def complete(
    session: Session, ctx: Context, budget: MitigationBudget, *, artifact_sha256: str
) -> None:
    """Mark the reserved run (a release, or a zero-charge public fit) as spent by the
    registered version; a public fit on a base with no ledger run has none.

    Raises:
        MitigationError: the reservation is gone or no longer reserved.
    """
    if budget.run_id is None:
        return
    run = session.get(TrainingRun, budget.run_id)
    if run is None or run.status != RESERVED:
        raise MitigationError(f"the mitigation's ledger run {budget.run_id} is not reserved")
    dataset = session.get(Dataset, run.dataset_id)
    assert dataset is not None
    run.status = COMPLETED
    run.epsilon = (
        compose_epsilon([budget.mechanism], budget.delta)
        if budget.mechanism is not None and budget.delta is not None
        else 0.0
    )
    run.artifact_sha256 = artifact_sha256
    run.registered = True
    run.finished_at = utcnow()
    session.flush()
    audit_log.append(
        session,
        [
            run_event(
                ctx,
                "complete",
                run,
                dataset.name,
                kind=RUN_KIND,
                epsilon=run.epsilon,
                artifact_sha256=artifact_sha256,
                fit_dataset=run.fit_dataset,
            )
        ],
    )


def refusal_event(
    ctx: Context, exc: BudgetExceeded, *, dataset: str, model: str, base_version: str | None
) -> AuditEvent:
    """The ``privacy.run`` refuse event of a mitigation over its cap, as training writes one;
    the caller appends it in a transaction of its own (the refused one rolled back)."""
    return ctx.event(
        "privacy.run",
        "refuse",
        decision="deny",
        reason=exc.message,
        resource={"dataset": dataset},
        details={
            "private": True,
            "model": model,
            "base_version": base_version,
            **{k: v for k, v in exc.extra.items() if k != "dataset"},
        },
    )


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None
