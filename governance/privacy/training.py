"""Training tabular models with differential privacy (Opacus DP-SGD), or without it.

One code path serves both: the same encoding, model, optimizer (Adam) and evaluation; the
private run adds Poisson sampling, per-sample clipping and Gaussian noise through Opacus with
the PRV accountant. The artifact's manifest records the guarantee and what the ledger must
charge (:class:`~governance.privacy.accounting.Mechanism`).

Noise is planned for the exact number of steps the Poisson sampler runs
(``epochs * int(1 / q)``), under Opacus' PRV bound (:func:`noise_for_epsilon`), then applied
with ``PrivacyEngine.make_private``. ``make_private_with_epsilon`` plans ``int(epochs / q)``
steps instead, which float rounding can make differ from the steps that run (q = 1/75, 3
epochs: 224 planned, 225 run), and its final ε then exceeds the target. The final ε recorded is
the smaller of the PRV and PLD bounds over the steps that ran, ≤ the planned PRV one ≤ target.

The mechanism's randomness (Gaussian noise, Poisson sampling) comes from generators seeded with
secret OS entropy per run (:func:`governance.randomness.mechanism_seed`), never from ``seed``
and never recorded; ``seed`` makes model initialisation (and non-private shuffling)
reproducible. Nothing computed from the training rows leaves this module except the weights:
no loss curve, no count (see docs/privacy.md).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import opacus
import pandas as pd
import torch
from opacus import PrivacyEngine
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.validators.errors import UnsupportedModuleError
from torch import nn
from torch.utils.data import DataLoader, Dataset

from governance.datasets.encoding import (
    PREPROCESSING_PROVENANCE,
    encode_features,
    manifest_features,
)
from governance.datasets.tabular import LoadedDataset

# Imported for its registration: Opacus' ghost clipping takes LayerNorm norms from it.
from governance.privacy import norm_samplers  # noqa: F401
from governance.privacy.accounting import (
    Mechanism,
    compose_epsilon,
    noise_for_epsilon,
    tightest_epsilon,
)
from governance.privacy.errors import SecureModeUnavailable, TrainingAborted, TrainingConfigError
from governance.privacy.kinds import OS_ENTROPY, SECURE_RNG, GradSampleMode, ModelKind
from governance.privacy.model_card import MODEL_CARD_FILE, build_model_card, render_model_card
from governance.privacy.provenance import TrainingData, TrainingRecord
from governance.randomness import mechanism_seed
from inference.architectures import build_model
from inference.artifact import MANIFEST_FILE, save_artifact
from inference.device import select_device
from inference.manifest import NAME_RE, Architecture, Manifest

logger = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]
EVAL_BATCH = 8192


class TensorRows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Rows of two aligned tensors, fetched a whole batch at a time.

    ``__getitems__`` lets the DataLoader index the tensors once per batch instead of once per
    row, which keeps data loading out of the DP overhead being measured.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: Sequence[int]) -> list[torch.Tensor]:
        idx = torch.as_tensor(list(indices), dtype=torch.long, device=self.y.device)
        return [self.x[idx], self.y[idx]]


def collate_batch(batch: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The batch is already stacked by :meth:`TensorRows.__getitems__`."""
    return list(batch)


@dataclass(frozen=True)
class TrainResult:
    """What a run produced and what it spent.

    Attributes:
        artifact_dir: the artifact folder written.
        manifest: its parsed manifest.
        private: whether DP was used.
        epsilon: the accountant's final ε (None when non-private).
        delta: δ of the guarantee (None when non-private).
        mechanism: what to charge to the dataset's ledger (None when non-private).
        test_accuracy: accuracy on the test split.
        metrics: all test metrics recorded in the manifest.
        grad_sample_mode: the per-sample gradient mode that ran (None when non-private).
        epoch_seconds: wall time of each epoch.
        history: per-epoch ``{epoch, epochs, epsilon_spent, seconds}`` (no statistic of the
            training rows: nothing computed from them leaves the run without DP).
    """

    artifact_dir: Path
    manifest: Manifest
    private: bool
    epsilon: float | None
    delta: float | None
    mechanism: Mechanism | None
    test_accuracy: float
    metrics: dict[str, float]
    grad_sample_mode: str | None
    epoch_seconds: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Setup:
    module: nn.Module  # the plain module; Opacus wraps the same parameters
    model: nn.Module  # what is called in the loop (wrapped when private)
    optimizer: torch.optim.Optimizer
    criterion: Callable[..., Any]
    loader: DataLoader[Any]
    engine: PrivacyEngine | None = None
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    planned_steps: int = 0
    mode: str | None = None
    layer_modes: dict[str, str] = field(default_factory=dict)
    # Steps run by replicas in other processes (``workers > 1``), which have no local engine.
    replica_steps: int | None = None


