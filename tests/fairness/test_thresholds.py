"""The fairness policy: parsing, validation that lists every problem, per-model overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from governance.fairness.errors import FairnessPolicyError
from governance.fairness.thresholds.bounds import (
    FairnessPolicy,
    load_policy,
    parse_policy,
    validate_thresholds,
)

DEFAULT_YAML = """\
min_group_size: 30
defaults:
  demographic_parity_ratio: {min: 0.8}
  equalized_odds_difference: {max: 0.1}
models:
  credit-scorer:
    min_group_size: 50
    equalized_odds_difference: {max: 0.05}
    equal_opportunity_difference: {max: 0.08}
"""


def test_load_policy_and_thresholds_for_merge_overrides(tmp_path: Path) -> None:
    path = tmp_path / "fairness.yaml"
    path.write_text(DEFAULT_YAML, encoding="utf-8")
    policy = load_policy(path)
    assert isinstance(policy, FairnessPolicy)
    scorer = policy.thresholds_for("credit-scorer")
    assert scorer.min_group_size == 50
    assert scorer.measures == {
        "demographic_parity_ratio": {"min": 0.8},
        "equalized_odds_difference": {"max": 0.05},
        "equal_opportunity_difference": {"max": 0.08},
    }
    other = policy.thresholds_for("unlisted-model")
    assert other.min_group_size == 30
    assert other.measures == {
        "demographic_parity_ratio": {"min": 0.8},
        "equalized_odds_difference": {"max": 0.1},
    }
    # The returned dicts are copies: editing one never changes the policy.
    other.measures["demographic_parity_ratio"]["min"] = 0.0
    assert policy.thresholds_for("unlisted-model").measures["demographic_parity_ratio"] == {
        "min": 0.8
    }


def test_min_group_size_defaults_to_thirty() -> None:
    policy = parse_policy({"defaults": {"demographic_parity_ratio": {"min": 0.8}}})
    assert policy.thresholds_for("m").min_group_size == 30
    assert policy.thresholds_for("m").measures == {"demographic_parity_ratio": {"min": 0.8}}


def test_every_problem_is_reported_at_once() -> None:
    data: dict[str, Any] = {
        "defaults": {
            "demographic_parity_ratio": {"min": 1.5},
            "accuracy": {"min": 0.9},
            "equalized_odds_difference": {"max": True},
            "equalized_odds_ratio": {"min": 0.9, "max": 0.8},
            "equal_opportunity_difference": {"below": 0.1},
        },
        "min_group_size": 0,
        "models": {"m": {"demographic_parity_difference": "0.1"}},
        "extra": 1,
    }
    with pytest.raises(FairnessPolicyError) as caught:
        parse_policy(data)
    problems = caught.value.extra["problems"]
    expected = [
        "defaults.demographic_parity_ratio.min: must be between 0 and 1",
        "defaults.accuracy: unknown measure",
        "defaults.equalized_odds_difference.max: must be a number",
        "defaults.equalized_odds_ratio: min is greater than max",
        "defaults.equal_opportunity_difference: unknown bound 'below'",
        "min_group_size: must be a positive integer",
        "models.m.demographic_parity_difference: must be a mapping",
        "unknown top-level key 'extra'",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert caught.value.status_code == 500


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"defaults": {}},
        {"defaults": {"demographic_parity_ratio": {}}},
        {"defaults": {"demographic_parity_ratio": {"min": 0.8}}, "models": ["m"]},
    ],
)
def test_policies_that_would_gate_nothing_are_refused(data: Any) -> None:
    with pytest.raises(FairnessPolicyError):
        parse_policy(data)


def test_missing_or_unparsable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FairnessPolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("defaults: [unclosed", encoding="utf-8")
    with pytest.raises(FairnessPolicyError, match="not valid YAML"):
        load_policy(broken)


def test_validate_thresholds_normalises_numbers() -> None:
    assert validate_thresholds({"demographic_parity_ratio": {"min": 1}}) == {
        "demographic_parity_ratio": {"min": 1.0}
    }
    with pytest.raises(FairnessPolicyError, match="unknown measure"):
        validate_thresholds({"selection_rate": {"min": 0.5}})


def test_required_features_fail_an_audit_that_leaves_one_out() -> None:
    import numpy as np
    import pandas as pd

    from governance.fairness.metrics import audit_predictions, evaluate_thresholds

    policy = parse_policy(
        {
            "defaults": {"demographic_parity_ratio": {"min": 0.8}},
            "required_features": ["sex", "race"],
            "models": {"other": {"required_features": ["race"]}},
        }
    )
    limits = policy.thresholds_for("m")
    assert limits.required_features == ("sex", "race")
    assert policy.thresholds_for("other").required_features == ("race",)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    race = pd.DataFrame({"race": rng.choice(["a", "b"], 400)})
    # A perfectly fair audit of race alone: it must still fail, because sex was not audited.
    result = audit_predictions(y_true=y, y_pred=y, sensitive=race, bootstrap=0)
    verdict = evaluate_thresholds(
        result,
        limits.measures,
        features=limits.features_to_check([a.name for a in result.audits]),
    )
    assert not verdict.passed
    assert any("sex" in str(f.to_dict()) for f in verdict.failures)


def test_required_features_must_be_names() -> None:
    with pytest.raises(FairnessPolicyError, match="required_features"):
        parse_policy(
            {"defaults": {"demographic_parity_ratio": {"min": 0.8}}, "required_features": "sex"}
        )
