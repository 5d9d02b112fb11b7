"""Group-threshold post-processing: the formula, Fairlearn parity, determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from inference_factories import random_records, write_artifact

from inference.model import LoadedModel
from inference.postprocess import apply_group_threshold, group_threshold_spec, row_uniforms

_prob = st.floats(min_value=0.0, max_value=1.0)
_threshold = st.floats(min_value=-2.0, max_value=2.0)


@st.composite
def _rule(draw: st.DrawFn) -> dict[str, Any]:
    p0 = draw(_prob)
    rule: dict[str, Any] = {
        "p0": p0,
        "t0": draw(_threshold),
        "p1": draw(st.floats(min_value=0.0, max_value=1.0 - p0)),
        "t1": draw(_threshold),
        "op0": draw(st.sampled_from([">", "<"])),
        "op1": draw(st.sampled_from([">", "<"])),
    }
    if draw(st.booleans()):
        rule["p_ignore"] = draw(_prob)
        rule["prediction_constant"] = draw(_prob)
    return rule


def _by_hand(rule: dict[str, Any], s: float) -> float:
    def hit(op: str, t: float) -> float:
        return float(s > t) if op == ">" else float(s < t)

    q = rule["p0"] * hit(rule["op0"], rule["t0"]) + rule["p1"] * hit(rule["op1"], rule["t1"])
    p_ignore = rule.get("p_ignore", 0.0)
    return p_ignore * rule.get("prediction_constant", 0.0) + (1 - p_ignore) * q


@settings(max_examples=200, deadline=None)
@given(
    female=_rule(),
    default=_rule(),
    rows=st.lists(
        st.tuples(_prob, st.sampled_from(["Female", "Male"]), st.floats(0.0, 0.999999)),
        min_size=1,
        max_size=30,
    ),
)
def test_matches_the_formula(
    female: dict[str, Any], default: dict[str, Any], rows: list[tuple[float, str, float]]
) -> None:
    spec = {"kind": "group_threshold", "feature": "sex", "groups": {"Female": female}}
    spec["default"] = default
    scores = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    uniforms = torch.tensor([r[2] for r in rows], dtype=torch.float64)
    prob, positive = apply_group_threshold(spec, scores, [r[1] for r in rows], uniforms)
    for i, (s, group, u) in enumerate(rows):
        expected = _by_hand(female if group == "Female" else default, s)
        assert prob[i].item() == pytest.approx(expected, abs=1e-12)
        assert bool(positive[i]) == (u < prob[i].item())


@pytest.mark.parametrize(
    ("constraints", "flip"),
    [("demographic_parity", False), ("equalized_odds", False), ("demographic_parity", True)],
)
def test_matches_fairlearn_threshold_optimizer(constraints: str, flip: bool) -> None:
    from fairlearn.postprocessing import ThresholdOptimizer
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n = 800
    groups = rng.choice(["Female", "Male"], n)
    x = rng.normal(size=(n, 3))
    x[:, 0] += groups == "Male"
    y = (x[:, 0] + rng.normal(size=n) > 0.5).astype(int)
    estimator = LogisticRegression().fit(x, y)
    optimizer = ThresholdOptimizer(
        estimator=estimator,
        constraints=constraints,
        prefit=True,
        predict_method="predict_proba",
        flip=flip,
    ).fit(x, y, sensitive_features=groups)
    interpolation = optimizer.interpolated_thresholder_.interpolation_dict
    spec = group_threshold_spec(feature="sex", interpolation=interpolation)
    scores = torch.from_numpy(estimator.predict_proba(x)[:, 1])
    prob, _ = apply_group_threshold(spec, scores, list(groups), torch.zeros(n))
    expected = optimizer._pmf_predict(x, sensitive_features=groups)[:, 1]
    np.testing.assert_allclose(prob.numpy(), expected, atol=1e-12)
    if constraints == "equalized_odds":
        assert any("p_ignore" in rule for rule in spec["groups"].values())


def test_unseen_group_gets_the_default_rule() -> None:
    spec = group_threshold_spec(feature="sex", interpolation={})
    prob, positive = apply_group_threshold(
        spec, torch.tensor([0.99]), ["Female"], torch.tensor([0.0])
    )
    assert prob.item() == 0.0 and not positive.item()  # Fairlearn predicts negative too


def test_row_uniforms_are_deterministic_and_in_range() -> None:
    x = torch.randn(64, 7, generator=torch.Generator().manual_seed(0))
    u = row_uniforms(x)
    assert torch.equal(u, row_uniforms(x.clone()))
    assert torch.equal(u[5:9], row_uniforms(x[5:9]))  # a row's draw ignores its neighbours
    assert bool(((u >= 0) & (u < 1)).all())
    assert len(set(u.tolist())) == 64


def test_model_decisions_are_deterministic(tmp_path: Path) -> None:
    rule = {"p0": 0.5, "t0": 0.2, "p1": 0.5, "t1": 0.8}
    spec = {
        "kind": "group_threshold",
        "feature": "sex",
        "positive_label": 1,
        "groups": {"Female": rule, "Male": {"p0": 1.0, "t0": 0.5, "p1": 0.0, "t1": 0.5}},
        "default": {"p0": 1.0, "t0": 0.5, "p1": 0.0, "t1": 0.5},
    }
    root = write_artifact(tmp_path / "art", postprocessing=spec)
    model = LoadedModel.load(root, torch.device("cpu"))
    records = random_records(torch.Generator().manual_seed(2), 200)
    first = model.predict(records)
    assert first == model.predict(records)
    assert first == LoadedModel.load(root, torch.device("cpu")).predict(records)
    x = model.encode(records)
    scores = model.forward_probabilities(x)[:, 1].double()
    u = row_uniforms(x)
    for i, (record, pred) in enumerate(zip(records, first, strict=True)):
        s = scores[i].item()
        if record["sex"] == "Male":
            p = float(s > 0.5)
        else:
            p = 0.5 * float(s > 0.2) + 0.5 * float(s > 0.8)
        assert pred.probabilities[">50K"] == pytest.approx(p)
        assert pred.label == (">50K" if u[i].item() < p else "<=50K")