def _validate(
    *,
    dataset: LoadedDataset,
    model_kind: str,
    hidden: tuple[int, ...],
    epochs: int,
    batch_size: int,
    lr: float,
    epsilon: float | None,
    delta: float,
    max_grad_norm: float,
    grad_sample_mode: str,
    name: str,
    version: str,
    out_dir: Path,
) -> None:
    problems: list[str] = []
    if model_kind not in ("mlp", "logreg"):
        problems.append("model_kind must be 'mlp' or 'logreg'")
    if model_kind == "mlp" and (not hidden or any(h <= 0 for h in hidden)):
        problems.append("hidden must be a non-empty tuple of positive widths")
    if epochs < 1:
        problems.append("epochs must be >= 1")
    if not 1 <= batch_size <= len(dataset.train):
        problems.append("batch_size must be between 1 and the number of training rows")
    if not (math.isfinite(lr) and lr > 0):
        problems.append("lr must be a positive number")
    if epsilon is not None and not (math.isfinite(epsilon) and epsilon > 0):
        problems.append("epsilon must be a positive number, or None for non-private training")
    # δ ≥ 1/n would allow publishing one whole record outright: refuse it.
    if epsilon is not None and not 0 < delta < 1 / len(dataset.train):
        problems.append("delta must be in (0, 1/n) for n training rows")
    if not (math.isfinite(max_grad_norm) and max_grad_norm > 0):
        problems.append("max_grad_norm must be a positive number")
    if grad_sample_mode not in ("ghost", "hooks"):
        problems.append("grad_sample_mode must be 'ghost' or 'hooks'")
    for label, value in (("name", name), ("version", version)):
        if not NAME_RE.match(value):
            problems.append(f"{label} must match {NAME_RE.pattern}")
    if (out_dir / MANIFEST_FILE).exists():
        problems.append("out_dir already holds an artifact")
    if problems:
        raise TrainingConfigError("invalid training configuration: " + "; ".join(problems))


def _layer_modes(module: nn.Module, mode: str) -> dict[str, str]:
    """How Opacus computes each trainable layer's per-sample gradient norm in ``mode``."""
    out: dict[str, str] = {}
    for name, sub in module.named_modules():
        if not any(p.requires_grad for p in sub.parameters(recurse=False)):
            continue
        if mode == "hooks":
            out[name] = "per_sample_gradients"
        elif type(sub) in GradSampleModuleFastGradientClipping.NORM_SAMPLERS:
            out[name] = "ghost_norm"
        else:
            out[name] = "fast_gradient_clipping"
    return out


def _make_private(
    *,
    new_module: Callable[[], nn.Module],
    rows: TensorRows,
    batch_size: int,
    lr: float,
    epsilon: float,
    delta: float,
    epochs: int,
    max_grad_norm: float,
    device: torch.device,
    grad_sample_mode: str,
    secure_mode: bool,
) -> _Setup:
    # Secret per run and never recorded: a seed anyone knows would let them replay the
    # batches and the noise, and the guarantee would be void. secure_mode uses Opacus' CSPRNG.
    sampler_gen = None if secure_mode else torch.Generator().manual_seed(mechanism_seed())
    base_loader: DataLoader[Any] = DataLoader(
        rows, batch_size=batch_size, collate_fn=collate_batch, generator=sampler_gen
    )
    # Exactly what Opacus' DPDataLoader and accountant hook will use.
    sample_rate = 1 / len(base_loader)
    planned_steps = epochs * int(1 / sample_rate)
    sigma = noise_for_epsilon(
        target_epsilon=epsilon, delta=delta, sample_rate=sample_rate, steps=planned_steps
    )
    planned_eps = compose_epsilon([Mechanism(sigma, sample_rate, planned_steps)], delta)
    if planned_eps > epsilon:
        raise TrainingConfigError("the planned noise does not meet the target epsilon")

    for mode in dict.fromkeys([grad_sample_mode, "hooks"]):
        module = new_module()
        optimizer = torch.optim.Adam(module.parameters(), lr=lr)
        criterion = nn.CrossEntropyLoss()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Secure RNG turned off")
                engine = PrivacyEngine(accountant="prv", secure_mode=secure_mode)
            noise_gen = (
                None if secure_mode else torch.Generator(device).manual_seed(mechanism_seed())
            )
            made = engine.make_private(
                module=module,
                optimizer=optimizer,
                criterion=criterion,
                data_loader=base_loader,
                noise_multiplier=sigma,
                max_grad_norm=max_grad_norm,
                poisson_sampling=True,
                noise_generator=noise_gen,
                grad_sample_mode=mode,
            )
        except ImportError as exc:
            raise SecureModeUnavailable(
                "secure_mode needs the torchcsprng package, which is not installed"
            ) from exc
        except (UnsupportedModuleError, NotImplementedError, ValueError) as exc:
            if mode == "hooks":
                raise TrainingConfigError("Opacus cannot train this model privately") from exc
            logger.warning("ghost clipping unavailable for this model (%s); using hooks", exc)
            continue
        if len(made) == 4:
            model, dp_optimizer, dp_criterion, loader = made
        else:
            (model, dp_optimizer, loader), dp_criterion = made, criterion
        if len(loader) * epochs != planned_steps:
            raise TrainingConfigError("the Poisson sampler disagrees with the planned steps")
        return _Setup(
            module=module,
            model=model,
            optimizer=dp_optimizer,
            criterion=dp_criterion,
            loader=loader,
            engine=engine,
            noise_multiplier=sigma,
            sample_rate=sample_rate,
            planned_steps=planned_steps,
            mode=mode,
            layer_modes=_layer_modes(module, mode),
        )
    raise TrainingConfigError("Opacus cannot train this model privately")


