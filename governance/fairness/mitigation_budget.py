"""A mitigation's access to private rows: its ledger charge, and the DP claim of its version.

Fitting group thresholds reads the fit dataset's rows once more, so a mitigation on a dataset
covered by a privacy ledger is a ledger run like training: admitted against the cap (refused
with 409, ledger unchanged), reserved before the noisy release is computed, and completed with
the new version's artifact hash. A dataset whose schema declares its rows public is read
without a charge, unless it shares a ledger with private rows (a public copy of private data
is still private).

The mitigated version states the guarantee of every access that produced it, composed with
the same accountant as the ledger: the base's training run (found in the ledger by its artifact
hash, never read from the base's manifest) and the mitigation's release when both touch one
ledger. A base with no private ledger run has no DP guarantee, and neither has its mitigation.
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
from governance.context import Context
from governance.datasets.models import Dataset
from governance.datasets.service import datasets as dataset_service
from governance.db.base import utcnow
from governance.fairness.errors import MitigationError
from governance.privacy.accounting import Mechanism, compose_epsilon
from governance.privacy.ledger import (
    POLICY_FILE,
    BudgetCap,
    PrivacyPolicyError,
    admit,
    lock_dataset,
    run_event,
)
from governance.privacy.models import COMPLETED, RESERVED, TrainingRun

RUN_KIND: Final[str] = "mitigation"
ACCOUNTANT: Final[str] = "prv"
NO_GUARANTEE: Final[str] = "no DP guarantee"


@dataclass(frozen=True)
class Access:
    """One read of private rows that produced a version, as the ledger holds it."""

    kind: str
    run_id: int
    dataset: str
    ledger: int
    mechanism: Mechanism
    delta: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "dataset": self.dataset,
            "ledger": self.ledger,
            "mechanism": self.mechanism.to_dict(),
            "epsilon": compose_epsilon([self.mechanism], self.delta),
            "delta": self.delta,
        }


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

    def claim(self) -> dict[str, Any]:
        """The version's DP claim: the composition of every access, or no guarantee at all."""
        if self.base_access is None:
            return {"private": False, "statement": NO_GUARANTEE, "accesses": self._accesses()}
        same_ledger = [a for a in self.accesses if a.ledger == self.base_access.ledger]
        others = [a for a in self.accesses if a.ledger != self.base_access.ledger]
        delta = self.base_access.delta
        epsilon = compose_epsilon([a.mechanism for a in same_ledger], delta)
        claim: dict[str, Any] = {
            "private": math.isfinite(epsilon),
            "epsilon": epsilon if math.isfinite(epsilon) else None,
            "delta": delta,
            "accountant": ACCOUNTANT,
            "dataset": self.base_access.dataset,
            "accesses": self._accesses(),
        }
        if others:
            # Another dataset's rows were read too: each has its own guarantee.
            claim["other_datasets"] = {
                a.dataset: {
                    "epsilon": compose_epsilon([a.mechanism], a.delta),
                    "delta": a.delta,
                }
                for a in others
            }
        claim["statement"] = statement(claim)
        return claim

    def _accesses(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.accesses]


def statement(claim: dict[str, Any]) -> str:
    """The claim in one sentence, as the model card says it."""
    if not claim.get("private") or claim.get("epsilon") is None:
        return (
            f"{NO_GUARANTEE}: the base model's training is not a differentially private run in "
            "the privacy ledger, so no end-to-end guarantee covers this version."
        )
    kinds = " and ".join(sorted({a["kind"] for a in claim["accesses"]}))
    text = (
        f"({claim['epsilon']:.4g}, {claim['delta']:.3g})-differential privacy end to end for "
        f"the rows of {claim['dataset']!r}: the {claim['accountant'].upper()} composition of "
        f"every access that produced this version ({kinds}), as charged to the privacy ledger."
    )
    for name, other in sorted(claim.get("other_datasets", {}).items()):
        text += (
            f" The rows of {name!r} were read by the mitigation under "
            f"({other['epsilon']:.4g}, {other['delta']:.3g})-differential privacy."
        )
    return text


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
    return Access("training", run.id, dataset.name, dataset.ledger_id, mech, run.delta)


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
    committed); a public dataset is planned without a charge.

    Args:
        epsilon: the release's ε; the caller resolved the policy's default.
        cap: the fit dataset's ledger cap (the strictest of its names).

    Raises:
        BudgetExceeded: the release, composed with the ledger, would pass the cap (nothing is
            written).
        MitigationError: a non-positive ε.
    """
    from governance.fairness.dp_histograms import gaussian_mechanism

    dataset = lock_dataset(session, dataset_id)
    base = base_access(session, base_artifact_sha256)
    accesses = [base] if base is not None else []
    if is_public(session, dataset):
        return MitigationBudget(
            charged=False,
            epsilon=None,
            delta=None,
            mechanism=None,
            run_id=None,
            base_access=base,
            fit_dataset=dataset.name,
            fit_ledger=dataset.ledger_id,
            accesses=accesses,
        )
    if epsilon is None or not 0 < epsilon < math.inf:
        raise MitigationError("a mitigation on private rows needs a positive, finite epsilon")
    delta = base.delta if base is not None and base.ledger == dataset.ledger_id else cap.delta
    delta = min(delta, cap.delta)
    mechanism = gaussian_mechanism(epsilon=epsilon, delta=delta)
    admission = admit(
        session,
        dataset=dataset,
        planned=mechanism,
        private=True,
        cap=cap,
        shared_with=shared_with,
    )
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
    mine = Access(RUN_KIND, run.id, dataset.name, dataset.ledger_id, mechanism, delta)
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


def complete(
    session: Session, ctx: Context, budget: MitigationBudget, *, artifact_sha256: str
) -> None:
    """Mark the reserved release as spent by the registered version (a public fit: nothing).

    Raises:
        MitigationError: the reservation is gone or no longer reserved.
    """
    if budget.run_id is None or budget.mechanism is None or budget.delta is None:
        return
    run = session.get(TrainingRun, budget.run_id)
    if run is None or run.status != RESERVED:
        raise MitigationError(f"the mitigation's ledger run {budget.run_id} is not reserved")
    dataset = session.get(Dataset, run.dataset_id)
    assert dataset is not None
    run.status = COMPLETED
    run.epsilon = compose_epsilon([budget.mechanism], budget.delta)
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
            )
        ],
    )


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None
