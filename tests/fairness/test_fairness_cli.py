"""``warden fairness ...`` and the gate on ``warden models promote``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from governance.audit.models import AuditEntry
from governance.cli.main import app
from governance.config import Settings
from governance.privacy.models import TrainingRun
from governance.registry.models import ModelVersion
from tests.conftest import settings_env

JUSTIFICATION = "Accepted for an internal pilot only; reviewed by the fairness board."


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for key, value in settings_env(settings).items():
        if key.startswith("WARDEN_"):
            monkeypatch.setenv(key, value)
    return CliRunner()


def test_audit_gate_override_and_promote_from_the_cli(
    cli: CliRunner, biased_model: ModelVersion
) -> None:
    result = cli.invoke(
        app, ["fairness", "audit", "adult-lr", "--sensitive", "sex", "--bootstrap", "0"]
    )
    assert result.exit_code == 3, result.output  # audited, and it fails: refused by a rule
    assert "verdict: FAIL" in result.output
    assert "demographic_parity_ratio" in result.output

    result = cli.invoke(app, ["models", "promote", "adult-lr", "1"])
    assert result.exit_code == 3
    assert "fails the fairness gate" in result.output
    result = cli.invoke(app, ["fairness", "gate", "adult-lr", "--version", "1"])
    assert result.exit_code == 3 and "the gate refuses" in result.output

    result = cli.invoke(
        app,
        [
            "fairness",
            "override",
            "adult-lr",
            "1",
            "--justification",
            JUSTIFICATION,
            "--by",
            "tom-trainer",
        ],
    )
    assert result.exit_code == 1 and "may not approve" in result.output

    result = cli.invoke(
        app,
        [
            "fairness",
            "override",
            "adult-lr",
            "--version",
            "1",
            "--justification",
            JUSTIFICATION,
            "--by",
            "olivia-officer",
        ],
    )
    assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["fairness", "gate", "adult-lr", "--version", "1", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["basis"] == "override"
    result = cli.invoke(app, ["models", "promote", "adult-lr", "--version", "1"])
    assert result.exit_code == 0, result.output


def test_thresholds_set_show_and_history(cli: CliRunner, tmp_path: Path, admin_token: str) -> None:
    result = cli.invoke(app, ["fairness", "thresholds", "show"])
    assert result.exit_code == 0, result.output
    assert "# version 1" in result.output and "min: 0.8" in result.output
    edited = tmp_path / "fairness.yaml"
    edited.write_text(
        "min_group_size: 30\n"
        "defaults:\n"
        "  demographic_parity_ratio: {min: 0.8}\n"
        "  equalized_odds_difference: {max: 0.08}\n"
    )
    result = cli.invoke(
        app,
        [
            "fairness",
            "thresholds",
            "set",
            str(edited),
            "--reason",
            "tighter error-rate band",
            "--by",
            "olivia-officer",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "version 2" in result.output and "equalized_odds_difference.max" in result.output
    result = cli.invoke(app, ["fairness", "thresholds", "history"])
    assert "v2" in result.output and "olivia-officer: tighter error-rate band" in result.output
    edited.write_text("defaults: {made_up: {max: 2}}\n")
    result = cli.invoke(
        app, ["fairness", "thresholds", "set", str(edited), "--reason", "this one is invalid"]
    )
    assert result.exit_code == 1 and "unknown measure" in result.output


def test_mitigate_over_the_cap_is_refused_and_audited(
    cli: CliRunner, biased_model: ModelVersion, sessions: sessionmaker[Session]
) -> None:
    # Adult is private: a release of ε 50 passes its cap (4.0 in privacy.yaml) on its own.
    result = cli.invoke(
        app,
        ["fairness", "mitigate", "adult-lr", "--sensitive", "sex", "--epsilon", "50"],
    )
    assert result.exit_code == 3, result.output  # refused by the privacy budget
    assert "error:" in result.output and "Traceback" not in result.output
    with sessions() as session:
        assert session.scalars(select(TrainingRun)).all() == []
        (refusal,) = session.scalars(
            select(AuditEntry).where(
                AuditEntry.event_type == "privacy.run", AuditEntry.action == "refuse"
            )
        ).all()
    assert refusal.decision == "deny"
    details = json.loads(refusal.canonical)["details"]
    assert details["kind"] == "mitigation" and details["model"] == "adult-lr"
    assert details["target_epsilon"] == 50.0 and details["mechanism"]["steps"] == 1
    assert details["cap_epsilon"] == 4.0
