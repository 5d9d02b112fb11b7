"""API schemas of training runs and the privacy-budget ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

from governance.db.base import StrictDbInt
from governance.privacy.kinds import EPOCHS_MAX, SEED_MAX, WORKERS_MAX, GradSampleMode, ModelKind
from governance.privacy.ledger import LedgerSummary
from governance.privacy.models import TrainingRun
from governance.privacy.service import TrainingRequest

NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class TrainingRunCreate(BaseModel):
    """A training run. Private (DP-SGD) unless ``private`` is false."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    dataset: str = Field(pattern=NAME)
    model: ModelKind = "mlp"
    private: StrictBool = True
    epsilon: StrictFloat | None = Field(default=1.0, gt=0, le=100)
    delta: StrictFloat | None = Field(default=None, gt=0, lt=1)
    epochs: StrictInt = Field(default=10, ge=1, le=EPOCHS_MAX)
    batch_size: StrictDbInt | None = Field(default=None, ge=1)
    lr: StrictFloat | None = Field(default=None, gt=0, le=10)
    seed: StrictInt = Field(
        default=0,
        ge=0,
        le=SEED_MAX,
        description="seeds model initialisation only; DP noise and sampling use secret OS entropy",
    )
    hidden: list[Annotated[StrictInt, Field(ge=1, le=4096)]] = Field(
        default=[64, 64], min_length=1, max_length=8, description="hidden layer widths"
    )
    max_grad_norm: StrictFloat = Field(
        default=1.0, gt=0, le=100, description="per-sample clipping bound"
    )
    grad_sample_mode: GradSampleMode = "ghost"
    workers: StrictInt = Field(
        default=1,
        ge=1,
        le=WORKERS_MAX,
        description="processes for data-parallel DP training (torch.distributed: gloo on CPU, "
        "NCCL with one GPU each); more than 1 needs a private run",
    )
    name: str | None = Field(default=None, pattern=NAME)
    version: str | None = Field(default=None, pattern=NAME)
    register_model: StrictBool = Field(
        default=True,
        alias="register",
        description="register the artifact in the model registry (needs api:models register)",
    )

    @model_validator(mode="after")
    def _epsilon_when_private(self) -> TrainingRunCreate:
        if self.private and self.epsilon is None:
            raise ValueError("epsilon is required for private training")
        if self.workers > 1 and not self.private:
            raise ValueError("several workers train privately only (Opacus DPDDP)")
        return self

    def to_request(self) -> TrainingRequest:
        return TrainingRequest(
            dataset=self.dataset,
            model_kind=self.model,
            epsilon=self.epsilon if self.private else None,
            delta=self.delta,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            hidden=tuple(self.hidden),
            max_grad_norm=self.max_grad_norm,
            grad_sample_mode=self.grad_sample_mode,
            workers=self.workers,
            name=self.name,
            version=self.version,
            register=self.register_model,
        )


class MechanismOut(BaseModel):
    """A DP-SGD run's mechanism: noise multiplier, sample rate and steps."""

    noise_multiplier: float
    sample_rate: float
    steps: int


