"""audit_predictions and evaluate_thresholds, checked against Fairlearn called directly."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from governance.fairness import metrics
from governance.fairness.errors import AuditInputError, FairnessPolicyError
from governance.fairness.metrics import FairnessResult, audit_predictions, evaluate_thresholds

FAIRLEARN_MEASURES = {
    "demographic_parity_difference": demographic_parity_difference,
    "demographic_parity_ratio": demographic_parity_ratio,
    "equalized_odds_difference": equalized_odds_difference,
    "equalized_odds_ratio": equalized_odds_ratio,
    "equal_opportunity_difference": equal_opportunity_difference,
}
TOL = 1e-9


def _biased_data(seed: int = 0, n_rows: int = 6_000) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Predictions that favour men, with one race group far below min_group_size."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Male", "Female"], n_rows, p=[0.55, 0.45])
    race = rng.choice(np.array(["A", "B", "C"], dtype=object), n_rows, p=[0.6, 0.3, 0.1])
    race[rng.choice(n_rows, size=20, replace=False)] = "D"
    y_true = (rng.random(n_rows) < 0.4).astype(int)
    base = np.where(sex == "Male", 0.55, 0.35) + np.where(race == "B", -0.05, 0.0)
    y_pred = (rng.random(n_rows) < base + 0.25 * y_true).astype(int)
    return y_true, y_pred, pd.DataFrame({"sex": sex, "race": race})


def _fairlearn_group_table(
    y_true: np.ndarray, y_pred: np.ndarray, frame: pd.DataFrame
) -> pd.DataFrame:
    mf = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "accuracy": accuracy_score,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=frame,
    )
    return mf.by_group.dropna(how="all")


@pytest.mark.parametrize("fast", [False, True])
def test_every_metric_matches_fairlearn(fast: bool) -> None:
    y_true, y_pred, sensitive = _biased_data()
    result = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0, use_fast_path=fast
    )
    assert result.engine == ("fastpath" if fast else "metricframe")
    assert [a.name for a in result.audits] == ["sex", "race", "sex&race"]
    assert result.overall.accuracy == pytest.approx(accuracy_score(y_true, y_pred), abs=TOL)
    for audit in result.audits:
        columns = list(audit.features)
        table = _fairlearn_group_table(y_true, y_pred, sensitive[columns])
        assert len(audit.groups) == len(table)
        for group in audit.groups:
            key = group.group if len(group.group) > 1 else group.group[0]
            row = table.loc[key]
            mask = np.all(
                [sensitive[c].to_numpy() == v for c, v in zip(columns, group.group, strict=True)],
                axis=0,
            )
            assert group.count == int(mask.sum())
            for metric in ("selection_rate", "accuracy", "true_positive_rate"):
                assert getattr(group, metric) == pytest.approx(row[metric], abs=TOL)
            assert group.false_positive_rate == pytest.approx(row["false_positive_rate"], abs=TOL)
        # Disparities are Fairlearn's, on the rows of reliable groups only.
        reliable = {g.group for g in audit.groups if g.reliable}
        keep = np.array([tuple(r) in reliable for r in sensitive[columns].itertuples(index=False)])
        for name, function in FAIRLEARN_MEASURES.items():
            expected = function(
                y_true[keep], y_pred[keep], sensitive_features=sensitive[columns][keep]
            )
            assert audit.disparity(name).value == pytest.approx(expected, abs=TOL), name
            assert audit.disparity(name).groups_used == len(reliable)


def test_engines_agree_exactly_with_bootstrap() -> None:
    y_true, y_pred, sensitive = _biased_data(seed=4, n_rows=3_000)
    slow = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=50, use_fast_path=False
    ).to_dict()
    fast = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=50, use_fast_path=True
    ).to_dict()
    assert slow.pop("engine") == "metricframe" and fast.pop("engine") == "fastpath"
    assert slow == fast


def test_engine_is_chosen_by_row_count(monkeypatch: pytest.MonkeyPatch) -> None:
    y_true, y_pred, sensitive = _biased_data(n_rows=500)
    monkeypatch.setattr(metrics, "FAST_PATH_MIN_ROWS", 500)
    assert audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0
    ).engine == ("fastpath")
    monkeypatch.setattr(metrics, "FAST_PATH_MIN_ROWS", 501)
    assert (
        audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0).engine
        == "metricframe"
    )


def test_small_groups_are_flagged_excluded_and_listed() -> None:
    y_true, y_pred, sensitive = _biased_data()
    result = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, min_group_size=30, bootstrap=0
    )
    race = result.audit("race")
    small = race.group("D")
    assert small.count < 30 and not small.reliable
    assert [e.group for e in race.excluded] == [("D",)]
    assert "fewer than min_group_size 30" in race.excluded[0].reason
    assert race.disparity("demographic_parity_ratio").groups_used == 3
    # The excluded group still reports its own metrics (never silently dropped).
    assert 0.0 <= small.selection_rate <= 1.0
    # Including it would change the measure: the exclusion is not a no-op.
    everyone = demographic_parity_difference(y_true, y_pred, sensitive_features=sensitive["race"])
    assert race.disparity("demographic_parity_difference").value != pytest.approx(everyone)
    intersection = result.audit("sex&race")
    assert {e.group for e in intersection.excluded} == {("Female", "D"), ("Male", "D")}


def test_too_few_reliable_groups_gives_none_and_fails_the_gate() -> None:
    y_true, y_pred, sensitive = _biased_data(n_rows=400)
    result = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, min_group_size=300, bootstrap=20
    )
    measure = result.audit("race").disparity("demographic_parity_ratio")
    assert measure.value is None and measure.ci is None
    assert measure.note is not None and "reliable group" in measure.note
    verdict = evaluate_thresholds(
        result, {"demographic_parity_ratio": {"min": 0.0}}, features=["race"]
    )
    assert not verdict.passed
    assert "not computable" in verdict.failures[0].reason


def test_bootstrap_intervals_contain_estimates_and_are_deterministic() -> None:
    y_true, y_pred, sensitive = _biased_data(seed=2)
    first = audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, seed=7)
    again = audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, seed=7)
    other = audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, seed=8)
    assert first.to_dict() == again.to_dict()
    assert first.to_dict() != other.to_dict()
    for audit in first.audits:
        for group in audit.groups:
            for metric in ("selection_rate", "true_positive_rate", "false_positive_rate"):
                ci = getattr(group, f"{metric}_ci")
                assert ci is not None and ci.low is not None and ci.high is not None
                assert ci.low <= getattr(group, metric) <= ci.high, (audit.name, group, metric)
        for disparity in audit.disparities:
            assert disparity.ci is not None and disparity.value is not None
            assert disparity.ci.low is not None and disparity.ci.high is not None
            assert disparity.ci.low <= disparity.value <= disparity.ci.high, disparity


def test_multinomial_bootstrap_matches_row_resampling() -> None:
    """Resampling counts is the same distribution as resampling rows: compare the intervals."""
    y_true, y_pred, sensitive = _biased_data(seed=5, n_rows=2_000)
    replicates = 2_000
    result = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive[["sex"]], bootstrap=replicates
    )
    rng = np.random.default_rng(123)
    male = (sensitive["sex"] == "Male").to_numpy()
    rows = rng.integers(0, y_true.shape[0], size=(replicates, y_true.shape[0]))
    rates = {}
    for name, mask in (("Male", male), ("Female", ~male)):
        picked = mask[rows]
        rates[name] = (y_pred[rows] * picked).sum(axis=1) / picked.sum(axis=1)
    brute = np.minimum(rates["Male"], rates["Female"]) / np.maximum(rates["Male"], rates["Female"])
    low, high = np.percentile(brute, [2.5, 97.5])
    ci = result.audit("sex").disparity("demographic_parity_ratio").ci
    assert ci is not None
    assert ci.low == pytest.approx(low, abs=0.01) and ci.high == pytest.approx(high, abs=0.01)
    male_ci = result.audit("sex").group("Male").selection_rate_ci
    assert male_ci is not None
    low, high = np.percentile(rates["Male"], [2.5, 97.5])
    assert male_ci.low == pytest.approx(low, abs=0.01)
    assert male_ci.high == pytest.approx(high, abs=0.01)


def _assert_plain_json(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            _assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain_json(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), type(value)
        if type(value) is float:
            assert math.isfinite(value)


def test_to_dict_is_plain_json_with_nan_as_none() -> None:
    y_true, _, sensitive = _biased_data(n_rows=1_000)
    # Nobody is selected: every selection rate is 0 and the ratio is 0/0 = NaN (as Fairlearn).
    y_pred = np.zeros_like(y_true)
    result = audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=20)
    ratio = result.audit("sex").disparity("demographic_parity_ratio")
    assert ratio.value is not None and math.isnan(ratio.value)
    assert math.isnan(demographic_parity_ratio(y_true, y_pred, sensitive_features=sensitive["sex"]))
    data = result.to_dict()
    _assert_plain_json(data)
    text = json.dumps(data, allow_nan=False)
    sex = json.loads(text)["audits"][0]
    assert sex["disparities"]["demographic_parity_ratio"]["value"] is None
    assert sex["groups"][0]["group"] == {"sex": "Female"}
    verdict = evaluate_thresholds(result, {"demographic_parity_ratio": {"min": 0.8}})
    assert not verdict.passed
    json.dumps(verdict.to_dict(), allow_nan=False)


def test_result_is_frozen() -> None:
    y_true, y_pred, sensitive = _biased_data(n_rows=500)
    result = audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0)
    with pytest.raises(AttributeError):
        result.n_rows = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_true": [0, 1, 2], "y_pred": [0, 1, 1]}, "only 0 and 1"),
        ({"y_true": [0, 1, 1], "y_pred": [0, 1]}, "rows"),
        ({"y_true": [], "y_pred": []}, "no rows"),
        ({"sensitive": pd.DataFrame({"sex": ["a", None, "b"]})}, "missing"),
        ({"sensitive": pd.DataFrame(index=range(3))}, "no columns"),
        ({"sensitive": pd.DataFrame({"sex": ["a", "b"]})}, "rows"),
        ({"min_group_size": 0}, "min_group_size"),
        ({"bootstrap": -1}, "bootstrap"),
    ],
)
def test_bad_input_is_refused(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "y_true": [0, 1, 1],
        "y_pred": [0, 1, 0],
        "sensitive": pd.DataFrame({"sex": ["a", "b", "a"]}),
        "bootstrap": 0,
    }
    arguments.update(kwargs)
    with pytest.raises(AuditInputError, match=message):
        audit_predictions(**arguments)


def _audit_for_gate() -> FairnessResult:
    y_true, y_pred, sensitive = _biased_data()
    return audit_predictions(y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0)


def test_gate_checks_min_and_max_bounds_per_feature() -> None:
    result = _audit_for_gate()
    ratio = result.audit("sex").disparity("demographic_parity_ratio").value
    assert ratio is not None and ratio < 0.8  # biased by construction
    verdict = evaluate_thresholds(
        result,
        {"demographic_parity_ratio": {"min": 0.8}, "equalized_odds_difference": {"max": 1.0}},
    )
    assert not verdict.passed
    failing = {(f.feature, f.measure, f.bound) for f in verdict.failures}
    assert ("sex", "demographic_parity_ratio", "min") in failing
    assert all(f.measure == "demographic_parity_ratio" for f in verdict.failures)
    lenient = evaluate_thresholds(
        result,
        {"demographic_parity_ratio": {"min": 0.0, "max": 1.0}},
        features=["sex", "race"],
    )
    assert lenient.passed and lenient.failures == []
    strict_max = evaluate_thresholds(
        result, {"demographic_parity_difference": {"max": 0.01}}, features=["race"]
    )
    assert [(f.feature, f.bound, f.limit) for f in strict_max.failures] == [("race", "max", 0.01)]


def test_gate_fails_closed() -> None:
    result = _audit_for_gate()
    assert not evaluate_thresholds(result, {}).passed
    missing = evaluate_thresholds(
        result, {"demographic_parity_ratio": {"min": 0.0}}, features=["age"]
    )
    assert not missing.passed and "not audited" in missing.failures[0].reason
    with pytest.raises(FairnessPolicyError, match="unknown measure"):
        evaluate_thresholds(result, {"accuracy": {"min": 0.5}})
