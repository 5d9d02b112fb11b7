"""Threshold versions: seeded from the YAML, every edit a new immutable audited version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.models import AuditEntry
from governance.fairness.errors import FairnessPolicyError, ThresholdsConflict
from governance.fairness.metrics import audit_predictions, evaluate_thresholds
from governance.fairness.result import result_from_dict
from governance.fairness.thresholds.versions import document_diff, thresholds_store
from governance.kit.context import Context, cli_context


def test_the_yaml_seeds_version_one(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        row = thresholds_store.current(session)
        assert row.version == 1 and row.author == "system"
        policy = thresholds_store.policy(row)
    limits = policy.thresholds_for("any-model")
    assert limits.min_group_size == 30
    assert limits.measures == {
        "demographic_parity_ratio": {"min": 0.8},
        "equalized_odds_difference": {"max": 0.1},
    }
    with sessions() as session:
        assert thresholds_store.current(session).version == 1  # seeded once, not again


def test_a_missing_seed_fails_closed(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with pytest.raises(FairnessPolicyError), sessions.begin() as session:
        thresholds_store.current(session, policies_dir=tmp_path)


def test_edits_are_versioned_with_author_reason_diff_and_audited(
    sessions: sessionmaker[Session], officer: Context
) -> None:
    with sessions.begin() as session:
        doc = json.loads(thresholds_store.current(session).document)
        doc["models"]["credit"] = {"equalized_odds_difference": {"max": 0.05}, "min_group_size": 50}
        doc["defaults"]["demographic_parity_ratio"]["min"] = 0.85
        row = thresholds_store.update(
            session, officer, document=doc, reason="stricter bounds for credit", base_version=1
        )
        assert row.version == 2
    with sessions() as session:
        versions = thresholds_store.history(session)
        entries = [
            json.loads(c)
            for c in session.scalars(
                select(AuditEntry.canonical).where(AuditEntry.event_type == "fairness.thresholds")
            )
        ]
    assert [v.version for v in versions] == [2, 1]
    assert versions[0].author == "olivia-officer"
    diff = json.loads(versions[0].diff)
    assert diff["changed"] == {"defaults.demographic_parity_ratio.min": [0.8, 0.85]}
    assert diff["added"] == {
        "models.credit.equalized_odds_difference.max": 0.05,
        "models.credit.min_group_size": 50,
    }
    assert [(e["action"], e["details"]["version"]) for e in entries] == [
        ("seed", 1),
        ("update", 2),
    ]
    assert entries[1]["details"]["reason"] == "stricter bounds for credit"
    assert entries[1]["actor"]["name"] == "olivia-officer"
    policy = thresholds_store.policy(versions[0])
    assert policy.thresholds_for("credit").min_group_size == 50
    assert policy.thresholds_for("credit").measures["equalized_odds_difference"] == {"max": 0.05}


def test_invalid_stale_or_empty_edits_are_refused(
    sessions: sessionmaker[Session], officer: Context
) -> None:
    with sessions.begin() as session:
        current = json.loads(thresholds_store.current(session).document)
    bad = {"defaults": {"demographic_parity_ratio": {"min": 1.5}, "made_up": {"max": 0.1}}}
    with pytest.raises(FairnessPolicyError) as invalid, sessions.begin() as session:
        thresholds_store.update(session, officer, document=bad, reason="typo in the bounds")
    assert invalid.value.status_code == 422
    problems = invalid.value.extra["problems"]  # every problem listed at once
    assert any("min: must be between 0 and 1" in p for p in problems)
    assert any("made_up: unknown measure" in p for p in problems)
    with pytest.raises(ThresholdsConflict), sessions.begin() as session:
        thresholds_store.update(session, officer, document=current, reason="no actual change")
    edited = {**current, "min_group_size": 40}
    with sessions.begin() as session:
        thresholds_store.update(session, officer, document=edited, reason="first edit wins")
    with pytest.raises(ThresholdsConflict), sessions.begin() as session:
        thresholds_store.update(
            session,
            cli_context("other"),
            document={**current, "min_group_size": 45},
            reason="edited from version 1",
            base_version=1,
        )
    with pytest.raises(Exception, match="append-only"), sessions.begin() as session:
        session.execute(text("DELETE FROM fairness_threshold_versions"))


def test_document_diff_paths() -> None:
    diff = document_diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3, "d": 4}})
    assert diff == {"added": {"a.d": 4}, "removed": {}, "changed": {"a.c": [2, 3]}}


def test_a_stored_result_round_trips_for_the_gate() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    sensitive = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "race": rng.choice(["a", "b", "c", "tiny"], n, p=[0.5, 0.3, 0.195, 0.005]),
        }
    )
    y_true = rng.integers(0, 2, n)
    y_pred = (rng.random(n) < np.where(sensitive["sex"] == "M", 0.6, 0.3)).astype(int)
    bounds = {
        "demographic_parity_ratio": {"min": 0.8},
        "equal_opportunity_difference": {"max": 0.2},
    }
    # No positive prediction at all makes every ratio 0/0 (NaN, stored as null): it must come
    # back as NaN, which fails the gate as "not computable", exactly as before storing.
    for predictions in (y_pred, np.zeros(n, dtype=int)):
        result = audit_predictions(
            y_true=y_true, y_pred=predictions, sensitive=sensitive, bootstrap=30, seed=1
        )
        back = result_from_dict(json.loads(json.dumps(result.to_dict())))
        assert back.to_dict() == result.to_dict()
        assert evaluate_thresholds(back, bounds) == evaluate_thresholds(result, bounds)
    assert "not computable" in evaluate_thresholds(back, bounds).failures[0].reason
