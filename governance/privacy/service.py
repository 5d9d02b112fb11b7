"""Training runs under the privacy-budget ledger: admit, reserve, train, charge, register.

A run spans several transactions, so unlike other services this one takes a ``sessionmaker``:

1. resolve the dataset (registering a bundled one on first use); commit;
2. load the data, refusing it if its bytes changed since registration (409);
3. lock the dataset and its ledger (shared by every name registered with the same rows),
   compose the planned mechanism with the ledger, refuse over the cap
   (409, ledger unchanged, a ``privacy.run``/``refuse`` event in its own transaction), else
   write the ``reserved`` row and a ``privacy.run``/``start`` event; COMMIT before training;
4. train (long, outside any transaction);
5. charge the mechanism actually run (``complete``), or the one an aborted run spent
   (``abort``); commit;
6. optionally register the artifact in the model registry with ``trained_by`` set.

The API runs this synchronously in a worker thread: Adult trains in tens of seconds on CPU.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.audit import log as audit_log
from governance.config import Settings
from governance.datasets.models import Dataset
from governance.datasets.schemas import DatasetLedger
from governance.datasets.service import datasets as dataset_service
from governance.db.base import utcnow
from governance.errors import Conflict, NotFound
from governance.kit.context import Context
from governance.privacy.accounting import Mechanism, noise_for_epsilon
from governance.privacy.errors import (
    PrivacyError,
    SecureModeUnavailable,
    TrainingAborted,
    TrainingConfigError,
)
from governance.privacy.kinds import GradSampleMode, ModelKind
from governance.privacy.ledger import (
    BudgetCap,
    BudgetExceeded,
    LedgerSummary,
    NonPrivateRefused,
    admit,
    load_privacy_policy,
    lock_dataset,
    run_event,
    strictest,
    summarize,
)
from governance.privacy.models import ABORTED, COMPLETED, FAILED, RESERVED, TrainingRun
from governance.registry.models import ModelVersion
from governance.registry.service import registry as registry_service

if TYPE_CHECKING:
    from governance.datasets.tabular import LoadedDataset

logger = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]
# Defaults that reach about 85% on Adult (non-private) and within 1.5 points of it at ε = 1.
PRIVATE_DEFAULTS = {"batch_size": 2048, "lr": 5e-3}
NON_PRIVATE_DEFAULTS = {"batch_size": 512, "lr": 3e-3}


class RunNotFound(PrivacyError):
    status_code = 404
    title = "Training run not found"
    type_slug = "training-run-not-found"


class ModelVersionTaken(PrivacyError):
    """The run would register a model name and version that exist (checked before training)."""

    status_code = 409
    title = "Model version already registered"
    type_slug = "model-version-taken"


class DatasetReplaced(PrivacyError):
    """The dataset was registered again while this run was loading it (409)."""

    status_code = 409
    title = "Dataset replaced during the run"
    type_slug = "dataset-replaced"


@dataclass(frozen=True)
class TrainingRequest:
    """What to train. ``epsilon`` None means non-private (only where the policy permits).

    Attributes:
        dataset: a registered (or bundled) dataset's name.
        model_kind: ``"mlp"`` or ``"logreg"``.
        epsilon: this run's target ε; None for non-private training.
        delta: δ of the run's guarantee; defaults to the schema's, else the cap's.
        epochs: passes over the data.
        batch_size: expected batch size; defaults depend on privacy.
        lr: Adam learning rate; defaults depend on privacy.
        seed: seeds model initialisation only (DP noise and sampling use secret OS entropy).
        hidden: MLP widths.
        max_grad_norm: per-sample clipping norm.
        grad_sample_mode: ``"ghost"`` or ``"hooks"``.
        name: model name (default ``<dataset>-<model_kind>``).
        version: model version (default ``run-<run id>``).
        register: register the artifact in the model registry.
        workers: processes for data-parallel DP training; the ledger is charged once, at the
            global sample rate.
    """

    dataset: str
    model_kind: ModelKind = "mlp"
    epsilon: float | None = 1.0
    delta: float | None = None
    epochs: int = 10
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    hidden: tuple[int, ...] = (64, 64)
    max_grad_norm: float = 1.0
    grad_sample_mode: GradSampleMode = "ghost"
    name: str | None = None
    version: str | None = None
    register: bool = False
    workers: int = 1

    @property
    def private(self) -> bool:
        return self.epsilon is not None


@dataclass(frozen=True)
class _Plan:
    mechanism: Mechanism
    delta: float
    batch_size: int
    lr: float


def plan_mechanism(
    *, train_rows: int, batch_size: int, epochs: int, epsilon: float | None, delta: float
) -> Mechanism:
    """The mechanism :func:`~governance.privacy.training.train` will run, computed beforehand.

    It mirrors the trainer: ``q = 1 / ceil(n / batch)`` and ``epochs * int(1 / q)`` Poisson
    steps, with σ from the same (cached) search. A non-private run is σ = 0.

    Raises:
        TrainingConfigError: parameters no run could have.
        AccountingError: no σ reaches the target.
    """
    if epochs < 1 or not 1 <= batch_size <= train_rows:
        raise TrainingConfigError(
            "epochs must be >= 1 and batch_size between 1 and the number of training rows"
        )
    batches = math.ceil(train_rows / batch_size)
    if epsilon is None:
        return Mechanism(0.0, min(1.0, batch_size / train_rows), batches * epochs)
    sample_rate = 1 / batches
    steps = epochs * int(1 / sample_rate)
    sigma = noise_for_epsilon(
        target_epsilon=epsilon, delta=delta, sample_rate=sample_rate, steps=steps
    )
    return Mechanism(sigma, sample_rate, steps)


class TrainingService:
    def cap(
        self, session: Session, settings: Settings, dataset: Dataset | None, name: str
    ) -> BudgetCap:
        """The budget of the dataset's ledger: the strictest cap of the names charging it.

        Non-private training only where the policy AND the schema permit it, for every name.
        """
        policy = load_privacy_policy(settings.policies_dir)
        if dataset is None:
            return policy.cap_for(name)
        sharing = session.scalars(
            select(Dataset).where(Dataset.ledger_id == dataset.ledger_id).order_by(Dataset.id)
        ).all()
        caps = []
        for member in {m.id: m for m in [dataset, *sharing]}.values():
            cap = policy.cap_for(member.name)
            if cap.allow_non_private:
                allowed = dataset_service.schema_of(member).privacy.allow_non_private
                if not allowed:
                    cap = BudgetCap(cap.epsilon, cap.delta, allow_non_private=False)
            caps.append(cap)
        return strictest(caps)

    def ledger(self, session: Session, settings: Settings, name: str) -> LedgerSummary:
        """A dataset's spend: its ledger's, shared with every name holding the same rows.

        A bundled dataset not yet used has spent nothing.

        Raises:
            DatasetNotRegistered: unknown dataset.
        """
        from governance.datasets.service import BUNDLED

        row = session.scalar(select(Dataset).where(Dataset.name == name))
        if row is None and name not in BUNDLED:
            dataset_service.get(session, name)  # raises the 404
        return summarize(
            session,
            dataset=row,
            name=name,
            cap=self.cap(session, settings, row, name),
            shared_with=dataset_service.shared_with(session, row) if row is not None else (),
        )

    def dataset_ledger(self, session: Session, settings: Settings, row: Dataset) -> DatasetLedger:
        """The ledger a registered dataset charges, as its registration answer shows it."""
        summary = self.ledger(session, settings, row.name)
        assert summary.ledger_id is not None  # a registered dataset always has one
        return DatasetLedger(
            id=summary.ledger_id,
            shared_with=list(summary.shared_with),
            epsilon_spent=_json_eps(summary.epsilon_recomposed),
            cap_epsilon=summary.cap.epsilon,
            cap_delta=summary.cap.delta,
            remaining=summary.remaining,
            runs=len(summary.runs),
        )

    def list(self, session: Session, dataset: str | None = None) -> list[tuple[TrainingRun, str]]:
        query = select(TrainingRun, Dataset.name).join(Dataset).order_by(TrainingRun.id)
        if dataset is not None:
            query = query.where(Dataset.name == dataset)
        return [(run, name) for run, name in session.execute(query)]

    def get(self, session: Session, run_id: int) -> tuple[TrainingRun, str]:
        found = session.execute(
            select(TrainingRun, Dataset.name).join(Dataset).where(TrainingRun.id == run_id)
        ).first()
        if found is None:
            raise RunNotFound(f"training run {run_id} does not exist")
        return found[0], found[1]

    def run(
        self,
        sessions: sessionmaker[Session],
        ctx: Context,
        *,
        settings: Settings,
        request: TrainingRequest,
        progress: ProgressFn | None = None,
    ) -> TrainingRun:
        """Admit, reserve, train, charge and (optionally) register one run.

        Args:
            sessions: opens the run's transactions (the reservation commits before training).
            ctx: who trains (recorded as the model's ``trained_by``).
            settings: device, policies, data and models folders.
            request: what to train.
            progress: called after each epoch with ``{epoch, epochs, epsilon_spent, seconds}``.

        Returns:
            The finished ledger row (``completed``).

        Raises:
            DatasetNotRegistered: unknown dataset (404).
            DatasetChanged: the data changed since registration (409).
            NonPrivateRefused: non-private training not permitted (403).
            BudgetExceeded: the run would pass the dataset's cap (409; ledger unchanged).
            ModelVersionTaken: ``register`` with a name and version already registered (409).
            TrainingConfigError: invalid parameters (422; charged nothing).
            TrainingAborted: training failed after it began (500; charged what it spent).
        """
        if request.workers < 1 or (request.workers > 1 and not request.private):
            raise TrainingConfigError(
                "workers must be at least 1; several workers need a private run"
            )
        with sessions.begin() as session:
            row = dataset_service.resolve(session, ctx, request.dataset)
            dataset_id = row.id
            # Checked again under the ledger's lock: a copy registered meanwhile may tighten it.
            cap = self.cap(session, settings, row, row.name)
            session.expunge(row)
        loaded = dataset_service.load(row)
        schema_delta = loaded.schema.privacy.delta
        delta = request.delta if request.delta is not None else (schema_delta or cap.delta)
        if request.private and delta > cap.delta:
            raise TrainingConfigError(
                f"delta {delta:g} is above the dataset's cap of {cap.delta:g}"
            )
        defaults = PRIVATE_DEFAULTS if request.private else NON_PRIVATE_DEFAULTS
        batch_size = int(request.batch_size or defaults["batch_size"])
        plan = _Plan(
            mechanism=plan_mechanism(
                train_rows=len(loaded.train),
                batch_size=batch_size,
                epochs=request.epochs,
                epsilon=request.epsilon,
                delta=delta,
            ),
            delta=delta,
            batch_size=batch_size,
            lr=float(request.lr or defaults["lr"]),
        )
        # Opacus is imported with the trainer, by the first training run, not at start; and
        # before the budget is reserved, so that a failed import cannot strand a reservation.
        from governance.privacy.training import train as train_model

        run_id, name, version = self._reserve(
            sessions, ctx, settings, dataset_id, loaded, request, plan
        )
        out_dir = settings.data_dir / "training" / f"run-{run_id}"
        try:
            result = train_model(
                dataset=loaded,
                model_kind=request.model_kind,
                hidden=request.hidden,
                epochs=request.epochs,
                batch_size=plan.batch_size,
                lr=plan.lr,
                epsilon=request.epsilon,
                delta=delta,
                max_grad_norm=request.max_grad_norm,
                seed=request.seed,
                device=settings.device,
                grad_sample_mode=request.grad_sample_mode,
                progress=progress,
                out_dir=out_dir,
                name=name,
                version=version,
                workers=request.workers,
            )
        except (TrainingConfigError, SecureModeUnavailable) as exc:
            # Refused before any step ran: nothing was spent.
            self._finish(sessions, ctx, run_id, FAILED, Mechanism(0.0, 1.0, 0), error=exc)
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        except TrainingAborted as exc:
            mech = exc.mechanism
            if mech is None:  # a non-private run: what it touched is unbounded
                mech = plan.mechanism
            self._finish(sessions, ctx, run_id, ABORTED, mech, error=exc)
            raise
        except Exception as exc:
            # Unknown failure: keep the planned charge, which bounds anything it could have run.
            self._finish(sessions, ctx, run_id, ABORTED, plan.mechanism, error=exc)
            raise TrainingAborted(
                f"training failed ({type(exc).__name__})", steps_done=0, mechanism=None
            ) from exc
        actual = result.mechanism or plan.mechanism
        sha = _manifest_sha(out_dir)
        run = self._finish(
            sessions,
            ctx,
            run_id,
            COMPLETED,
            actual,
            artifact_sha256=sha,
            test_accuracy=result.test_accuracy,
            epsilon=result.epsilon,
        )
        if request.register:
            with sessions.begin() as session:
                registry_service.register(
                    session,
                    ctx,
                    source_dir=out_dir,
                    models_dir=settings.resolved_models_dir,
                    trained_by=ctx.name,
                )
                fresh = session.get(TrainingRun, run_id)
                assert fresh is not None
                fresh.registered = True
                run = fresh
            shutil.rmtree(out_dir, ignore_errors=True)
        return run

    def _reserve(
        self,
        sessions: sessionmaker[Session],
        ctx: Context,
        settings: Settings,
        dataset_id: int,
        loaded: LoadedDataset,
        request: TrainingRequest,
        plan: _Plan,
    ) -> tuple[int, str, str]:
        try:
            with sessions.begin() as session:
                dataset = lock_dataset(session, dataset_id)
                if dataset.content_hash != loaded.content_hash:
                    raise DatasetReplaced(
                        f"dataset {dataset.name!r} was registered again while the run loaded it"
                    )
                cap = self.cap(session, settings, dataset, dataset.name)
                shared_with = dataset_service.shared_with(session, dataset)
                admission = admit(
                    session,
                    dataset=dataset,
                    planned=plan.mechanism,
                    private=request.private,
                    cap=cap,
                    shared_with=shared_with,
                )
                name = request.name or f"{dataset.name[:56]}-{request.model_kind}"
                if request.version is not None and request.register:
                    self._check_free(session, name, request.version)
                run = TrainingRun(
                    dataset_id=dataset.id,
                    dataset_hash=dataset.content_hash,
                    status=RESERVED,
                    private=request.private,
                    target_epsilon=request.epsilon,
                    delta=plan.delta if request.private else None,
                    planned_noise_multiplier=plan.mechanism.noise_multiplier,
                    planned_sample_rate=plan.mechanism.sample_rate,
                    planned_steps=plan.mechanism.steps,
                    noise_multiplier=plan.mechanism.noise_multiplier,
                    sample_rate=plan.mechanism.sample_rate,
                    steps=plan.mechanism.steps,
                    model_kind=request.model_kind,
                    epochs=request.epochs,
                    batch_size=plan.batch_size,
                    seed=request.seed,
                    model_name=name,
                    model_version=request.version or "pending",
                    registered=False,
                    started_by=ctx.name,
                )
                session.add(run)
                session.flush()
                if request.version is None:
                    run.model_version = f"run-{run.id}"
                    if request.register:
                        self._check_free(session, name, run.model_version)
                audit_log.append(
                    session,
                    [
                        run_event(
                            ctx,
                            "start",
                            run,
                            dataset.name,
                            cap_epsilon=cap.epsilon,
                            cap_delta=cap.delta,
                            ledger=dataset.ledger_id,
                            ledger_shared_with=shared_with,
                            epsilon_before=_json_eps(admission.before),
                            epsilon_after=_json_eps(admission.after),
                            workers=request.workers,
                        )
                    ],
                )
                return run.id, run.model_name, run.model_version
        except (BudgetExceeded, NonPrivateRefused) as exc:
            # The ledger is unchanged (rolled back); the refusal itself is evidence.
            with sessions.begin() as session:
                audit_log.append(
                    session,
                    [
                        ctx.event(
                            "privacy.run",
                            "refuse",
                            decision="deny",
                            reason=exc.message,
                            resource={"dataset": request.dataset},
                            details={
                                "private": request.private,
                                "target_epsilon": request.epsilon,
                                "mechanism": plan.mechanism.to_dict(),
                                **{k: v for k, v in exc.extra.items() if k != "dataset"},
                            },
                        )
                    ],
                )
            raise

    def _check_free(self, session: Session, name: str, version: str) -> None:
        taken = session.scalar(
            select(ModelVersion.id).where(
                ModelVersion.name == name, ModelVersion.version == version
            )
        )
        if taken is not None:
            raise ModelVersionTaken(f"model {name} version {version} is already registered")

    def _finish(
        self,
        sessions: sessionmaker[Session],
        ctx: Context,
        run_id: int,
        status: str,
        charged: Mechanism,
        *,
        error: BaseException | None = None,
        artifact_sha256: str | None = None,
        test_accuracy: float | None = None,
        epsilon: float | None = None,
    ) -> TrainingRun:
        with sessions.begin() as session:
            run = session.get(TrainingRun, run_id)
            if run is None:
                raise NotFound(f"training run {run_id} vanished")
            if run.status != RESERVED:
                raise Conflict(f"training run {run_id} is already {run.status}")
            dataset = session.get(Dataset, run.dataset_id)
            assert dataset is not None
            run.status = status
            run.noise_multiplier = charged.noise_multiplier
            run.sample_rate = charged.sample_rate
            run.steps = charged.steps
            run.epsilon = epsilon
            run.artifact_sha256 = artifact_sha256
            run.test_accuracy = test_accuracy
            # The error's type and its safe message: WardenError messages never hold data.
            if error is not None:
                message = getattr(error, "message", None) or type(error).__name__
                run.error = f"{type(error).__name__}: {message}"[:500]
            run.finished_at = utcnow()
            session.flush()
            action = {COMPLETED: "complete", ABORTED: "abort", FAILED: "fail"}[status]
            details: dict[str, Any] = {"planned_steps": run.planned_steps}
            if status == COMPLETED:
                details.update(
                    epsilon=epsilon, artifact_sha256=artifact_sha256, test_accuracy=test_accuracy
                )
            else:
                details["error"] = type(error).__name__ if error is not None else None
            audit_log.append(
                session,
                [
                    run_event(
                        ctx,
                        action,
                        run,
                        dataset.name,
                        **details,
                    )
                ],
            )
            return run


def _json_eps(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _manifest_sha(artifact_dir: Path) -> str:
    from inference.artifact import MANIFEST_FILE, sha256_file

    return sha256_file(artifact_dir / MANIFEST_FILE)


training = TrainingService()
