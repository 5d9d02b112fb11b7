"""``require_dp_claim`` in privacy.yaml: no promotion without a ledger-backed DP claim."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from governance.config import Settings, get_settings
from governance.db import make_engine, make_sessionmaker
from governance.kit.context import cli_context
from governance.privacy.claim_gate import DpClaimRequired, claim_gate
from governance.privacy.ledger import PrivacyPolicyError
from governance.registry.import_schema import parse_import_schema
from governance.registry.importing import import_onnx, import_workdir
from governance.registry.models import ModelVersion
from tests.onnx_graphs import linear_graph, linear_schema
from tests.privacy.ledger_support import CAPS, with_policies

CTX = cli_context("engineer")


@pytest.fixture
def env(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    caps = {**CAPS, "require_dp_claim": {"datasets": ["cohort"], "uses": ["Credit decisions"]}}
    cfg = with_policies(settings, tmp_path, caps)
    # The gate reads the service's settings, as `warden serve` and the CLI build them.
    monkeypatch.setenv("WARDEN_POLICIES_DIR", str(cfg.policies_dir))
    get_settings.cache_clear()
    engine = make_engine(cfg.resolved_database_url)
    try:
        yield cfg, make_sessionmaker(engine)
    finally:
        engine.dispose()
        get_settings.cache_clear()


def _imported(
    session: Session, cfg: Settings, tmp_path: Path, version: str, **card: str
) -> ModelVersion:
    doc = linear_schema(**card)
    graph = tmp_path / f"model-{version}.onnx"
    graph.write_bytes(linear_graph(3))
    workdir = import_workdir(cfg.resolved_models_dir)
    return import_onnx(
        session,
        CTX,
        name="imported",
        version=version,
        graph=graph,
        schema=parse_import_schema(yaml.safe_dump(doc).encode()),
        models_dir=cfg.resolved_models_dir,
        workdir=workdir,
        max_graph_bytes=1 << 20,
    )


def test_named_uses_and_datasets_need_a_dp_claim(
    env: tuple[Settings, sessionmaker[Session]], tmp_path: Path
) -> None:
    cfg, sessions = env
    with sessions.begin() as session:
        for version, card in (
            ("1", {"intended_use": "credit decisions"}),
            ("2", {"training_data": "Cohort"}),
        ):
            row = _imported(session, cfg, tmp_path, version, **card)
            with pytest.raises(DpClaimRequired) as refused:
                claim_gate(session, CTX, row)
            assert refused.value.status_code == 409
            assert refused.value.extra["dp_claim"]["status"] == "none"
        # Neither listed: an imported model without a claim may serve, as before.
        claim_gate(session, CTX, _imported(session, cfg, tmp_path, "3"))


def test_an_invalid_requirement_refuses_promotion(
    env: tuple[Settings, sessionmaker[Session]], tmp_path: Path
) -> None:
    cfg, sessions = env
    (cfg.policies_dir / "privacy.yaml").write_text(
        yaml.safe_dump({**CAPS, "require_dp_claim": {"uses": "credit decisions"}})
    )
    with sessions.begin() as session:
        row = _imported(session, cfg, tmp_path, "1")
        with pytest.raises(PrivacyPolicyError):
            claim_gate(session, CTX, row)
