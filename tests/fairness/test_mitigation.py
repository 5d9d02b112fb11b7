"""Mitigation: the exported spec reproduces Fairlearn's ThresholdOptimizer and reduces bias."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_ratio
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin

from governance.fairness.errors import MitigationError
from governance.fairness.mitigation.group_rule import (
    apply_group_threshold,
    fit_group_thresholds,
    tradeoff_numbers,
    tradeoff_plot,
    validate_spec,
)


class ScoreColumn(ClassifierMixin, BaseEstimator):
    """The test's own wrapper, independent of the module's: X[:, 0] is P(positive)."""

    def fit(self, X: Any, y: Any = None) -> ScoreColumn:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        scores = np.asarray(X, dtype=float)[:, 0]
        return np.column_stack([1 - scores, scores])


def _biased_scores(seed: int, n_rows: int) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """A score that is informative but inflated for men, whose base rate is also higher."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(np.array(["Male", "Female"], dtype=object), n_rows, p=[0.6, 0.4])
    y = (rng.random(n_rows) < np.where(sex == "Male", 0.45, 0.3)).astype(int)
    scores = np.clip(
        0.25 * y + rng.normal(0.4, 0.15, n_rows) + np.where(sex == "Male", 0.1, -0.05), 0, 1
    )
    return scores, y, pd.Series(sex, name="sex")


@pytest.fixture(scope="module")
def fitted() -> tuple[dict[str, Any], ThresholdOptimizer]:
    scores, y, sex = _biased_scores(0, 8_000)
    spec = fit_group_thresholds(scores=scores, y_true=y, sensitive=sex)
    optimizer = ThresholdOptimizer(
        estimator=ScoreColumn().fit(None),
        constraints="demographic_parity",
        objective="accuracy_score",
        prefit=True,
        predict_method="predict_proba",
    )
    optimizer.fit(scores[:, None], y, sensitive_features=sex.to_numpy())
    return spec, optimizer


def test_spec_is_json_and_validates(fitted: tuple[dict[str, Any], ThresholdOptimizer]) -> None:
    spec, _ = fitted
    loaded = json.loads(json.dumps(spec, allow_nan=False))
    validate_spec(loaded)
    assert loaded["kind"] == "group_threshold" and loaded["feature"] == "sex"
    assert set(loaded["groups"]) == {"Female", "Male"}
    assert loaded["default"] == loaded["groups"]["Male"]  # the largest group
    for rule in loaded["groups"].values():
        assert set(rule) == {"p0", "t0", "p1", "t1"}
        assert rule["p0"] + rule["p1"] == pytest.approx(1.0)


def test_probabilities_equal_fairlearn_pmf_exactly(
    fitted: tuple[dict[str, Any], ThresholdOptimizer],
) -> None:
    spec, optimizer = fitted
    scores, _, sex = _biased_scores(1, 5_000)  # fresh rows, same groups
    ours, _ = apply_group_threshold(spec, scores, sex.to_numpy(), np.zeros(len(scores)))
    theirs = optimizer._pmf_predict(scores[:, None], sensitive_features=sex.to_numpy())[:, 1]
    np.testing.assert_array_equal(ours, theirs)


def test_selection_rates_match_threshold_optimizer_predict(
    fitted: tuple[dict[str, Any], ThresholdOptimizer],
) -> None:
    spec, optimizer = fitted
    scores, _, sex = _biased_scores(2, 200_000)
    groups = sex.to_numpy()
    rng = np.random.default_rng(3)
    _, ours = apply_group_threshold(spec, scores, groups, rng.random(len(scores)))
    theirs = optimizer.predict(scores[:, None], sensitive_features=groups, random_state=4)
    for group in ("Male", "Female"):
        mask = groups == group
        # Two independent draws of ~100k Bernoullis: 0.01 is about five standard errors.
        assert ours[mask].mean() == pytest.approx(theirs[mask].mean(), abs=0.01), group