class TrainingRunOut(BaseModel):
    """A training run: its dataset, mechanism, privacy spent and model."""

    id: int
    dataset: str
    dataset_hash: str
    status: str
    private: bool
    target_epsilon: float | None
    delta: float | None
    epsilon: float | None = Field(description="the run's own final ε (accountant), at its δ")
    planned: MechanismOut | None
    charged: MechanismOut | None = Field(description="what the run charges to the ledger")
    model_kind: str
    epochs: int
    batch_size: int
    seed: int
    model_name: str
    model_version: str
    registered: bool
    artifact_sha256: str | None
    test_accuracy: float | None
    error: str | None
    started_by: str
    started_at: datetime
    finished_at: datetime | None
    fit_dataset: str | None = Field(
        default=None,
        description="a zero-charge run (a mitigation fitted on public rows): the public "
        "dataset it read instead of this ledger's rows",
    )

    @classmethod
    def of(cls, run: TrainingRun, dataset: str) -> TrainingRunOut:
        planned = None
        if run.planned_noise_multiplier is not None and run.planned_sample_rate is not None:
            planned = MechanismOut(
                noise_multiplier=run.planned_noise_multiplier,
                sample_rate=run.planned_sample_rate,
                steps=int(run.planned_steps or 0),
            )
        mech = run.charged
        return cls(
            id=run.id,
            dataset=dataset,
            dataset_hash=run.dataset_hash,
            status=run.status,
            private=run.private,
            target_epsilon=run.target_epsilon,
            delta=run.delta,
            epsilon=run.epsilon,
            planned=planned,
            charged=MechanismOut(**mech.to_dict()) if mech is not None else None,
            model_kind=run.model_kind,
            epochs=run.epochs,
            batch_size=run.batch_size,
            seed=run.seed,
            model_name=run.model_name,
            model_version=run.model_version,
            registered=run.registered,
            artifact_sha256=run.artifact_sha256,
            test_accuracy=run.test_accuracy,
            error=run.error,
            started_by=run.started_by,
            started_at=run.started_at,
            finished_at=run.finished_at,
            fit_dataset=run.fit_dataset,
        )


class CapOut(BaseModel):
    """A dataset's privacy budget: its epsilon cap, what is spent and what remains."""

    epsilon: float
    delta: float
    allow_non_private: bool


class LedgerEntry(BaseModel):
    """One training run charged to a dataset's privacy budget."""

    run: int
    dataset: str = Field(description="the name the run was charged under")
    status: str
    private: bool
    charged: MechanismOut | None
    epsilon: float | None = Field(description="this run's ε at the cap's δ (null: unbounded)")
    started_by: str
    started_at: datetime


class LedgerOut(BaseModel):
    """A dataset's spend, recomposed (tight) and summed (naive), against its cap.

    The ledger belongs to the rows: every dataset registered with the same rows (or a subset or
    superset of them) charges it, and its entries are every run under any of those names.
    """

    dataset: str
    ledger: int | None = Field(description="the ledger's id (null: a bundled dataset not used yet)")
    shared_with: list[str] = Field(
        description="the other datasets charging this ledger (their rows match this one's)"
    )
    cap: CapOut = Field(description="the strictest cap of the names charging the ledger")
    epsilon_recomposed: float | None = Field(
        description="ε of all charged runs composed at once, the smaller of the PRV and PLD "
        "bounds, at the cap's δ; null when unbounded (a non-private run)"
    )
    accountant: str = Field(description="which accountant gave epsilon_recomposed: prv or pld")
    epsilon_naive: float | None = Field(
        description="sum of each run's ε at the cap's δ (basic composition)"
    )
    delta_naive: float = Field(description="δ of the naive sum: the cap's δ times the runs")
    remaining: float
    unbounded: bool
    entries: list[LedgerEntry]

    @classmethod
    def of(cls, summary: LedgerSummary) -> LedgerOut:
        doc = summary.to_dict()
        entries = []
        for run in summary.runs:
            mech = run.charged
            eps = summary.per_run_epsilon.get(run.id)
            entries.append(
                LedgerEntry(
                    run=run.id,
                    dataset=summary.run_datasets.get(run.id, summary.dataset),
                    status=run.status,
                    private=run.private,
                    charged=MechanismOut(**mech.to_dict()) if mech is not None else None,
                    epsilon=eps if eps is not None and eps != float("inf") else None,
                    started_by=run.started_by,
                    started_at=run.started_at,
                )
            )
        return cls(
            dataset=doc["dataset"],
            ledger=summary.ledger_id,
            shared_with=list(summary.shared_with),
            cap=CapOut(**doc["cap"]),
            epsilon_recomposed=doc["epsilon_recomposed"],
            accountant=doc["accountant"],
            epsilon_naive=doc["epsilon_naive"],
            delta_naive=doc["delta_naive"],
            remaining=doc["remaining"],
            unbounded=doc["unbounded"],
            entries=entries,
        )
