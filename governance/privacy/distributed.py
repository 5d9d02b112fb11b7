"""Data-parallel DP-SGD across processes: ``torch.distributed`` plus Opacus DPDDP.

Each replica holds the whole (small, tabular) training set and Poisson-samples its own shard
with Opacus' ``DistributedUniformWithReplacementSampler``: every record is still in a step's
batch with probability ``q``, so the accounting is that of one process. Replicas clip their own
per-sample gradients, rank 0 alone adds the Gaussian noise, and the summed gradients are
all-reduced, so every replica takes the same step and ends with the same weights.

Opacus' distributed sampler skips a step on a replica whose local batch is empty, which would
desynchronise the replicas; :func:`train_ddp` therefore refuses an expected local batch under
:data:`MIN_LOCAL_BATCH` (an empty batch then has probability below e^-32 per step).

If a replica fails, the parent cannot know how many steps ran everywhere, so the
:class:`TrainingAborted` it raises charges the whole planned mechanism (fail closed).
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from opacus import PrivacyEngine
from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from governance.privacy.accounting import Mechanism, compose_epsilon, noise_for_epsilon
from governance.privacy.errors import TrainingAborted, TrainingConfigError
from governance.privacy.training import TensorRows, collate_batch
from governance.randomness import mechanism_seed
from inference.architectures import build_model
from inference.manifest import Architecture

MIN_LOCAL_BATCH = 32


@dataclass(frozen=True)
class DistributedConfig:
    """One data-parallel DP run.

    Attributes:
        architecture: the model to train.
        epochs: passes over the data (``int(1/q)`` steps each).
        batch_size: expected GLOBAL batch size; ``q = 1 / ceil(n / batch_size)``.
        lr: Adam learning rate.
        epsilon: target ε of the run.
        delta: δ of the guarantee (below 1/n).
        max_grad_norm: per-sample clipping norm.
        seed: model initialisation only; sampling and noise use secret OS entropy.
        world_size: number of replicas (processes).
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (one GPU per replica).
        grad_sample_mode: ``"hooks"`` or ``"ghost"``.
    """

    architecture: Architecture
    epochs: int
    batch_size: int
    lr: float
    epsilon: float
    delta: float
    max_grad_norm: float = 1.0
    seed: int = 0
    world_size: int = 2
    backend: Literal["gloo", "nccl"] = "gloo"
    grad_sample_mode: Literal["hooks", "ghost"] = "hooks"


@dataclass(frozen=True)
class DistributedResult:
    """Outcome of a data-parallel run.

    Attributes:
        state_dict: rank 0's final weights (CPU).
        replica_digests: sha256 of each replica's final weights, by rank.
        epsilon: rank 0's accountant ε after the run.
        mechanism: what to charge to the ledger.
        planned_epsilon: ε recomposed from ``mechanism`` (equals ``epsilon``).
    """

    state_dict: dict[str, torch.Tensor]
    replica_digests: list[str]
    epsilon: float
    mechanism: Mechanism
    planned_epsilon: float


def weights_digest(module: nn.Module) -> str:
    """sha256 over a module's parameters and buffers, in ``state_dict`` order."""
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _worker(
    rank: int,
    config: DistributedConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float,
    workdir: str,
) -> None:
    torch.set_num_threads(1)
    # Opacus warns on every engine; the run's secure_mode is part of what the caller records.
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    dist.init_process_group(
        config.backend,
        init_method=f"file://{workdir}/rendezvous",
        rank=rank,
        world_size=config.world_size,
    )
    try:
        device = torch.device(f"cuda:{rank}" if config.backend == "nccl" else "cpu")
        torch.manual_seed(config.seed)
        module = build_model(config.architecture).to(device)
        model = DPDDP(module)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        criterion = nn.CrossEntropyLoss()
        # Each replica samples its own shard with its own secret stream, never from the seed.
        sampler_gen = torch.Generator().manual_seed(mechanism_seed())
        base_loader: DataLoader[Any] = DataLoader(
            TensorRows(x.to(device), y.to(device)),
            batch_size=config.batch_size,
            collate_fn=collate_batch,
            generator=sampler_gen,
        )
        engine = PrivacyEngine(accountant="prv")
        made = engine.make_private(
            module=model,
            optimizer=optimizer,
            criterion=criterion,
            data_loader=base_loader,
            noise_multiplier=sigma,
            max_grad_norm=config.max_grad_norm,
            poisson_sampling=True,
            noise_generator=torch.Generator(device).manual_seed(mechanism_seed()),
            grad_sample_mode=config.grad_sample_mode,
        )
        if len(made) == 4:
            dp_model, dp_optimizer, dp_criterion, loader = made
        else:
            (dp_model, dp_optimizer, loader), dp_criterion = made, criterion
        for _ in range(config.epochs):
            dp_model.train()
            for xb, yb in loader:
                dp_optimizer.zero_grad(set_to_none=True)
                dp_criterion(dp_model(xb), yb).backward()
                dp_optimizer.step()
        steps = int(sum(s for _, _, s in engine.accountant.history))
        history = [Mechanism(float(z), float(q), int(n)) for z, q, n in engine.accountant.history]
        epsilon = compose_epsilon(history, config.delta)
        out = Path(workdir)
        if rank == 0:
            state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            save_file(state, str(out / "weights.safetensors"))
        report = {"digest": weights_digest(module), "epsilon": epsilon, "steps": steps}
        (out / f"rank{rank}.json").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


