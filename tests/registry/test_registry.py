"""Registration verifies and copies artifacts; stages move registered → serving → retired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from governance.kit.context import cli_context
from governance.registry.errors import InvalidArtifact, StageConflict
from governance.registry.models import ModelVersion
from governance.registry.service import registry
from tests.conftest import ArtifactBuilder


@pytest.fixture
def sessions(db_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The registry service never commits: each test runs in a rolled-back transaction."""
    return db_sessions


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


def test_register_promote_retire(
    sessions, models_dir: Path, make_artifact: ArtifactBuilder
) -> None:  # type: ignore[no-untyped-def]
    ctx = cli_context()
    with sessions.begin() as s:
        v1 = registry.register(s, ctx, source_dir=make_artifact("toy", "1"), models_dir=models_dir)
        v2 = registry.register(
            s,
            ctx,
            source_dir=make_artifact("toy", "2", seed=1),
            models_dir=models_dir,
        )
        assert v1.stage == v2.stage == "registered"
        assert Path(v1.artifact_dir).is_relative_to(models_dir.resolve())
    with sessions.begin() as s:
        for version in ("1", "2"):
            _approve(s, version)
    with sessions.begin() as s:
        registry.promote(s, ctx, name="toy", version="1")
    with sessions.begin() as s:
        registry.promote(s, ctx, name="toy", version="2")
    with sessions.begin() as s:
        stages = {r.version: r.stage for r in s.scalars(select(ModelVersion))}
        assert stages == {"1": "retired", "2": "serving"}
        with pytest.raises(StageConflict):
            registry.promote(s, ctx, name="toy", version="1")


def _approve(session, version: str) -> None:  # type: ignore[no-untyped-def]
    """The fairness gate guards every promotion; these toy models have no data to audit."""
    from governance.fairness.gate import overrides

    overrides.override(
        session,
        cli_context("officer"),
        model="toy",
        version=version,
        justification="registry test: random weights, nothing to audit; "
        "approved only to exercise stage transitions",
    )


def test_promotion_without_fairness_approval_is_refused(
    sessions,
    models_dir: Path,
    make_artifact: ArtifactBuilder,  # type: ignore[no-untyped-def]
) -> None:
    from governance.errors import WardenError

    with sessions.begin() as s:
        registry.register(
            s,
            cli_context(),
            source_dir=make_artifact("toy", "1"),
            models_dir=models_dir,
        )
    with sessions.begin() as s, pytest.raises(WardenError) as refused:
        registry.promote(s, cli_context(), name="toy", version="1")
    assert refused.value.status_code == 409


def test_duplicate_version_refused(
    sessions, models_dir: Path, make_artifact: ArtifactBuilder
) -> None:  # type: ignore[no-untyped-def]
    path = make_artifact("toy", "1")
    with sessions.begin() as s:
        registry.register(s, cli_context(), source_dir=path, models_dir=models_dir)
    with sessions.begin() as s, pytest.raises(StageConflict):
        registry.register(s, cli_context(), source_dir=path, models_dir=models_dir)


def test_tampered_artifact_refused_and_nothing_written(
    sessions,
    models_dir: Path,
    make_artifact: ArtifactBuilder,  # type: ignore[no-untyped-def]
) -> None:
    path = make_artifact("toy", "1")
    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with sessions.begin() as s, pytest.raises(InvalidArtifact, match="sha256"):
        registry.register(s, cli_context(), source_dir=path, models_dir=models_dir)
    with sessions.begin() as s:
        assert s.scalars(select(ModelVersion)).all() == []


def test_tampered_manifest_refused(
    sessions, models_dir: Path, make_artifact: ArtifactBuilder
) -> None:  # type: ignore[no-untyped-def]
    path = make_artifact("toy", "1")
    doc = json.loads((path / "manifest.json").read_text())
    doc["labels"] = ["yes", "no"]  # swaps meanings without touching the weights
    doc["architecture"]["input_dim"] = 8
    (path / "manifest.json").write_text(json.dumps(doc))
    with sessions.begin() as s, pytest.raises(InvalidArtifact):
        registry.register(s, cli_context(), source_dir=path, models_dir=models_dir)
