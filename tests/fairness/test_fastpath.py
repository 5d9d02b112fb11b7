"""The bincount fast path against Fairlearn's MetricFrame, on seeded and Hypothesis data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score

from governance.fairness import fastpath
from governance.fairness.errors import AuditInputError

METRICS = {
    "count": count,
    "selection_rate": selection_rate,
    "accuracy": accuracy_score,
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
}
TOL = 1e-9


def _random_data(
    seed: int, n_rows: int, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = np.array([f"g{i:02d}" for i in rng.integers(0, n_groups, n_rows)], dtype=object)
    y_true = rng.integers(0, 2, n_rows)
    y_pred = (rng.random(n_rows) < rng.uniform(0.1, 0.9)).astype(int)
    if n_groups > 1:
        # One group with no positives and one with no negatives: the 0/0 conventions matter.
        y_true[groups == "g00"] = 0
        y_true[groups == "g01"] = 1
    return y_true, y_pred, groups


def _fast_rates(
    y_true: np.ndarray, y_pred: np.ndarray, columns: list[np.ndarray]
) -> tuple[list[tuple[str, ...]], fastpath.GroupRates]:
    coded = [fastpath.factorize_labels(c, name=f"c{i}") for i, c in enumerate(columns)]
    group_codes, table = fastpath.combine_codes(
        [codes for codes, _ in coded], [len(labels) for _, labels in coded]
    )
    counts = fastpath.confusion_counts(
        group_codes=group_codes, n_groups=table.shape[0], y_true=y_true, y_pred=y_pred
    )
    labels = [tuple(coded[i][1][c] for i, c in enumerate(row)) for row in table.tolist()]
    return labels, fastpath.group_rates(counts)


def _assert_matches_metricframe(
    y_true: np.ndarray, y_pred: np.ndarray, columns: list[np.ndarray]
) -> None:
    labels, rates = _fast_rates(y_true, y_pred, columns)
    frame = pd.DataFrame({f"c{i}": c for i, c in enumerate(columns)})
    mf = MetricFrame(metrics=METRICS, y_true=y_true, y_pred=y_pred, sensitive_features=frame)
    by_group = mf.by_group[mf.by_group["count"].notna()]
    expected_labels = [k if isinstance(k, tuple) else (k,) for k in by_group.index]
    assert labels == expected_labels
    np.testing.assert_array_equal(rates.count, by_group["count"].to_numpy(dtype=np.int64))
    for metric in ("selection_rate", "accuracy", "true_positive_rate", "false_positive_rate"):
        np.testing.assert_allclose(
            getattr(rates, metric), by_group[metric].to_numpy(dtype=float), rtol=0, atol=TOL
        )
    measures = fastpath.disparities(
        selection_rate=rates.selection_rate,
        true_positive_rate=rates.true_positive_rate,
        false_positive_rate=rates.false_positive_rate,
    )
    reference = {
        "demographic_parity_difference": demographic_parity_difference,
        "demographic_parity_ratio": demographic_parity_ratio,
        "equalized_odds_difference": equalized_odds_difference,
        "equalized_odds_ratio": equalized_odds_ratio,
        "equal_opportunity_difference": equal_opportunity_difference,
    }
    for name, function in reference.items():
        expected = function(y_true, y_pred, sensitive_features=frame)
        np.testing.assert_allclose(measures[name], expected, rtol=0, atol=TOL, err_msg=name)


@pytest.mark.parametrize("n_groups", [1, 2, 5, 17])
@pytest.mark.parametrize("seed", [0, 1])
def test_single_feature_matches_metricframe(seed: int, n_groups: int) -> None:
    y_true, y_pred, groups = _random_data(seed, 3_000, n_groups)
    _assert_matches_metricframe(y_true, y_pred, [groups])


@pytest.mark.parametrize("seed", [0, 3])
def test_intersection_matches_metricframe_with_empty_cells(seed: int) -> None:
    y_true, y_pred, first = _random_data(seed, 2_000, 4)
    rng = np.random.default_rng(seed + 100)
    second = rng.choice(np.array(["a", "b", "c"], dtype=object), size=first.shape[0])
    second[first == "g03"] = "a"  # g03 x {b, c} never occurs: MetricFrame shows NaN rows
    _assert_matches_metricframe(y_true, y_pred, [first, second])


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["x", "y", "z"]), st.integers(0, 1), st.integers(0, 1)),
        min_size=1,
        max_size=60,
    )
)
def test_hypothesis_matches_metricframe(rows: list[tuple[str, int, int]]) -> None:
    groups = np.array([r[0] for r in rows], dtype=object)
    y_true = np.array([r[1] for r in rows])
    y_pred = np.array([r[2] for r in rows])
    _assert_matches_metricframe(y_true, y_pred, [groups])


def test_tpr_and_fpr_of_a_group_without_positives_or_negatives_are_zero() -> None:
    counts = np.array([[5, 2, 0, 0], [0, 0, 3, 4]])  # (tn, fp, fn, tp)
    rates = fastpath.group_rates(counts)
    assert rates.true_positive_rate.tolist() == [0.0, 4 / 7]
    assert rates.false_positive_rate.tolist() == [2 / 7, 0.0]
    empty = fastpath.group_rates(np.zeros((1, 4), dtype=np.int64))
    assert np.isnan(empty.selection_rate[0]) and np.isnan(empty.true_positive_rate[0])


def test_equalized_odds_worst_case_keeps_fairlearn_nan_order() -> None:
    # Every FPR is 0 so the FPR ratio is 0/0: Fairlearn's min([tpr_ratio, nan]) is tpr_ratio.
    measures = fastpath.disparities(
        selection_rate=np.array([0.2, 0.4]),
        true_positive_rate=np.array([0.5, 1.0]),
        false_positive_rate=np.array([0.0, 0.0]),
    )
    assert measures["equalized_odds_ratio"] == 0.5
    # Every TPR is 0: min([nan, fpr_ratio]) is nan.
    measures = fastpath.disparities(
        selection_rate=np.array([0.2, 0.4]),
        true_positive_rate=np.array([0.0, 0.0]),
        false_positive_rate=np.array([0.5, 1.0]),
    )
    assert np.isnan(measures["equalized_odds_ratio"])


def test_combine_codes_dense_and_sorted_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    columns = [rng.integers(0, k, 5_000) for k in (3, 50, 40)]
    dense_codes, dense_table = fastpath.combine_codes(columns, [3, 50, 40])
    small = [c[:100] for c in columns]
    dense_small, dense_small_table = fastpath.combine_codes(small, [3, 50, 40])
    # With the limit at 1, 100 rows put the last step past the 4 * n_rows floor: sorted path.
    monkeypatch.setattr(fastpath, "_DENSE_COMBINE_LIMIT", 1)
    sparse_codes, sparse_table = fastpath.combine_codes(small, [3, 50, 40])
    np.testing.assert_array_equal(sparse_codes, dense_small)
    np.testing.assert_array_equal(sparse_table, dense_small_table)
    # Lexicographic order, observed combinations only, and the table decodes every row.
    assert [tuple(r) for r in dense_table.tolist()] == sorted(
        {tuple(r) for r in np.column_stack(columns).tolist()}
    )
    np.testing.assert_array_equal(dense_table[dense_codes], np.column_stack(columns))
    np.testing.assert_array_equal(sparse_table[sparse_codes], np.column_stack(columns)[:100])


def test_marginalize_equals_direct_counts() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.integers(0, 4, 3_000), rng.integers(0, 6, 3_000)
    y_true, y_pred = rng.integers(0, 2, 3_000), rng.integers(0, 2, 3_000)
    codes, table = fastpath.combine_codes([a, b], [4, 6])
    cells = fastpath.confusion_counts(
        group_codes=codes, n_groups=table.shape[0], y_true=y_true, y_pred=y_pred
    )
    for position, column, k in ((0, a, 4), (1, b, 6)):
        direct = fastpath.confusion_counts(
            group_codes=column, n_groups=k, y_true=y_true, y_pred=y_pred
        )
        summed = fastpath.marginalize(cells, mapping=table[:, position], n_targets=k)
        np.testing.assert_array_equal(summed, direct)
        # Leading (replicate) axes are carried through.
        stacked = fastpath.marginalize(
            np.stack([cells, 2 * cells]), mapping=table[:, position], n_targets=k
        )
        np.testing.assert_array_equal(stacked[1], 2 * direct)


def test_factorize_labels_sorts_and_refuses_missing_or_colliding_values() -> None:
    codes, labels = fastpath.factorize_labels(np.array(["b", "a", "c", "a"]), name="f")
    assert labels == ("a", "b", "c")
    assert codes.tolist() == [1, 0, 2, 0]
    with pytest.raises(AuditInputError, match="missing"):
        fastpath.factorize_labels(pd.Series(["a", None, "b"]), name="f")
    with pytest.raises(AuditInputError, match="print the same"):
        fastpath.factorize_labels(np.array([1, "1"], dtype=object), name="f")
