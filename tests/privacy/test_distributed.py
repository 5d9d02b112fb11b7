"""Data-parallel DP-SGD: two CPU processes on gloo, identical replicas, ε accounted once,
reachable from ``warden train --workers`` and the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from typer.testing import CliRunner

from governance.cli.main import app
from governance.config import Settings
from governance.privacy import TrainingConfigError, compose_epsilon
from governance.privacy.distributed import DistributedConfig, train_ddp
from governance.privacy.schemas import TrainingRunCreate
from inference.architectures import build_model
from inference.manifest import Architecture
from tests.conftest import settings_env
from tests.privacy.conftest import write_synthetic

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


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in settings_env(settings).items():
        if key.startswith("WARDEN_"):
            monkeypatch.setenv(key, value)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_warden_train_workers_runs_two_replicas_and_charges_the_ledger_once(
    cli: Any, settings: Settings, tmp_path: Path
) -> None:
    schema = write_synthetic(tmp_path)
    assert cli("datasets", "register", "people", "--schema", str(schema)).exit_code == 0
    args = ["--dataset", "people", "--model", "logreg", "--epsilon", "2", "--delta", "1e-5"]
    fast = ["--epochs", "2", "--batch-size", "100", "--lr", "0.05"]
    result = cli("train", *args, *fast, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "run 1 completed" in result.output

    ledger = json.loads(cli("privacy", "ledger", "people", "--json").output)
    [entry] = ledger["entries"]  # one charge for the run, not one per replica
    # 900 training rows, a global batch of 100 (q = 1/9: a cheap noise search) for the whole
    # run, 9 steps an epoch.
    assert entry["status"] == "completed"
    assert entry["charged"]["sample_rate"] == pytest.approx(1 / 9)
    assert entry["charged"]["steps"] == 18
    assert 0 < ledger["epsilon_recomposed"] <= 2.0

    artifact = settings.data_dir / "training" / "run-1"
    manifest = json.loads((artifact / "manifest.json").read_text())
    topology = manifest["training"]["topology"]
    assert topology["workers"] == 2 and topology["backend"] == "gloo"
    assert topology["replicas_identical"] is True
    assert manifest["training"]["sample_rate"] == pytest.approx(1 / 9)
    card = json.loads((artifact / "model_card.json").read_text())
    assert card["model_details"]["topology"] == topology


def test_several_workers_need_a_private_run(cli: Any, tmp_path: Path) -> None:
    schema = write_synthetic(tmp_path)
    assert cli("datasets", "register", "people", "--schema", str(schema)).exit_code == 0
    refused = cli("train", "--dataset", "people", "--non-private", "--workers", "2")
    assert refused.exit_code == 1 and "several workers need a private run" in refused.output
    assert json.loads(cli("privacy", "ledger", "people", "--json").output)["entries"] == []
    with pytest.raises(ValidationError, match="several workers"):
        TrainingRunCreate.model_validate({"dataset": "people", "private": False, "workers": 2})
    assert (
        TrainingRunCreate.model_validate({"dataset": "people", "workers": 2}).to_request().workers
        == 2
    )
