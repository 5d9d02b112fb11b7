"""Groups below min_group_size: reported, measured over all groups, exact intervals, and never a
silent pass at the gate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference
from scipy.stats import binomtest
from sqlalchemy.orm import Session, sessionmaker

from governance.fairness.errors import GateRefused
from governance.fairness.gate import gate_status, overrides
from governance.fairness.metrics import audit_predictions, clopper_pearson, evaluate_thresholds
from governance.fairness.result import result_from_dict
from governance.fairness.service import fairness
from governance.fairness.thresholds.versions import thresholds_store
from governance.kit.context import Context
from governance.registry.models import SERVING, ModelVersion
from governance.registry.service import registry

JUSTIFICATION = "Group too small to judge; reviewed by hand with the data owner, documented."


def _two_groups_and_a_small_one(
    small_selected: int, small_rows: int = 12
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Groups A and B select about half their rows; group C has ``small_rows`` rows."""
    rng = np.random.default_rng(3)
    big = 600
    group = np.array(["A"] * big + ["B"] * big + ["C"] * small_rows, dtype=object)
    y_true = rng.integers(0, 2, size=group.size)
    y_pred = np.concatenate(
        [
            (rng.random(big) < 0.50).astype(int),
            (rng.random(big) < 0.46).astype(int),
            np.array([1] * small_selected + [0] * (small_rows - small_selected)),
        ]
    )
    return y_true, y_pred, pd.DataFrame({"group": group})


def test_clopper_pearson_matches_scipys_exact_binomial_interval() -> None:
    cases = [(0, 7), (1, 12), (6, 12), (12, 12), (3, 39), (39, 39), (17, 29)]
    k = np.array([c[0] for c in cases], dtype=np.int64)
    n = np.array([c[1] for c in cases], dtype=np.int64)
    bounds = clopper_pearson(k, n)
    for j, (successes, trials) in enumerate(cases):
        reference = binomtest(successes, trials).proportion_ci(
            confidence_level=0.95, method="exact"
        )
        assert bounds[0, j] == pytest.approx(reference.low, abs=1e-12)
        assert bounds[1, j] == pytest.approx(reference.high, abs=1e-12)
    assert np.isnan(clopper_pearson(np.array([0]), np.array([0]))).all()


def test_small_groups_get_exact_intervals_and_reliable_ones_bootstrap() -> None:
    y_true, y_pred, sensitive = _two_groups_and_a_small_one(small_selected=12)
    audit = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=50
    ).audit("group")
    small = audit.group("C")
    assert small.interval_method == "clopper-pearson"
    # Every row of C is selected: a bootstrap would say [1, 1]; the exact interval does not.
    reference = binomtest(12, 12).proportion_ci(method="exact")
    assert small.selection_rate_ci is not None
    assert small.selection_rate_ci.low == pytest.approx(reference.low)
    assert small.selection_rate_ci.high == 1.0
    positives = int(y_true[sensitive["group"] == "C"].sum())
    tpr = binomtest(positives, positives).proportion_ci(method="exact")
    assert small.true_positive_rate_ci is not None
    assert small.true_positive_rate_ci.low == pytest.approx(tpr.low)
    assert audit.group("A").interval_method == "bootstrap"
    # Without a bootstrap the small group still gets its exact intervals.
    plain = audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0)
    assert plain.audit("group").group("C").selection_rate_ci == small.selection_rate_ci
    assert plain.audit("group").group("A").selection_rate_ci is None


