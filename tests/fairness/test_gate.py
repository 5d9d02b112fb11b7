"""The deployment gate: a passing audit of the exact artifact, or an officer's override."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.models import AuditEntry
from governance.config import Settings
from governance.fairness.errors import GateRefused, OverrideRefused, SeparationOfDuties
from governance.fairness.gate import gate_status, overrides
from governance.fairness.service import fairness
from governance.fairness.thresholds.versions import thresholds_store
from governance.kit.context import Context, cli_context
from governance.registry.models import REGISTERED, SERVING, ModelVersion
from governance.registry.service import registry
from tests.fairness.conftest import adult_logreg

JUSTIFICATION = "Reviewed with legal: the disparity reflects the eligibility rule, documented."


def _events(session: Session, event_type: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(AuditEntry.canonical).where(AuditEntry.event_type == event_type))
    return [json.loads(r) for r in rows]


def _relax(session: Session, ctx: Context, model: str) -> None:
    current = json.loads(thresholds_store.current(session).document)
    current["models"][model] = {
        "demographic_parity_ratio": {"min": 0.0},
        "equalized_odds_difference": {"max": 1.0},
    }
    thresholds_store.update(session, ctx, document=current, reason="pilot model, relaxed bounds")


def test_promotion_without_an_audit_is_refused_and_the_denial_is_audited(
    sessions: sessionmaker[Session], biased_model: ModelVersion, engineer: Context
) -> None:
    with pytest.raises(GateRefused) as refused, sessions.begin() as session:
        registry.promote(session, engineer, name="adult-lr", version="1")
    assert refused.value.status_code == 409
    assert "no fairness audit" in refused.value.message
    with sessions() as session:
        assert session.get(ModelVersion, biased_model.id).stage == REGISTERED  # type: ignore[union-attr]
        denials = _events(session, "fairness.gate")
    # The promotion rolled back; the denial was written after it, in its own transaction.
    assert [d["decision"] for d in denials] == ["deny"]
    assert denials[0]["details"]["artifact_sha256"] == biased_model.artifact_sha256


def test_a_biased_model_fails_the_four_fifths_rule_and_is_refused(
    sessions: sessionmaker[Session], biased_model: ModelVersion, engineer: Context
) -> None:
    with sessions.begin() as session:
        audit = fairness.audit_model(
            session, engineer, model="adult-lr", sensitive=["sex", "race"], bootstrap=20
        )
        audit_id, passed = audit.id, audit.passed
        result = json.loads(audit.result)
    assert not passed
    sex = next(a for a in result["audits"] if a["name"] == "sex")
    assert sex["disparities"]["demographic_parity_ratio"]["value"] < 0.8
    assert {a["name"] for a in result["audits"]} == {"sex", "race", "sex&race"}
    assert result["n_rows"] == 15060  # the Adult test split

    with pytest.raises(GateRefused) as refused, sessions.begin() as session:
        registry.promote(session, engineer, name="adult-lr", version="1")
    failures = refused.value.extra["failures"]
    assert refused.value.extra["audit_id"] == audit_id
    assert {"feature": "sex", "measure": "demographic_parity_ratio"}.items() <= failures[0].items()
    assert "demographic_parity_ratio" in refused.value.message


def test_the_trainer_and_the_registrant_cannot_override(
    sessions: sessionmaker[Session], biased_model: ModelVersion, engineer: Context
) -> None:
    for who in (cli_context("tom-trainer"), engineer):
        with pytest.raises(SeparationOfDuties), sessions.begin() as session:
            overrides.override(
                session, who, model="adult-lr", version="1", justification=JUSTIFICATION
            )
    with pytest.raises(OverrideRefused) as short, sessions.begin() as session:
        overrides.override(
            session, cli_context("olivia"), model="adult-lr", version="1", justification="ok"
        )
    assert short.value.status_code == 422


def test_an_officer_override_lets_a_failing_version_serve(
    sessions: sessionmaker[Session],
    biased_model: ModelVersion,
    engineer: Context,
    officer: Context,
) -> None:
    with sessions.begin() as session:
        audit_id = fairness.audit_model(
            session, engineer, model="adult-lr", sensitive=["sex"], bootstrap=0
        ).id
    with sessions.begin() as session:
        row = overrides.override(
            session, officer, model="adult-lr", version="1", justification=JUSTIFICATION
        )
        assert row.audit_id == audit_id
        assert json.loads(row.failures)[0]["measure"] == "demographic_parity_ratio"
    with sessions.begin() as session, pytest.raises(OverrideRefused):  # one per artifact
        overrides.override(
            session, officer, model="adult-lr", version="1", justification=JUSTIFICATION
        )
    with sessions.begin() as session:
        assert registry.promote(session, engineer, name="adult-lr", version="1").stage == SERVING
    with sessions() as session:
        gate_events = _events(session, "fairness.gate")
        override_events = _events(session, "fairness.override")
    assert gate_events[-1]["decision"] == "allow"
    assert gate_events[-1]["details"]["basis"] == "override"
    assert override_events[0]["actor"]["name"] == "olivia-officer"
    assert override_events[0]["details"]["justification"] == JUSTIFICATION


def test_an_audit_is_rejudged_under_new_thresholds_and_binds_the_exact_artifact(
    sessions: sessionmaker[Session],
    settings: Settings,
    biased_model: ModelVersion,
    engineer: Context,
    officer: Context,
    tmp_path: Path,
) -> None:
    with sessions.begin() as session:
        assert not fairness.audit_model(
            session, engineer, model="adult-lr", sensitive=["sex"], bootstrap=0
        ).passed
        _relax(session, officer, "adult-lr")
    with sessions() as session:
        status = gate_status(session, session.get(ModelVersion, biased_model.id))  # type: ignore[arg-type]
    assert status.passed and status.basis == "audit" and status.thresholds_version == 2

    # A second version with other weights is a different artifact: the audit does not carry.
    with sessions.begin() as session:
        other = registry.register(
            session,
            engineer,
            source_dir=adult_logreg(tmp_path / "v2", version="2", male_weight=0.5),
            models_dir=settings.resolved_models_dir,
        )
        assert other.artifact_sha256 != biased_model.artifact_sha256
        assert not gate_status(session, other).passed

    # A changed minimum group size makes the stored numbers stale: a new audit is needed.
    with sessions.begin() as session:
        doc = json.loads(thresholds_store.current(session).document)
        doc["min_group_size"] = 50
        thresholds_store.update(session, officer, document=doc, reason="larger minimum groups")
    with sessions() as session:
        status = gate_status(session, session.get(ModelVersion, biased_model.id))  # type: ignore[arg-type]
    assert not status.passed
    assert "re-run the audit" in status.failures[0]["reason"]


def test_audit_rows_are_append_only(
    sessions: sessionmaker[Session], biased_model: ModelVersion, engineer: Context
) -> None:
    with sessions.begin() as session:
        fairness.audit_model(session, engineer, model="adult-lr", sensitive=["sex"], bootstrap=0)
    with pytest.raises(Exception, match="append-only"), sessions.begin() as session:
        session.execute(text("UPDATE fairness_audits SET passed = true"))