def _steps_spent(engine: PrivacyEngine) -> int:
    return int(sum(steps for _, _, steps in engine.accountant.history))


def _spent(setup: _Setup) -> Mechanism | None:
    """The mechanism a private run has spent so far; None when non-private."""
    if setup.noise_multiplier is None or setup.sample_rate is None:
        return None
    if setup.engine is not None:
        return Mechanism(setup.noise_multiplier, setup.sample_rate, _steps_spent(setup.engine))
    if setup.replica_steps is not None:
        return Mechanism(setup.noise_multiplier, setup.sample_rate, setup.replica_steps)
    return None


def _aborted(setup: _Setup, exc: BaseException) -> TrainingAborted:
    """The error for a run that failed after it began, with the mechanism it spent."""
    mech = _spent(setup)
    steps_done = mech.steps if mech is not None else 0
    return TrainingAborted(
        f"training failed after {steps_done} steps ({type(exc).__name__})",
        steps_done=steps_done,
        mechanism=mech,
    )


@torch.no_grad()
def _predict(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    module.eval()
    probs = [
        torch.softmax(module(x[i : i + EVAL_BATCH]), dim=1) for i in range(0, len(x), EVAL_BATCH)
    ]
    return torch.cat(probs).cpu()


def _metrics(probs: torch.Tensor, y: np.ndarray) -> dict[str, float]:
    pred = probs.argmax(dim=1).numpy()
    p_true = probs[torch.arange(len(y)), torch.from_numpy(y)].clamp_min(1e-12)
    positives = float(y.mean())
    return {
        "test_accuracy": float((pred == y).mean()),
        "test_log_loss": float(-torch.log(p_true).mean()),
        "test_selection_rate": float(pred.mean()),
        "test_base_rate": positives,
        "test_majority_accuracy": max(positives, 1 - positives),
        "test_rows": float(len(y)),
    }


def _group_metrics(
    probs: torch.Tensor, y: np.ndarray, sensitive: pd.DataFrame
) -> dict[str, dict[str, dict[str, float]]]:
    pred = probs.argmax(dim=1).numpy()
    frame = pd.DataFrame({"correct": pred == y, "selected": pred})
    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in sensitive.columns:
        groups = frame.groupby(sensitive[column].to_numpy())
        out[column] = {
            str(group): {
                "accuracy": float(part["correct"].mean()),
                "selection_rate": float(part["selected"].mean()),
            }
            for group, part in groups
        }
    return out


def _run_epochs(
    setup: _Setup,
    *,
    run: int,
    epochs: int,
    delta: float,
    history: list[dict[str, Any]],
    epoch_seconds: list[float],
    progress: ProgressFn | None,
) -> None:
    """Train ``run`` epochs in this process, recording each one's time and ε spent so far."""
    for epoch in range(1, run + 1):
        start = time.perf_counter()
        setup.model.train()
        for xb, yb in setup.loader:
            setup.optimizer.zero_grad(set_to_none=True)
            loss = setup.criterion(setup.model(xb), yb)
            loss.backward()
            setup.optimizer.step()
        epoch_seconds.append(time.perf_counter() - start)
        spent = None
        if setup.engine is not None:
            assert setup.noise_multiplier is not None and setup.sample_rate is not None
            so_far = Mechanism(
                setup.noise_multiplier, setup.sample_rate, _steps_spent(setup.engine)
            )
            spent = compose_epsilon([so_far], delta)
        record = {
            "epoch": epoch,
            "epochs": epochs,
            "epsilon_spent": spent,
            "seconds": epoch_seconds[-1],
        }
        history.append(record)
        if progress is not None:
            progress(dict(record))


def train(
    *,
    dataset: LoadedDataset,
    model_kind: ModelKind = "mlp",
    hidden: tuple[int, ...] = (64, 64),
    epochs: int,
    batch_size: int,
    lr: float,
    epsilon: float | None,
    delta: float,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    device: str = "auto",
    grad_sample_mode: GradSampleMode = "ghost",
    secure_mode: bool = False,
    progress: ProgressFn | None = None,
    out_dir: str | Path,
    name: str,
    version: str,
    workers: int = 1,
) -> TrainResult:
    """Train a classifier on a dataset, privately unless ``epsilon`` is None, and save it.

    The caller enforces the dataset's ``allow_non_private`` and its privacy budget (the ledger)
    before calling; this function enforces the per-run guarantee. ``batch_size`` is the
    expected batch of Poisson sampling when private; ``delta`` must be below 1/n. ``seed``
    seeds model initialisation (and non-private shuffling) only, never the mechanism's noise or
    sampling. ``grad_sample_mode="ghost"`` falls back to hooks where the layers do not allow
    it. ``workers`` > 1 trains data-parallel replicas (a private run only); ``out_dir`` must not
    hold an artifact already. ``progress`` gets ``{epoch, epochs, epsilon_spent, seconds}``
    after each epoch.

    Raises:
        TrainingConfigError: invalid parameters (nothing was spent).
        SecureModeUnavailable: secure mode without torchcsprng (nothing was spent).
        TrainingAborted: the run failed after it started; carries the mechanism spent so far.
    """
    out = Path(out_dir)
    _validate(
        dataset=dataset,
        model_kind=model_kind,
        hidden=tuple(hidden),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        epsilon=epsilon,
        delta=delta,
        max_grad_norm=max_grad_norm,
        grad_sample_mode=grad_sample_mode,
        name=name,
        version=version,
        out_dir=out,
    )
    if workers < 1 or (workers > 1 and epsilon is None):
        raise TrainingConfigError("workers must be at least 1; several workers need a private run")
    try:
        dev = select_device(device)
    except ValueError as exc:
        raise TrainingConfigError(str(exc)) from exc
    schema = dataset.schema
    x_train = encode_features(schema, dataset.train.features).to(dev)
    y_train = torch.from_numpy(dataset.train.labels).to(dev)
    x_test = encode_features(schema, dataset.test.features).to(dev)
    arch = Architecture(
        kind=model_kind,
        input_dim=int(x_train.shape[1]),
        output_dim=2,
        hidden=tuple(hidden) if model_kind == "mlp" else (),
    )

    def new_module() -> nn.Module:
        torch.manual_seed(seed)
        return build_model(arch).to(dev)

    rows = TensorRows(x_train, y_train)
    private = epsilon is not None
    topology: dict[str, Any] = {"workers": 1, "device": dev.type}
    history: list[dict[str, Any]] = []
    epoch_seconds: list[float] = []
    # Replicas run their epochs in their own processes; this process then only evaluates.
    epochs_to_run = epochs if workers == 1 else 0
    if epsilon is not None and workers > 1:
        from governance.privacy.distributed import train_replicas

        replicas = train_replicas(
            architecture=arch,
            x=x_train,
            y=y_train,
            workers=workers,
            device=dev,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            epsilon=epsilon,
            delta=delta,
            max_grad_norm=max_grad_norm,
            seed=seed,
        )
        topology = replicas.topology
        charged = replicas.mechanism
        setup = _Setup(
            module=replicas.module,
            model=replicas.module,
            optimizer=torch.optim.Adam(replicas.module.parameters(), lr=lr),
            criterion=nn.CrossEntropyLoss(),
            loader=DataLoader(rows, batch_size=batch_size, collate_fn=collate_batch),
            noise_multiplier=charged.noise_multiplier,
            sample_rate=charged.sample_rate,
            planned_steps=charged.steps,
            mode="hooks",
            layer_modes=_layer_modes(replicas.module, "hooks"),
            replica_steps=charged.steps,
        )
        epoch_seconds = [replicas.seconds]
        record: dict[str, Any] = {
            "epoch": epochs,
            "epochs": epochs,
            "epsilon_spent": compose_epsilon([charged], delta),
            "seconds": replicas.seconds,
        }
        history.append(record)
        if progress is not None:
            progress(dict(record))
    elif epsilon is not None:
        setup = _make_private(
            new_module=new_module,
            rows=rows,
            batch_size=batch_size,
            lr=lr,
            epsilon=epsilon,
            delta=delta,
            epochs=epochs,
            max_grad_norm=max_grad_norm,
            device=dev,
            grad_sample_mode=grad_sample_mode,
            secure_mode=secure_mode,
        )
    else:
        module = new_module()
        setup = _Setup(
            module=module,
            model=module,
            optimizer=torch.optim.Adam(module.parameters(), lr=lr),
            criterion=nn.CrossEntropyLoss(),
            loader=DataLoader(
                rows,
                batch_size=batch_size,
                shuffle=True,
                collate_fn=collate_batch,
                generator=torch.Generator().manual_seed(seed),
            ),
        )

    try:
        _run_epochs(
            setup,
            run=epochs_to_run,
            epochs=epochs,
            delta=delta,
            history=history,
            epoch_seconds=epoch_seconds,
            progress=progress,
        )
    except Exception as exc:
        raise _aborted(setup, exc) from exc

    # The budget is spent once the loop ends: a failure while evaluating or saving is an
    # aborted run too, so the caller still charges the ledger.
    try:
        mechanism: Mechanism | None = None
        final_eps: float | None = None
        accounting: dict[str, Any] | None = None
        if (spent_now := _spent(setup)) is not None:
            mechanism = spent_now
            tightest = tightest_epsilon([mechanism], delta)
            final_eps = tightest.epsilon
            accounting = tightest.to_dict()

        probs = _predict(setup.module, x_test)
        metrics = _metrics(probs, dataset.test.labels)
        by_group = _group_metrics(probs, dataset.test.labels, dataset.test.sensitive)

        training = TrainingRecord(
            private=private,
            epsilon=final_eps,
            target_epsilon=epsilon,
            delta=delta if private else None,
            accountant=accounting["accountant"] if accounting else None,
            epsilon_by_accountant=(
                {"prv": accounting["prv"], "pld": accounting["pld"]} if accounting else None
            ),
            noise_multiplier=setup.noise_multiplier,
            max_grad_norm=max_grad_norm if private else None,
            sample_rate=setup.sample_rate,
            steps=mechanism.steps if mechanism else len(setup.loader) * epochs,
            epochs=epochs,
            batch_size=batch_size,
            poisson_sampling=private,
            clipping="flat" if private else None,
            privacy_unit=schema.privacy_unit,
            secure_mode=secure_mode if private else False,
            grad_sample_mode=setup.mode,
            grad_sample_mode_requested=grad_sample_mode if private else None,
            layer_gradient_modes=setup.layer_modes,
            optimizer={"kind": "adam", "lr": lr},
            model_init_seed=seed,
            seed_covers="model initialisation"
            + ("" if private else " and the order of batches (shuffling)"),
            mechanism_randomness=(SECURE_RNG if secure_mode else OS_ENTROPY) if private else None,
            device=dev.type,
            topology=topology,
            dataset=TrainingData(
                name=schema.name,
                content_hash=dataset.content_hash,
                file_hashes=dict(dataset.file_hashes),
                train_rows=len(dataset.train),
                test_rows=len(dataset.test),
            ),
            preprocessing=PREPROCESSING_PROVENANCE,
            metrics=metrics,
            history=history,
            ledger_mechanism=mechanism.to_dict() if mechanism else None,
            software={"torch": torch.__version__, "opacus": opacus.__version__},
        )
        manifest = Manifest(
            name=name,
            version=version,
            architecture=arch,
            features=manifest_features(schema),
            labels=tuple(schema.label.names),
            training=training.to_dict(),
        )
        card = build_model_card(
            manifest=manifest.to_dict(), dataset=dataset, group_metrics=by_group
        )
        parsed = save_artifact(
            out, setup.module, manifest, extra_files={MODEL_CARD_FILE: render_model_card(card)}
        )
    except Exception as exc:
        raise _aborted(setup, exc) from exc
    return TrainResult(
        artifact_dir=out,
        manifest=parsed,
        private=private,
        epsilon=final_eps,
        delta=delta if private else None,
        mechanism=mechanism,
        test_accuracy=metrics["test_accuracy"],
        metrics=metrics,
        grad_sample_mode=setup.mode,
        epoch_seconds=epoch_seconds,
        history=history,
    )
