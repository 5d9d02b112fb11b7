"""The DP claim of an artifact, as the privacy ledger supports it, never as its manifest says.

A manifest is whatever its uploader sent: ``"epsilon": 0.5`` in it proves nothing. An artifact
carries a DP claim only when the ledger holds the completed runs that produced it, found by its
manifest's sha256 (``TrainingRun.artifact_sha256``): a training run, or a mitigation's release
whose base artifact (named in the mitigated manifest, which the hash pins) has its own training
run. The claim's ε is the composition of those runs' mechanisms (the smaller of the PRV and PLD
bounds, at the runs' largest δ). A mitigation fitted on rows a schema declares public is a
zero-charge run in the base's ledger: it charges no mechanism, and its presence is what proves
that nothing else read private rows.

Three outcomes:

- ``ledger``: every access that produced the artifact is in the ledger, with secret randomness;
- ``none``: no ledger run produced it, or one was not private: no DP guarantee;
- ``void``: the ledger has the run, but its manifest does not record that the mechanism's
  randomness was secret (trained while the noise came from the recorded seed): the claim is
  void until the model is retrained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.privacy.accounting import Mechanism, tightest_epsilon
from governance.privacy.kinds import SECRET_RANDOMNESS
from governance.privacy.models import COMPLETED, TrainingRun

ClaimStatus = Literal["ledger", "none", "void"]
NO_GUARANTEE = "no DP guarantee"
VOID = "void DP claim until retrained"
# The ledger's name for a mitigation's release (governance.fairness.mitigation.budget).
MITIGATION_KIND = "mitigation"
VOID_STATEMENT = (
    f"{VOID}: the run's noise and sampling were not drawn from a secret source "
    "(they followed from its recorded seed), so anyone could replay them"
)


def is_zero_charge(run: TrainingRun) -> bool:
    """A mitigation fitted on public rows: recorded in the base's ledger, charging nothing."""
    return (
        run.model_kind == MITIGATION_KIND
        and run.private
        and run.charged is None
        and run.fit_dataset is not None
    )


def access_kind(run: TrainingRun) -> str:
    """How a ledger run read data, in the words of a claim's statement."""
    if is_zero_charge(run):
        return f"mitigation on public {run.fit_dataset!r}, no charge"
    return MITIGATION_KIND if run.model_kind == MITIGATION_KIND else "training"


def ledger_statement(
    *, epsilon: float, delta: float, accountant: str, runs: list[tuple[int, str]]
) -> str:
    """The sentence a covered claim states, wherever it is shown (card, registry, report).

    Args:
        runs: ``(ledger run id, access kind)`` of every run that produced the artifact.
    """
    listed = ", ".join(f"{run_id} ({kind})" for run_id, kind in runs)
    return (
        f"({epsilon:.4g}, {delta:.3g})-differential privacy, composed over ledger "
        f"run{'s' if len(runs) > 1 else ''} {listed} with the {accountant.upper()} accountant "
        "(the smaller of PRV and PLD)"
    )


@dataclass(frozen=True)
class DpClaim:
    """What an artifact may claim, from the ledger.

    Attributes:
        status: ``ledger``, ``none`` or ``void`` (see the module docstring).
        statement: one sentence for a card, a registry answer or a report.
        epsilon: the composed ε (``ledger`` only).
        delta: its δ (``ledger`` only).
        accountant: ``"prv"`` or ``"pld"``, whichever gave ``epsilon``.
        runs: the ledger runs that produced the artifact.
        manifest_claims_dp: whether the artifact's own manifest says it is private; with a
            status other than ``ledger``, that claim is not covered: a finding.
    """

    status: ClaimStatus
    statement: str
    epsilon: float | None = None
    delta: float | None = None
    accountant: str | None = None
    runs: list[int] = field(default_factory=list)
    manifest_claims_dp: bool = False

    @property
    def uncovered(self) -> bool:
        """The manifest claims DP that the ledger does not support."""
        return self.manifest_claims_dp and self.status != "ledger"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _completed_runs(session: Session, artifact_sha256: str) -> list[TrainingRun]:
    return list(
        session.scalars(
            select(TrainingRun)
            .where(
                TrainingRun.artifact_sha256 == artifact_sha256,
                TrainingRun.status == COMPLETED,
            )
            .order_by(TrainingRun.id)
        )
    )


def _base_sha(training: dict[str, Any]) -> str | None:
    mitigation = training.get("mitigation")
    if isinstance(mitigation, dict):
        base = mitigation.get("base_artifact_sha256")
        if isinstance(base, str):
            return base
    return None


def claim_for(session: Session, *, artifact_sha256: str, manifest: dict[str, Any]) -> DpClaim:
    """The DP claim the ledger supports for an artifact.

    Args:
        session: a read transaction.
        artifact_sha256: sha256 of the artifact's ``manifest.json``.
        manifest: that manifest (read only where the ledger vouches for its hash).

    Returns:
        The claim; ``none`` for an artifact the ledger does not know.
    """
    training = manifest.get("training")
    training = training if isinstance(training, dict) else {}
    claims_dp = training.get("private") is True
    runs = _completed_runs(session, artifact_sha256)
    if not runs:
        return DpClaim(
            "none",
            f"{NO_GUARANTEE}: no run in the privacy ledger produced this artifact",
            manifest_claims_dp=claims_dp,
        )
    accesses = list(runs)
    if any(r.model_kind == MITIGATION_KIND for r in runs):
        base = _base_sha(training)
        base_runs = _completed_runs(session, base) if base else []
        if not base_runs:
            return DpClaim(
                "none",
                f"{NO_GUARANTEE}: the base model's training is not in the privacy ledger",
                runs=[r.id for r in runs],
                manifest_claims_dp=claims_dp,
            )
        accesses = [*base_runs, *runs]
    ids = [r.id for r in accesses]
    mechanisms: list[Mechanism] = []
    for run in accesses:
        if is_zero_charge(run):
            continue
        mech = run.charged
        if not run.private or mech is None or mech.noise_multiplier == 0.0:
            return DpClaim(
                "none",
                f"{NO_GUARANTEE}: ledger run {run.id} was not differentially private",
                runs=ids,
                manifest_claims_dp=claims_dp,
            )
        mechanisms.append(mech)
    if training.get("mechanism_randomness") not in SECRET_RANDOMNESS:
        return DpClaim(
            "void",
            VOID_STATEMENT,
            runs=ids,
            manifest_claims_dp=claims_dp,
        )
    deltas = [float(r.delta) for r in accesses if r.delta is not None and not is_zero_charge(r)]
    if not deltas:
        return DpClaim("none", NO_GUARANTEE, runs=ids, manifest_claims_dp=claims_dp)
    delta = max(deltas)
    tightest = tightest_epsilon(mechanisms, delta)
    if not math.isfinite(tightest.epsilon):
        return DpClaim("none", NO_GUARANTEE, runs=ids, manifest_claims_dp=claims_dp)
    return DpClaim(
        "ledger",
        ledger_statement(
            epsilon=tightest.epsilon,
            delta=delta,
            accountant=tightest.accountant,
            runs=[(r.id, access_kind(r)) for r in accesses],
        ),
        epsilon=tightest.epsilon,
        delta=delta,
        accountant=tightest.accountant,
        runs=ids,
        manifest_claims_dp=claims_dp,
    )