def train_ddp(*, x: torch.Tensor, y: torch.Tensor, config: DistributedConfig) -> DistributedResult:
    """Train with DP-SGD on ``config.world_size`` processes and collect the result.

    Args:
        x: encoded features ``[n, input_dim]`` (float32).
        y: labels ``[n]`` (int64).
        config: the run.

    Returns:
        Rank 0's weights, every replica's weight digest, and the privacy spent.

    Raises:
        TrainingConfigError: invalid configuration (nothing spent).
        TrainingAborted: a replica failed; charges the whole planned mechanism.
    """
    n = len(y)
    if config.world_size < 1 or config.epochs < 1 or not 1 <= config.batch_size <= n:
        raise TrainingConfigError("world_size, epochs and batch_size must be positive (batch <= n)")
    if not 0 < config.delta < 1 / n:
        raise TrainingConfigError("delta must be in (0, 1/n) for n training rows")
    sample_rate = 1 / math.ceil(n / config.batch_size)
    if n * sample_rate / config.world_size < MIN_LOCAL_BATCH:
        raise TrainingConfigError(
            f"the expected batch per replica must be at least {MIN_LOCAL_BATCH} rows"
        )
    steps = config.epochs * int(1 / sample_rate)
    sigma = noise_for_epsilon(
        target_epsilon=config.epsilon, delta=config.delta, sample_rate=sample_rate, steps=steps
    )
    planned = Mechanism(sigma, sample_rate, steps)
    with tempfile.TemporaryDirectory(prefix="warden-ddp-") as workdir:
        try:
            mp.spawn(
                _worker,
                args=(config, x.cpu(), y.cpu(), sigma, workdir),
                nprocs=config.world_size,
                join=True,
            )
        except Exception as exc:
            raise TrainingAborted(
                f"a replica failed ({type(exc).__name__}); charging the planned run",
                steps_done=steps,
                mechanism=planned,
            ) from exc
        reports = [
            json.loads((Path(workdir) / f"rank{r}.json").read_text())
            for r in range(config.world_size)
        ]
        state = load_file(str(Path(workdir) / "weights.safetensors"))
    mechanism = Mechanism(sigma, sample_rate, int(reports[0]["steps"]))
    return DistributedResult(
        state_dict=state,
        replica_digests=[r["digest"] for r in reports],
        epsilon=float(reports[0]["epsilon"]),
        mechanism=mechanism,
        planned_epsilon=compose_epsilon([mechanism], config.delta),
    )


@dataclass(frozen=True)
class ReplicaRun:
    """A data-parallel run as the trainer records it.

    Attributes:
        module: the trained model (rank 0's weights, on the requested device).
        mechanism: what the run spent, at the GLOBAL sample rate (charged once).
        seconds: wall time of the run.
        topology: how it ran, for the manifest and the model card.
    """

    module: nn.Module
    mechanism: Mechanism
    seconds: float
    topology: dict[str, Any]


def pick_backend(device: torch.device, workers: int) -> Literal["gloo", "nccl"]:
    """NCCL with one GPU per replica on CUDA, gloo on CPU.

    Raises:
        TrainingConfigError: more replicas than GPUs (nothing spent).
    """
    if device.type != "cuda":
        return "gloo"
    if workers > torch.cuda.device_count():
        raise TrainingConfigError(
            f"{workers} workers need {workers} GPUs; {torch.cuda.device_count()} are visible"
        )
    return "nccl"


def train_replicas(
    *,
    architecture: Architecture,
    x: torch.Tensor,
    y: torch.Tensor,
    workers: int,
    device: torch.device,
    epochs: int,
    batch_size: int,
    lr: float,
    epsilon: float,
    delta: float,
    max_grad_norm: float,
    seed: int,
) -> ReplicaRun:
    """Run :func:`train_ddp` for the trainer and check that the replicas agree.

    Args:
        architecture: the model to train.
        x: encoded training features.
        y: training labels.
        workers: number of processes (replicas), at least 2.
        device: where the trained module is placed; CUDA selects NCCL.
        epochs: passes over the data.
        batch_size: expected GLOBAL batch size.
        lr: Adam learning rate.
        epsilon: target ε of the run.
        delta: δ of the guarantee.
        max_grad_norm: per-sample clipping norm.
        seed: model initialisation only.

    Returns:
        The trained module, the mechanism to charge once, and the topology.

    Raises:
        TrainingConfigError: invalid configuration (nothing spent).
        TrainingAborted: a replica failed, or the replicas ended with different weights
            (charges the planned mechanism: fail closed).
    """
    backend = pick_backend(device, workers)
    config = DistributedConfig(
        architecture=architecture,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        epsilon=epsilon,
        delta=delta,
        max_grad_norm=max_grad_norm,
        seed=seed,
        world_size=workers,
        backend=backend,
        # Ghost clipping is not combined with DPDDP here: every replica uses per-sample hooks.
        grad_sample_mode="hooks",
    )
    start = time.perf_counter()
    result = train_ddp(x=x, y=y, config=config)
    seconds = time.perf_counter() - start
    if len(set(result.replica_digests)) != 1:
        raise TrainingAborted(
            "the replicas ended with different weights; charging the run",
            steps_done=result.mechanism.steps,
            mechanism=result.mechanism,
        )
    module = build_model(architecture)
    module.load_state_dict(result.state_dict)
    topology = {
        "workers": workers,
        "backend": backend,
        "device": device.type,
        "strategy": "data parallel (Opacus DPDDP); noise added once, on rank 0",
        "sample_rate": "global: each record is in a step's batch with probability q",
        "replicas_identical": True,
    }
    return ReplicaRun(module.to(device), result.mechanism, seconds, topology)
