"""Group-wise confusion counts with ``np.bincount``: Fairlearn's numbers without its per-group loop.

Every metric an audit reports (selection rate, accuracy, true and false positive rate) is a
ratio of a group's four confusion counts. One ``np.bincount`` over ``group * 4 + y_true * 2 +
y_pred`` gives all of them for every group in a single pass over the rows, where ``MetricFrame``
calls each metric function once per group. The same counts drive the bootstrap: a resample of
the rows only changes the counts, so replicates are drawn as multinomial counts, not rows.

Conventions follow Fairlearn exactly, so the two engines agree to the last bit:

- TPR and FPR use ``sklearn.metrics.confusion_matrix(normalize="true")``, which turns 0/0 into
  0: a group with no positives has a TPR of 0, not NaN.
- Disparities skip NaN groups (pandas ``min``/``max``), a ratio is ``min / max`` (0/0 is NaN),
  and the equalized-odds worst case is Python's ``max``/``min`` over ``[tpr, fpr]``, in that
  order, as ``fairlearn.metrics.equalized_odds_difference`` computes it.

Cell order within a group is ``(tn, fp, fn, tp)``, that is index ``y_true * 2 + y_pred``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from governance.fairness.errors import AuditInputError

TN: Final[int] = 0
FP: Final[int] = 1
FN: Final[int] = 2
TP: Final[int] = 3
CELLS: Final[int] = 4

# Above this many possible combinations, find observed groups by sorting instead of by a dense
# presence table, so memory stays proportional to the rows, not to the product of cardinalities.
_DENSE_COMBINE_LIMIT: Final[int] = 1 << 22

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class GroupRates:
    """Per-group metrics computed from confusion counts; arrays share the counts' leading shape."""

    count: IntArray
    selection_rate: FloatArray
    accuracy: FloatArray
    true_positive_rate: FloatArray
    false_positive_rate: FloatArray


def factorize_labels(values: Any, *, name: str) -> tuple[IntArray, tuple[str, ...]]:
    """Code one sensitive column as integers, with its values as sorted strings.

    Args:
        values: the column (array-like of any hashable values).
        name: the column's name, for error messages.

    Returns:
        ``(codes, labels)``: ``labels`` sorted, ``labels[codes[i]]`` is row ``i``'s value.

    Raises:
        AuditInputError: a value is missing, or two distinct values print the same (``1`` and
            ``"1"``), which would merge two groups in the report without anyone deciding to.
    """
    # Hash-factorize the raw values first and stringify only the uniques: casting a million
    # rows to str costs more than the whole fast-path audit. pandas loads with the first audit.
    import pandas as pd

    raw_codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    if raw_codes.size and int(raw_codes.min()) < 0:
        raise AuditInputError(
            f"sensitive feature {name!r} has missing values; label them explicitly "
            "(for example 'unknown') so they are audited as a group, not dropped"
        )
    labels = [str(u) for u in uniques]
    if len(set(labels)) != len(labels):
        raise AuditInputError(
            f"sensitive feature {name!r} has distinct values that print the same "
            "(mixed types such as 1 and '1'); normalise the column first"
        )
    order = np.argsort(np.asarray(labels, dtype=object), kind="stable")
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels), dtype=np.int64)
    return rank[raw_codes], tuple(labels[i] for i in order)