@pytest.mark.parametrize("fast", [False, True])
def test_each_measure_is_reported_over_all_groups_beside_the_reliable_ones(fast: bool) -> None:
    y_true, y_pred, sensitive = _two_groups_and_a_small_one(small_selected=1)
    result = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0, use_fast_path=fast
    )
    audit = result.audit("group")
    reliable = sensitive["group"] != "C"
    for measure, fairlearn_measure in (
        ("demographic_parity_ratio", demographic_parity_ratio),
        ("equalized_odds_difference", equalized_odds_difference),
    ):
        disparity = audit.disparity(measure)
        assert disparity.groups_used == 2 and disparity.all_groups_used == 3
        assert disparity.value == pytest.approx(
            fairlearn_measure(
                y_true[reliable], y_pred[reliable], sensitive_features=sensitive["group"][reliable]
            )
        )
        assert disparity.all_groups_value == pytest.approx(
            fairlearn_measure(y_true, y_pred, sensitive_features=sensitive["group"])
        )
    stored = result.to_dict()["audits"][0]["disparities"]["demographic_parity_ratio"]
    assert stored["all_groups_used"] == 3 and stored["all_groups_value"] < stored["value"]
    assert result_from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_a_group_below_the_minimum_turns_a_passing_measure_into_insufficient_evidence() -> None:
    bounds = {"demographic_parity_ratio": {"min": 0.8}}
    # Without the small group, A and B pass the four-fifths rule.
    y_true, y_pred, sensitive = _two_groups_and_a_small_one(small_selected=1)
    big = (sensitive["group"] != "C").to_numpy()
    without = audit_predictions(
        y_true=y_true[big], y_pred=y_pred[big], sensitive=sensitive[big], bootstrap=0
    )
    assert evaluate_thresholds(without, bounds).outcome == "pass"

    # C (12 rows, 1 selected) is below min_group_size 30: over reliable groups the measure
    # still passes, but over all groups it fails, so the gate cannot call it a pass.
    with_small = audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0)
    disparity = with_small.audit("group").disparity("demographic_parity_ratio")
    assert disparity.value is not None and disparity.value >= 0.8
    verdict = evaluate_thresholds(with_small, bounds)
    assert not verdict.passed and verdict.outcome == "insufficient evidence"
    [failure] = verdict.failures
    assert failure.outcome == "insufficient evidence"
    assert failure.all_groups_value == disparity.all_groups_value
    assert "C (12 rows)" in failure.reason and "override" in failure.reason
    assert verdict.to_dict()["outcome"] == "insufficient evidence"

    # A small group inside the reliable groups' range does not change the verdict.
    y_true, y_pred, sensitive = _two_groups_and_a_small_one(small_selected=6)
    inside = audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0)
    assert inside.audit("group").excluded
    assert evaluate_thresholds(inside, bounds).outcome == "pass"

    # Counted as a reliable group (a smaller minimum), C fails the rule outright.
    y_true, y_pred, sensitive = _two_groups_and_a_small_one(small_selected=1)
    counted = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, min_group_size=10, bootstrap=0
    )
    assert evaluate_thresholds(counted, bounds).outcome == "fail"


def test_a_real_failure_stays_a_failure_beside_small_groups() -> None:
    y_true, y_pred, sensitive = _two_groups_and_a_small_one(small_selected=1)
    result = audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0)
    verdict = evaluate_thresholds(result, {"demographic_parity_ratio": {"min": 0.99}})
    assert verdict.outcome == "fail"
    assert [f.outcome for f in verdict.failures] == ["fail"]


def test_a_stored_audit_without_all_group_measures_is_not_a_pass() -> None:
    y_true, y_pred, sensitive = _two_groups_and_a_small_one(small_selected=6)
    doc = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0
    ).to_dict()
    for item in doc["audits"][0]["disparities"].values():
        del item["all_groups_value"], item["all_groups_used"]
    old = result_from_dict(doc)
    verdict = evaluate_thresholds(old, {"demographic_parity_ratio": {"min": 0.8}})
    assert verdict.outcome == "insufficient evidence"
    assert "re-run" in verdict.failures[0].reason


def test_the_gate_refuses_insufficient_evidence_until_an_officer_overrides(
    sessions: sessionmaker[Session],
    biased_model: ModelVersion,
    engineer: Context,
    officer: Context,
) -> None:
    model = "adult-lr"

    def set_bounds(session: Session, maximum: float, reason: str) -> None:
        doc = json.loads(thresholds_store.current(session).document)
        doc["models"][model] = {
            "min_group_size": 200,
            "required_features": ["race"],
            "demographic_parity_ratio": {"min": 0.0},
            "equalized_odds_difference": {"max": 1.0},
            "equal_opportunity_difference": {"max": maximum},
        }
        thresholds_store.update(session, officer, document=doc, reason=reason)

    with sessions.begin() as session:
        set_bounds(session, 1.0, "small races are judged apart")
        row = fairness.audit_model(session, engineer, model=model, sensitive=["race"], bootstrap=0)
        assert row.passed
        race = json.loads(row.result)["audits"][0]
    assert race["excluded"], "the Adult test split has races under 200 rows"
    gap = race["disparities"]["equal_opportunity_difference"]
    assert gap["all_groups_value"] > gap["value"]
    # A bound between the two: met by the reliable races, not by all of them.
    with sessions.begin() as session:
        set_bounds(
            session,
            (gap["all_groups_value"] + gap["value"]) / 2,
            "equal opportunity within a few points, for this pilot",
        )
    with sessions() as session:
        status = gate_status(session, session.get(ModelVersion, biased_model.id))  # type: ignore[arg-type]
    assert not status.passed and status.outcome == "insufficient evidence"

    with pytest.raises(GateRefused) as refused, sessions.begin() as session:
        registry.promote(session, engineer, name=model, version="1")
    assert refused.value.status_code == 409
    assert refused.value.extra["outcome"] == "insufficient evidence"
    assert "insufficient evidence" in refused.value.message

    with sessions.begin() as session:
        override = overrides.override(
            session, officer, model=model, version="1", justification=JUSTIFICATION
        )
        assert json.loads(override.failures)[0]["outcome"] == "insufficient evidence"
    with sessions.begin() as session:
        assert registry.promote(session, engineer, name=model, version="1").stage == SERVING