def test_mitigation_improves_demographic_parity_on_held_out_data(
    fitted: tuple[dict[str, Any], ThresholdOptimizer], tmp_path: Path
) -> None:
    spec, _ = fitted
    scores, y, sex = _biased_scores(5, 20_000)
    before = (scores > 0.5).astype(int)
    _, after = apply_group_threshold(
        spec, scores, sex.to_numpy(), np.random.default_rng(6).random(len(scores))
    )
    ratio_before = demographic_parity_ratio(y, before, sensitive_features=sex)
    ratio_after = demographic_parity_ratio(y, after, sensitive_features=sex)
    assert ratio_before < 0.6
    assert ratio_after > 0.9 and ratio_after > ratio_before

    numbers = tradeoff_numbers(y_true=y, y_pred_before=before, y_pred_after=after, sensitive=sex)
    json.dumps(numbers, allow_nan=False)
    assert numbers["before"]["demographic_parity_ratio"] == pytest.approx(ratio_before)
    assert numbers["after"]["demographic_parity_ratio"] == pytest.approx(ratio_after)
    assert numbers["change"]["demographic_parity_ratio"] == pytest.approx(
        ratio_after - ratio_before
    )
    assert set(numbers["after"]["selection_rates"]) == {"Female", "Male"}

    path = tradeoff_plot(numbers["before"], numbers["after"], tmp_path / "tradeoff.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000


def test_unseen_group_gets_the_default_rule(
    fitted: tuple[dict[str, Any], ThresholdOptimizer],
) -> None:
    spec, _ = fitted
    scores = np.array([0.2, 0.5, 0.69, 0.71, 0.95])
    unseen, _ = apply_group_threshold(spec, scores, ["Other"] * 5, np.zeros(5))
    male, _ = apply_group_threshold(spec, scores, ["Male"] * 5, np.zeros(5))
    np.testing.assert_array_equal(unseen, male)


def test_infinite_thresholds_become_finite_and_decide_the_same() -> None:
    # A tiny group whose best rule is "always positive" for part of the mass: t = -inf.
    spec = {
        "kind": "group_threshold",
        "feature": "g",
        "groups": {"a": {"p0": 0.25, "t0": -1.0, "p1": 0.75, "t1": 1.0}},
        "default": {"p0": 1.0, "t0": 0.5, "p1": 0.0, "t1": 0.5},
    }
    prob, labels = apply_group_threshold(spec, [0.0, 1.0, 0.5], ["a", "a", "a"], [0.1, 0.3, 0.24])
    assert prob.tolist() == [0.25, 0.25, 0.25]
    assert labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "other"}, "kind"),
        ({"groups": {}}, "groups"),
        ({"default": {"p0": 0.5, "t0": 0.5, "p1": 0.6, "t1": 0.5}}, "p0 \\+ p1"),
        ({"default": {"p0": 1.0, "t0": float("inf"), "p1": 0.0, "t1": 0.5}}, "finite"),
        ({"feature": ""}, "feature"),
    ],
)
def test_invalid_specs_are_refused(change: dict[str, Any], message: str) -> None:
    spec: dict[str, Any] = {
        "kind": "group_threshold",
        "feature": "g",
        "groups": {"a": {"p0": 1.0, "t0": 0.5, "p1": 0.0, "t1": 0.5}},
        "default": {"p0": 1.0, "t0": 0.5, "p1": 0.0, "t1": 0.5},
    }
    spec.update(change)
    with pytest.raises(MitigationError, match=message):
        validate_spec(spec)


def test_bad_inputs_are_refused(fitted: tuple[dict[str, Any], ThresholdOptimizer]) -> None:
    spec, _ = fitted
    with pytest.raises(MitigationError, match="probabilities"):
        apply_group_threshold(spec, [1.5], ["Male"], [0.1])
    with pytest.raises(MitigationError, match="same length"):
        apply_group_threshold(spec, [0.5, 0.5], ["Male"], [0.1, 0.2])
    with pytest.raises(MitigationError, match="uniforms"):
        apply_group_threshold(spec, [0.5], ["Male"], [1.0])
    with pytest.raises(MitigationError, match="one label"):
        # A group with only negatives has no trade-off curve: Fairlearn refuses, so do we.
        fit_group_thresholds(
            scores=[0.1, 0.9, 0.4, 0.6],
            y_true=[0, 1, 0, 0],
            sensitive=pd.Series(["a", "a", "b", "b"], name="g"),
        )