def combine_codes(
    codes: Sequence[IntArray], cardinalities: Sequence[int]
) -> tuple[IntArray, IntArray]:
    """Code the observed combinations of several coded columns, in lexicographic order.

    Args:
        codes: one integer code array per column, all the same length.
        cardinalities: the number of distinct values of each column.

    Returns:
        ``(group_codes, table)``: ``group_codes[i]`` is row ``i``'s combination, and
        ``table[g]`` holds combination ``g``'s code in each column (shape ``(groups, columns)``).
        Only combinations that occur are numbered.
    """
    if len(codes) != len(cardinalities) or not codes:
        raise ValueError("need one cardinality per code array, and at least one array")
    n_rows = codes[0].shape[0]
    group_codes = codes[0].astype(np.int64, copy=False)
    table = np.arange(cardinalities[0], dtype=np.int64)[:, None]
    for column_codes, cardinality in zip(codes[1:], cardinalities[1:], strict=True):
        # table has at most one row per observed group (<= n_rows), so this cannot overflow.
        combined = group_codes * cardinality + column_codes
        possible = table.shape[0] * cardinality
        if possible <= max(_DENSE_COMBINE_LIMIT, 4 * n_rows):
            present = np.bincount(combined, minlength=possible) > 0
            observed = np.flatnonzero(present)
            remap = np.cumsum(present, dtype=np.int64) - 1
            group_codes = remap[combined]
        else:
            observed, inverse = np.unique(combined, return_inverse=True)
            group_codes = inverse.astype(np.int64, copy=False).reshape(-1)
        table = np.column_stack([table[observed // cardinality], observed % cardinality])
    return group_codes, table


def confusion_counts(
    *, group_codes: IntArray, n_groups: int, y_true: NDArray[Any], y_pred: NDArray[Any]
) -> IntArray:
    """Count ``(tn, fp, fn, tp)`` for every group in one pass.

    Args:
        group_codes: each row's group, in ``[0, n_groups)``.
        n_groups: the number of groups.
        y_true: 0/1 labels.
        y_pred: 0/1 predictions.

    Returns:
        An ``(n_groups, 4)`` int64 array of confusion counts.
    """
    cell = group_codes * CELLS
    cell += y_true.astype(np.int64, copy=False) * 2
    cell += y_pred.astype(np.int64, copy=False)
    return np.bincount(cell, minlength=n_groups * CELLS).reshape(n_groups, CELLS)


def marginalize(counts: IntArray, *, mapping: IntArray, n_targets: int) -> IntArray:
    """Sum fine groups' counts into coarser groups (intersection cells into one feature's values).

    Args:
        counts: ``(..., groups, 4)`` confusion counts.
        mapping: for each fine group, its coarse group in ``[0, n_targets)``; every coarse group
            must receive at least one fine group.
        n_targets: the number of coarse groups.

    Returns:
        ``(..., n_targets, 4)`` confusion counts.
    """
    order = np.argsort(mapping, kind="stable")
    starts = np.searchsorted(mapping[order], np.arange(n_targets))
    if starts.size and (np.any(np.diff(starts) == 0) or starts[-1] >= order.size):
        raise ValueError("every coarse group must receive at least one fine group")
    return np.add.reduceat(counts[..., order, :], starts, axis=-2)


def resample_counts(
    counts: IntArray, *, replicates: int, seed: int, chunk_cells: int = 4_000_000
) -> Iterator[IntArray]:
    """Bootstrap replicates of a table of counts, drawn as counts rather than as rows.

    Resampling n rows with replacement and counting them per cell gives a multinomial with n
    trials and the observed cell proportions, so one ``Generator.multinomial`` call per chunk
    of replicates replaces n random indices and a bincount per replicate.

    Args:
        counts: ``(groups, 4)`` confusion counts of the finest partition (intersection cells).
        replicates: how many replicates in all.
        seed: seeds ``numpy.random.default_rng``; the same seed yields the same replicates.
        chunk_cells: at most this many counts per yielded chunk, to bound memory.

    Yields:
        ``(k, groups, 4)`` arrays of resampled counts, ``replicates`` in total.
    """
    n_rows = int(counts.sum())
    proportions = counts.reshape(-1) / n_rows
    rng = np.random.default_rng(seed)
    chunk = max(1, chunk_cells // counts.size)
    done = 0
    while done < replicates:
        size = min(chunk, replicates - done)
        yield rng.multinomial(n_rows, proportions, size=size).reshape(size, *counts.shape)
        done += size


def group_rates(counts: IntArray) -> GroupRates:
    """Compute each group's metrics from its confusion counts, with Fairlearn's conventions.

    Args:
        counts: ``(..., groups, 4)`` confusion counts.

    Returns:
        The metrics, each shaped like ``counts[..., 0]``. A group with no rows has NaN rates.
    """
    tn, fp, fn, tp = (counts[..., i] for i in range(CELLS))
    total = tn + fp + fn + tp
    positives = tp + fn
    negatives = fp + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        selection_rate = (tp + fp) / total
        accuracy = (tp + tn) / total
        # sklearn's confusion_matrix(normalize="true") maps 0/0 to 0; Fairlearn inherits it.
        tpr = np.where(positives > 0, tp / np.maximum(positives, 1), 0.0)
        fpr = np.where(negatives > 0, fp / np.maximum(negatives, 1), 0.0)
    nan = np.isnan(selection_rate)
    return GroupRates(
        count=total,
        selection_rate=selection_rate,
        accuracy=accuracy,
        true_positive_rate=np.where(nan, np.nan, tpr),
        false_positive_rate=np.where(nan, np.nan, fpr),
    )


def disparities(
    *, selection_rate: FloatArray, true_positive_rate: FloatArray, false_positive_rate: FloatArray
) -> dict[str, FloatArray]:
    """Disparity measures over the last axis (the groups), as Fairlearn defines them.

    Args:
        selection_rate: ``(..., groups)`` selection rates.
        true_positive_rate: ``(..., groups)`` true positive rates.
        false_positive_rate: ``(..., groups)`` false positive rates.

    Returns:
        ``demographic_parity_difference``/``_ratio``, ``equalized_odds_difference``/``_ratio``
        (worst case) and ``equal_opportunity_difference``, each shaped like ``rates[..., 0]``.
    """
    dp_diff, dp_ratio = _difference_and_ratio(selection_rate)
    tpr_diff, tpr_ratio = _difference_and_ratio(true_positive_rate)
    fpr_diff, fpr_ratio = _difference_and_ratio(false_positive_rate)
    return {
        "demographic_parity_difference": dp_diff,
        "demographic_parity_ratio": dp_ratio,
        # Python's max([tpr, fpr]) keeps tpr unless fpr > tpr, NaNs included: match it exactly.
        "equalized_odds_difference": np.where(fpr_diff > tpr_diff, fpr_diff, tpr_diff),
        "equalized_odds_ratio": np.where(fpr_ratio < tpr_ratio, fpr_ratio, tpr_ratio),
        "equal_opportunity_difference": tpr_diff,
    }


def _difference_and_ratio(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # A bootstrap replicate can leave every group empty (all-NaN slice): NaN is the answer.
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanmin(values, axis=-1)
        high = np.nanmax(values, axis=-1)
        return high - low, low / high
