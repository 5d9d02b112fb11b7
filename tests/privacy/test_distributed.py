"""Data-parallel DP-SGD: two CPU processes on gloo, identical replicas, ε accounted."""

from __future__ import annotations

import pytest
import torch

from governance.privacy import TrainingConfigError, compose_epsilon
from governance.privacy.distributed import DistributedConfig, train_ddp
from inference.architectures import build_model
from inference.manifest import Architecture

ARCH = Architecture(kind="mlp", input_dim=6, output_dim=2, hidden=(16,))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 6, generator=gen)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


@pytest.mark.slow
def test_two_replicas_train_in_lockstep_and_account_epsilon() -> None:
    x, y = _data()
    config = DistributedConfig(
        architecture=ARCH,
        epochs=2,
        batch_size=200,
        lr=0.02,
        epsilon=2.0,
        delta=1e-4,
        world_size=2,
        backend="gloo",
    )
    result = train_ddp(x=x, y=y, config=config)
    assert len(result.replica_digests) == 2
    assert result.replica_digests[0] == result.replica_digests[1]
    # q = 1/10, 10 steps an epoch, counted on the replicas' accountants.
    assert result.mechanism.sample_rate == pytest.approx(0.1)
    assert result.mechanism.steps == 20
    assert 0 < result.epsilon <= 2.0
    assert compose_epsilon([result.mechanism], 1e-4) == pytest.approx(result.epsilon, rel=1e-9)
    # The replicas learned something real.
    module = build_model(ARCH)
    module.load_state_dict(result.state_dict)
    accuracy = (module(x).argmax(dim=1) == y).float().mean().item()
    assert accuracy > 0.75


def test_tiny_local_batches_are_refused() -> None:
    x, y = _data()
    config = DistributedConfig(
        architecture=ARCH, epochs=1, batch_size=40, lr=0.02, epsilon=2.0, delta=1e-4, world_size=2
    )
    with pytest.raises(TrainingConfigError, match="per replica"):
        train_ddp(x=x, y=y, config=config)
