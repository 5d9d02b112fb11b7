"""``warden privacy train`` (the future ``warden train``) end to end on the bundled Adult data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from governance.cli.main import app
from governance.config import Settings
from tests.conftest import settings_env


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in settings_env(settings).items():
        if key.startswith("WARDEN_"):
            monkeypatch.setenv(key, value)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_train_on_adult_registers_a_dp_model_and_charges_the_ledger(cli: Any) -> None:
    args = ["--dataset", "adult", "--model", "logreg", "--epsilon", "1", "--delta", "1e-5"]
    fast = ["--epochs", "1", "--batch-size", "4096", "--lr", "0.05", "--seed", "3"]
    result = cli("privacy", "train", *args, *fast, "--register", "--operator", "alice")
    assert result.exit_code == 0, result.output
    # The bar is drawn on a terminal only; Opacus' warnings about what Warden handles are quiet.
    assert "ε = " in result.output and "Secure RNG" not in result.output
    assert "completed: adult-logreg run-1" in result.output and "(registered)" in result.output

    models = cli("models", "list")
    assert "adult-logreg" in models.output and "run-1" in models.output

    ledger = cli("privacy", "ledger", "adult", "--json")
    assert ledger.exit_code == 0, ledger.output
    doc = json.loads(ledger.output)
    # The shipped policies/privacy.yaml caps Adult at ε = 4.
    assert doc["cap"] == {"epsilon": 4.0, "delta": 1e-5, "allow_non_private": False}
    assert 0 < doc["epsilon_recomposed"] <= 1.0
    assert [e["status"] for e in doc["entries"]] == ["completed"]

    # Adult's policy forbids non-private training, and ε = 5 alone passes the cap.
    refused = cli("privacy", "train", "--dataset", "adult", "--non-private", *fast)
    assert refused.exit_code == 1
    assert "does not permit non-private" in " ".join(refused.output.split())
    over = cli("privacy", "train", "--dataset", "adult", "--epsilon", "5", *fast)
    assert over.exit_code == 3 and "over its cap" in " ".join(over.output.split())
    assert json.loads(cli("privacy", "ledger", "adult", "--json").output) == doc
