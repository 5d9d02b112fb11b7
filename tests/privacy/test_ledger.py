"""The privacy-budget ledger through the training service, on both databases."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.models import AuditEntry
from governance.config import Settings
from governance.datasets.errors import DatasetChanged
from governance.datasets.service import datasets
from governance.db import make_engine, make_sessionmaker
from governance.kit.context import cli_context
from governance.privacy import Mechanism, TrainingAborted, compose_epsilon
from governance.privacy.ledger import BudgetExceeded, NonPrivateRefused, PrivacyPolicyError
from governance.privacy.models import ABORTED, COMPLETED, RESERVED, TrainingRun
from governance.privacy.service import TrainingRequest, training
from governance.registry.service import registry
from inference.artifact import read_manifest
from tests.privacy.conftest import write_synthetic
from tests.privacy.ledger_support import FAST, with_policies

CTX = cli_context("engineer")


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> Any:
    cfg = with_policies(settings, tmp_path)
    engine = make_engine(cfg.resolved_database_url)
    sessions = make_sessionmaker(engine)
    folder = tmp_path / "syn"
    folder.mkdir()
    schema = write_synthetic(folder)
    with sessions.begin() as session:
        datasets.register(session, CTX, name="synthetic", schema_path=schema)
    yield cfg, sessions, folder
    engine.dispose()


def _req(**kw: Any) -> TrainingRequest:
    return TrainingRequest(**{"dataset": "synthetic", "epsilon": 1.0, **FAST, **kw})


def _rows(sessions: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with sessions() as session:
        return [
            (r.id, r.status, r.noise_multiplier, r.sample_rate, r.steps)
            for r in session.scalars(select(TrainingRun).order_by(TrainingRun.id))
        ]


def _events(sessions: sessionmaker[Session], event_type: str) -> list[dict[str, Any]]:
    with sessions() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.event_type == event_type).order_by(AuditEntry.seq)
        )
        return [json.loads(r.canonical) for r in rows]


def test_over_budget_run_is_refused_and_the_ledger_is_unchanged(env: Any) -> None:
    cfg, sessions, _ = env
    first = training.run(sessions, CTX, settings=cfg, request=_req())
    assert first.status == COMPLETED
    before_rows = _rows(sessions)
    with sessions() as session:
        before = training.ledger(session, cfg, "synthetic")
    assert 0 < before.epsilon_recomposed <= 1.0 + 1e-9

    with pytest.raises(BudgetExceeded) as refused:
        training.run(sessions, CTX, settings=cfg, request=_req(seed=1))
    assert refused.value.status_code == 409
    assert refused.value.extra["cap_epsilon"] == 1.2
    assert refused.value.extra["epsilon_after_run"] > 1.2

    assert _rows(sessions) == before_rows
    with sessions() as session:
        after = training.ledger(session, cfg, "synthetic")
    assert after.epsilon_recomposed == before.epsilon_recomposed
    actions = [e["action"] for e in _events(sessions, "privacy.run")]
    assert actions == ["start", "complete", "refuse"]
    refuse = _events(sessions, "privacy.run")[-1]
    assert refuse["decision"] == "deny"


@pytest.mark.slow  # a second noise search (~5 s of PRV evaluations)
def test_recomposition_admits_a_run_that_the_naive_sum_would_refuse(env: Any) -> None:
    cfg, sessions, _ = env
    training.run(sessions, CTX, settings=cfg, request=_req(epsilon=0.7))
    training.run(sessions, CTX, settings=cfg, request=_req(epsilon=0.7, seed=2))
    with sessions() as session:
        summary = training.ledger(session, cfg, "synthetic")
    runs = summary.runs
    assert [r.status for r in runs] == [COMPLETED, COMPLETED]
    history = [m for r in runs if (m := r.charged) is not None]
    assert summary.epsilon_recomposed == pytest.approx(compose_epsilon(history, 1e-4))
    assert summary.epsilon_naive == pytest.approx(sum(compose_epsilon([m], 1e-4) for m in history))
    # Recomposed, both fit the cap of 1.2; summed naively they would not.
    assert summary.epsilon_recomposed <= 1.2 < summary.epsilon_naive
    assert summary.delta_naive == pytest.approx(2e-4)


def test_manifest_epsilon_matches_the_recorded_mechanism(env: Any) -> None:
    cfg, sessions, _ = env
    run = training.run(sessions, CTX, settings=cfg, request=_req(register=True))
    assert run.registered
    with sessions() as session:
        model = registry.get(session, run.model_name, run.model_version)
        assert model.trained_by == "engineer"
        artifact = Path(model.artifact_dir)
    manifest = read_manifest(artifact).training
    mech = Mechanism(run.noise_multiplier, run.sample_rate, run.steps)  # type: ignore[arg-type]
    assert manifest["ledger_mechanism"] == mech.to_dict()
    assert compose_epsilon([mech], manifest["delta"]) == pytest.approx(
        manifest["epsilon"], rel=1e-9
    )
    assert manifest["epsilon"] <= 1.0
    assert manifest["dataset"]["content_hash"] == run.dataset_hash
    # The planned mechanism is exactly what ran.
    assert (run.planned_noise_multiplier, run.planned_sample_rate, run.planned_steps) == (
        run.noise_multiplier,
        run.sample_rate,
        run.steps,
    )


def test_aborted_run_spends_the_steps_it_ran(env: Any) -> None:
    cfg, sessions, _ = env

    def boom(record: dict[str, Any]) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(TrainingAborted) as aborted:
        training.run(sessions, CTX, settings=cfg, request=_req(), progress=boom)
    steps_done = aborted.value.steps_done
    assert steps_done == 9  # the first epoch of q = 1/9 ran
    [row] = _rows(sessions)
    assert row[1] == ABORTED and row[4] == steps_done
    with sessions() as session:
        summary = training.ledger(session, cfg, "synthetic")
        run = session.get(TrainingRun, row[0])
        assert run is not None and run.planned_steps == 18
        assert run.error is not None and "disk full" not in run.error
    assert summary.epsilon_recomposed > 0
    assert summary.epsilon_recomposed == pytest.approx(compose_epsilon([run.charged], 1e-4))
    assert [e["action"] for e in _events(sessions, "privacy.run")] == ["start", "abort"]


def test_a_crash_mid_training_keeps_the_planned_charge(env: Any) -> None:
    cfg, sessions, _ = env

    def crash(record: dict[str, Any]) -> None:
        raise KeyboardInterrupt  # nothing catches it: like the process dying

    with pytest.raises(KeyboardInterrupt):
        training.run(sessions, CTX, settings=cfg, request=_req(), progress=crash)
    [row] = _rows(sessions)
    assert row[1] == RESERVED
    with sessions() as session:
        run = session.get(TrainingRun, row[0])
        assert run is not None
        summary = training.ledger(session, cfg, "synthetic")
    planned = Mechanism(run.planned_noise_multiplier, run.planned_sample_rate, run.planned_steps)
    assert summary.epsilon_recomposed == pytest.approx(compose_epsilon([planned], 1e-4))


def test_changed_data_is_refused_before_any_charge(env: Any) -> None:
    cfg, sessions, folder = env
    csv = folder / "synthetic.csv"
    csv.write_text(csv.read_text().replace("red", "blue", 1))
    with pytest.raises(DatasetChanged) as changed:
        training.run(sessions, CTX, settings=cfg, request=_req())
    assert changed.value.status_code == 409
    assert _rows(sessions) == []


def test_non_private_needs_the_policy_and_then_spends_everything(env: Any, tmp_path: Path) -> None:
    cfg, sessions, _ = env
    with pytest.raises(NonPrivateRefused):
        training.run(sessions, CTX, settings=cfg, request=_req(epsilon=None))
    assert _rows(sessions) == []

    # Other rows: the same rows as "synthetic" would share its ledger and its stricter cap.
    other = tmp_path / "open"
    other.mkdir()
    with sessions.begin() as session:
        datasets.register(session, CTX, name="open", schema_path=write_synthetic(other, seed=1))
    run = training.run(sessions, CTX, settings=cfg, request=_req(dataset="open", epsilon=None))
    assert run.status == COMPLETED and not run.private
    with sessions() as session:
        summary = training.ledger(session, cfg, "open")
    assert summary.to_dict()["unbounded"] is True
    assert summary.to_dict()["epsilon_recomposed"] is None
    with pytest.raises(BudgetExceeded, match="unbounded"):
        training.run(sessions, CTX, settings=cfg, request=_req(dataset="open", epsilon=0.5))


def test_two_concurrent_runs_cannot_both_pass_the_cap(env: Any) -> None:
    cfg, sessions, _ = env
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def attempt(seed: int) -> None:
        barrier.wait()
        try:
            training.run(sessions, CTX, settings=cfg, request=_req(seed=seed))
            outcomes.append("ran")
        except BudgetExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes) == ["ran", "refused"]
    with sessions() as session:
        count = session.scalar(select(func.count()).select_from(TrainingRun))
    assert count == 1


def test_a_missing_privacy_policy_refuses_training(env: Any) -> None:
    cfg, sessions, _ = env
    (cfg.policies_dir / "privacy.yaml").unlink()
    with pytest.raises(PrivacyPolicyError):
        training.run(sessions, CTX, settings=cfg, request=_req())
    assert _rows(sessions) == []
