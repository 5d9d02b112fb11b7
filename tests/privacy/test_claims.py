"""DP claims from the ledger: secret mechanism seeds, covered claims, void and uncovered ones."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

import governance.privacy.training as training_module
from governance.audit.models import AuditEntry
from governance.config import Settings
from governance.datasets.models import Dataset
from governance.datasets.service import datasets
from governance.db import make_engine, make_sessionmaker
from governance.kit.context import cli_context
from governance.privacy import tightest_epsilon
from governance.privacy.claim_gate import VoidDpClaim, claim_gate
from governance.privacy.claims import claim_for
from governance.privacy.models import COMPLETED, TrainingRun
from governance.privacy.service import TrainingRequest, training
from governance.registry.service import registry
from governance.reports.sections import build_models
from inference.architectures import build_model
from inference.artifact import save_artifact, sha256_file
from inference.manifest import parse_manifest
from tests.factories import toy_manifest
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
    with sessions.begin() as session:
        datasets.register(session, CTX, name="synthetic", schema_path=write_synthetic(folder))
    yield cfg, sessions
    engine.dispose()


def _evidence(session: Session, artifact_dir: Path) -> str:
    """Everything a run leaves behind that someone may read: files, ledger, audit, report."""
    texts = [p.read_text() for p in sorted(artifact_dir.iterdir()) if p.suffix == ".json"]
    for run in session.scalars(select(TrainingRun)):
        texts.append(json.dumps({c.name: str(getattr(run, c.name)) for c in run.__table__.c}))
    texts += [e.canonical for e in session.scalars(select(AuditEntry))]
    _, privacy = build_models(session, model=None)
    texts += [p.model_dump_json() for p in privacy]
    return "\n".join(texts)


def test_the_mechanism_seeds_are_secret_and_the_claim_comes_from_the_ledger(
    env: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cfg, sessions = env
    drawn: list[int] = []
    real = training_module.mechanism_seed

    def recording_seed() -> int:
        # The real draw, observed: the test must know the seeds to look for them.
        value = real()
        drawn.append(value)
        return value

    monkeypatch.setattr(training_module, "mechanism_seed", recording_seed)
    caplog.set_level(logging.DEBUG)
    request = TrainingRequest(dataset="synthetic", epsilon=1.0, seed=7, register=True, **FAST)
    run = training.run(sessions, CTX, settings=cfg, request=request)
    assert run.status == COMPLETED and len(drawn) >= 2  # one for sampling, one for noise

    with sessions() as session:
        row = registry.get(session, run.model_name, run.model_version)
        manifest = json.loads(row.manifest)
        claim = claim_for(session, artifact_sha256=row.artifact_sha256, manifest=manifest)
        evidence = _evidence(session, Path(row.artifact_dir)) + caplog.text
    for seed in drawn:
        for form in (str(seed), f"{seed:x}", f"{seed:016x}"):
            assert form not in evidence
    assert "seed" not in manifest["training"]
    assert manifest["training"]["model_init_seed"] == 7
    assert manifest["training"]["mechanism_randomness"] == "os-entropy"

    assert claim.status == "ledger" and claim.runs == [run.id]
    assert run.charged is not None and run.delta is not None
    expected = tightest_epsilon([run.charged], run.delta)
    assert claim.epsilon == expected.epsilon and claim.accountant == expected.accountant
    assert claim.epsilon == manifest["training"]["epsilon"]


def _legacy_artifact(folder: Path, version: str, training: dict[str, Any]) -> Path:
    doc = toy_manifest("legacy", version)
    doc["training"] = training
    torch.manual_seed(0)
    stub = parse_manifest({**doc, "weights": {"file": "w", "sha256": "0" * 64}})
    save_artifact(folder, build_model(stub.architecture), doc)
    return folder


def test_an_artifact_trained_before_secret_noise_carries_a_void_claim(
    env: Any, tmp_path: Path
) -> None:
    cfg, sessions = env
    # What a run charged before this change left: its manifest records the seed that drew
    # its noise, and no mechanism_randomness.
    old = {"private": True, "epsilon": 0.9959, "delta": 1e-5, "seed": 7, "accountant": "prv"}
    artifact = _legacy_artifact(tmp_path / "old", "1", old)
    uploaded = _legacy_artifact(tmp_path / "up", "2", {**old, "epsilon": 0.1})
    models_dir = cfg.resolved_models_dir
    with sessions.begin() as session:
        dataset = session.scalars(select(Dataset).where(Dataset.name == "synthetic")).one()
        session.add(
            TrainingRun(
                dataset_id=dataset.id,
                dataset_hash=dataset.content_hash,
                status=COMPLETED,
                private=True,
                target_epsilon=1.0,
                delta=1e-5,
                noise_multiplier=3.28,
                sample_rate=1 / 15,
                steps=150,
                model_kind="mlp",
                epochs=10,
                batch_size=2048,
                seed=7,
                model_name="legacy",
                model_version="1",
                artifact_sha256=sha256_file(artifact / "manifest.json"),
                started_by="engineer",
            )
        )
        void_row = registry.register(session, CTX, source_dir=artifact, models_dir=models_dir)
        up_row = registry.register(session, CTX, source_dir=uploaded, models_dir=models_dir)

        void = claim_for(
            session,
            artifact_sha256=void_row.artifact_sha256,
            manifest=json.loads(void_row.manifest),
        )
        assert void.status == "void" and void.epsilon is None
        assert void.statement.startswith("void DP claim until retrained")
        with pytest.raises(VoidDpClaim) as refused:
            claim_gate(session, CTX, void_row)
        assert refused.value.status_code == 409
        # The uploader's manifest claims ε = 0.1; no ledger run made it: no DP guarantee.
        none = claim_for(
            session, artifact_sha256=up_row.artifact_sha256, manifest=json.loads(up_row.manifest)
        )
        assert none.status == "none" and none.uncovered and none.epsilon is None
        assert none.statement.startswith("no DP guarantee")
        claim_gate(session, CTX, up_row)  # no claim is no reason to refuse serving

        _, privacy = build_models(session, model="legacy")
        by_version = {p.version: p for p in privacy}
        assert by_version["1"].dp_claim == "void" and by_version["1"].private is False
        assert by_version["2"].dp_claim == "none" and by_version["2"].dp_claim_uncovered
        assert by_version["2"].epsilon is None  # never the uploader's 0.1
