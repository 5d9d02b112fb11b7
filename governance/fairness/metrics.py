"""Fairness audit of a model's predictions, and the deployment gate on it.

``audit_predictions`` reports, for each sensitive feature and for the intersection of all of
them, every group's count, selection rate, accuracy, TPR and FPR, and five disparity measures
defined exactly as Fairlearn defines them (``demographic_parity_difference``/``_ratio``,
``equalized_odds_difference``/``_ratio`` with ``agg="worst_case"``, and
``equal_opportunity_difference``). Two engines compute the same numbers: Fairlearn's
``MetricFrame`` for small audits, and :mod:`governance.fairness.fastpath` (``np.bincount`` over
group codes) for large ones or when forced.

Small groups are the classic way a disparity number lies, so a group below ``min_group_size``
is kept in the report with ``reliable: false``, listed with the reason, and left out of the
disparity measures over reliable groups; each measure is also reported over all groups beside
it. The gate judges the reliable measure, and when counting the excluded groups would change
its verdict (or leave it uncomputable) the verdict is ``insufficient evidence``, not a pass. A
measure with fewer than two reliable groups is None, and the gate treats None as a failure.

Reliable groups' confidence intervals are 95% percentile bootstrap intervals; small groups get
exact Clopper-Pearson intervals, since a bootstrap of a few rows collapses (to [1, 1] when
every row agrees). A resample of the rows changes
only the confusion counts of the intersection cells, and those counts follow a multinomial with
the observed cell proportions; so each replicate is one multinomial draw, vectorised over all
replicates, and every feature's counts are sums of the same replicate's cells. Groups keep
their point-estimate reliability in every replicate.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from governance.fairness import fastpath
from governance.fairness.errors import AuditInputError, FairnessError
from governance.fairness.result import (
    INSUFFICIENT_EVIDENCE,
    INTERSECTION_SEPARATOR,
    Disparity,
    Engine,
    ExcludedGroup,
    FairnessResult,
    FeatureAudit,
    GateFailure,
    GateVerdict,
    GroupMetrics,
    Interval,
    IntervalMethod,
    OverallMetrics,
)
from governance.fairness.thresholds.bounds import DISPARITY_MEASURES, validate_thresholds

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONFIDENCE_LEVEL",
    "FAST_PATH_MIN_ROWS",
    "Disparity",
    "ExcludedGroup",
    "FairnessResult",
    "FeatureAudit",
    "GateFailure",
    "GateVerdict",
    "GroupMetrics",
    "Interval",
    "OverallMetrics",
    "audit_predictions",
    "clopper_pearson",
    "evaluate_thresholds",
]

FAST_PATH_MIN_ROWS: Final[int] = 200_000
CONFIDENCE_LEVEL: Final[float] = 0.95

# Bootstrap replicates are drawn in chunks of at most this many counts, to bound memory when
# the intersection has many cells.
_BOOTSTRAP_CHUNK_CELLS: Final[int] = 4_000_000


@dataclass(frozen=True)
class _GroupTable:
    """Point estimates for one audit, in the engine-independent form the rest works on."""

    name: str
    features: tuple[str, ...]
    labels: list[tuple[str, ...]]
    count: NDArray[np.int64]
    selection_rate: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    true_positive_rate: NDArray[np.float64]
    false_positive_rate: NDArray[np.float64]


@dataclass(frozen=True)
class _CodedData:
    """Sensitive features as integer codes, and the intersection cells' confusion counts."""

    labels: dict[str, tuple[str, ...]]
    codes: dict[str, NDArray[np.int64]]
    cell_table: NDArray[np.int64] | None = None
    cell_counts: NDArray[np.int64] | None = None


def audit_predictions(
    *,
    y_true: Any,
    y_pred: Any,
    sensitive: pd.DataFrame,
    min_group_size: int = 30,
    bootstrap: int = 200,
    seed: int = 0,
    use_fast_path: bool | None = None,
) -> FairnessResult:
    """Audit binary predictions for bias across sensitive features and their intersection.

    Args:
        y_true: 0/1 labels (array-like, one per row).
        y_pred: 0/1 predictions (array-like, one per row).
        sensitive: one column per sensitive feature, one row per prediction; values are
            printed as strings for group labels and must not be missing.
        min_group_size: groups with fewer rows are flagged unreliable, excluded from the
            disparity measures over reliable groups (listed in ``excluded``), and given exact
            Clopper-Pearson intervals.
        bootstrap: number of bootstrap replicates for the reliable groups' 95% intervals; 0
            skips them.
        seed: seeds the bootstrap; the same seed gives the same intervals.
        use_fast_path: force the bincount engine (True) or ``MetricFrame`` (False); None picks
            the fast path from ``FAST_PATH_MIN_ROWS`` rows.

    Returns:
        The audit: one ``FeatureAudit`` per feature, then one for the intersection when there
        are two or more features.

    Raises:
        AuditInputError: lengths differ, labels are not 0/1, there are no rows or no sensitive
            columns, or a sensitive value is missing.
    """
    truth, pred = _check_labels(y_true, y_pred)
    features = _check_sensitive(sensitive, n_rows=truth.shape[0])
    if isinstance(min_group_size, bool) or min_group_size < 1:
        raise AuditInputError("min_group_size must be a positive integer")
    if isinstance(bootstrap, bool) or bootstrap < 0:
        raise AuditInputError("bootstrap must be 0 (off) or a positive number of replicates")
    n_rows = truth.shape[0]
    engine: Engine = (
        "fastpath"
        if (use_fast_path if use_fast_path is not None else n_rows >= FAST_PATH_MIN_ROWS)
        else "metricframe"
    )
    specs: list[tuple[str, tuple[str, ...]]] = [(name, (name,)) for name in features]
    if len(features) > 1:
        specs.append((INTERSECTION_SEPARATOR.join(features), tuple(features)))

    coded = _code_sensitive(sensitive, features, truth, pred)
    if engine == "fastpath":
        overall, tables = _fastpath_tables(coded, features, specs)
    else:
        overall, tables = _metricframe_tables(coded, features, specs, truth, pred)

    reliable = [table.count >= min_group_size for table in tables]
    intervals: list[_Intervals | None] = [None] * len(tables)
    if bootstrap > 0:
        intervals = _bootstrap(coded, features, tables, reliable, bootstrap=bootstrap, seed=seed)
    exact = [_exact_intervals(coded, features, table) for table in tables]
    audits = tuple(
        _assemble(table, mask, ci, small, min_group_size=min_group_size)
        for table, mask, ci, small in zip(tables, reliable, intervals, exact, strict=True)
    )
    return FairnessResult(
        n_rows=n_rows,
        engine=engine,
        min_group_size=min_group_size,
        bootstrap=bootstrap,
        seed=seed,
        confidence_level=CONFIDENCE_LEVEL,
        overall=overall,
        audits=audits,
    )


def evaluate_thresholds(
    result: FairnessResult,
    thresholds: Mapping[str, Mapping[str, float]],
    *,
    features: Sequence[str] | None = None,
) -> GateVerdict:
    """Decide the deployment gate: every listed audit must meet every bound.

    Args:
        result: the audit.
        thresholds: ``{measure: {"min": x, "max": y}}``, as ``thresholds_for`` returns them.
        features: the audits to check, by name (a feature, or the intersection such as
            ``"sex&race"``); None checks every audit in the result, the intersection included.

    Returns:
        The verdict with every failure. A measure that is None or NaN (too few reliable
        groups, or 0/0) fails, as do an empty threshold set and a listed audit that is absent:
        the gate fails closed. A measure that meets its bounds over the reliable groups but
        not over all groups (or cannot be computed over the reliable ones while small groups
        exist) fails as ``insufficient evidence``.

    Raises:
        FairnessPolicyError: the thresholds name an unknown measure or bound.
    """
    clean = validate_thresholds(dict(thresholds))
    failures: list[GateFailure] = []
    if not clean:
        failures.append(
            GateFailure("*", "*", None, None, None, "no fairness thresholds configured")
        )
    names = list(features) if features is not None else [a.name for a in result.audits]
    if not names:
        failures.append(GateFailure("*", "*", None, None, None, "no sensitive feature to check"))
    for name in names:
        try:
            audit = result.audit(name)
        except KeyError:
            failures.append(
                GateFailure(name, "*", None, None, None, "feature was not audited in this result")
            )
            continue
        for measure, bounds in clean.items():
            failures.extend(_check_measure(audit, measure, bounds))
    return GateVerdict(passed=not failures, failures=failures)


def _check_measure(
    audit: FeatureAudit, measure: str, bounds: Mapping[str, float]
) -> list[GateFailure]:
    disparity = audit.disparity(measure)
    value = disparity.value
    everyone = _optional_float(disparity.all_groups_value)
    if value is None or math.isnan(value):
        why = disparity.note or "undefined (0/0: no group has a positive rate)"
        if disparity.value is None and audit.excluded:
            return [
                GateFailure(
                    audit.name,
                    measure,
                    None,
                    None,
                    None,
                    f"insufficient evidence: not computable: {why}; {_excluded_text(audit)}",
                    INSUFFICIENT_EVIDENCE,
                    everyone,
                )
            ]
        return [
            GateFailure(
                audit.name,
                measure,
                None,
                None,
                None,
                f"not computable: {why}",
                all_groups_value=everyone,
            )
        ]
    failures = _bound_failures(audit.name, measure, value, bounds, everyone)
    if failures or not audit.excluded:
        return failures
    # The measure passes over the reliable groups; it stands only if the excluded groups,
    # counted, would not change that.
    if disparity.all_groups_used is None:
        why = "the stored audit predates measures over all groups; re-run it"
    elif everyone is None:
        why = "over all groups it is not computable"
    elif _bound_failures(audit.name, measure, everyone, bounds, everyone):
        why = f"over all {disparity.all_groups_used} groups it is {everyone:.4f}"
    else:
        return []
    return [
        GateFailure(
            audit.name,
            measure,
            value,
            None,
            None,
            f"insufficient evidence: {measure} {value:.4f} meets its bounds over "
            f"{disparity.groups_used} reliable groups, but {why}; {_excluded_text(audit)}",
            INSUFFICIENT_EVIDENCE,
            everyone,
        )
    ]


def _excluded_text(audit: FeatureAudit) -> str:
    shown = ", ".join(
        f"{INTERSECTION_SEPARATOR.join(g.group)} ({g.count} rows)" for g in audit.excluded[:5]
    )
    more = f" and {len(audit.excluded) - 5} more" if len(audit.excluded) > 5 else ""
    return (
        f"groups below min_group_size: {shown}{more}; promotion needs more evaluation data "
        "or a compliance officer's override with a justification"
    )


def _bound_failures(
    feature: str,
    measure: str,
    value: float,
    bounds: Mapping[str, float],
    all_groups_value: float | None,
) -> list[GateFailure]:
    failures = []
    if "min" in bounds and value < bounds["min"]:
        failures.append(
            GateFailure(
                feature,
                measure,
                value,
                "min",
                bounds["min"],
                f"{measure} {value:.4f} is below the minimum {bounds['min']}",
                all_groups_value=all_groups_value,
            )
        )
    if "max" in bounds and value > bounds["max"]:
        failures.append(
            GateFailure(
                feature,
                measure,
                value,
                "max",
                bounds["max"],
                f"{measure} {value:.4f} is above the maximum {bounds['max']}",
                all_groups_value=all_groups_value,
            )
        )
    return failures


def _check_labels(y_true: Any, y_pred: Any) -> tuple[NDArray[np.int8], NDArray[np.int8]]:
    truth = np.asarray(y_true).reshape(-1)
    pred = np.asarray(y_pred).reshape(-1)
    if truth.shape != pred.shape:
        raise AuditInputError(f"y_true has {truth.shape[0]} rows but y_pred has {pred.shape[0]}")
    if truth.shape[0] == 0:
        raise AuditInputError("nothing to audit: no rows")
    for name, values in (("y_true", truth), ("y_pred", pred)):
        if values.dtype.kind not in "biuf" or not np.all((values == 0) | (values == 1)):
            raise AuditInputError(f"{name} must contain only 0 and 1")
    return truth.astype(np.int8), pred.astype(np.int8)


def _check_sensitive(sensitive: Any, *, n_rows: int) -> list[str]:
    # pandas and SciPy load with the first audit, not with the gate that imports this module.
    import pandas as pd

    if not isinstance(sensitive, pd.DataFrame):
        raise AuditInputError("sensitive must be a pandas DataFrame with one column per feature")
    if sensitive.shape[1] == 0:
        raise AuditInputError("sensitive has no columns: name at least one sensitive feature")
    if sensitive.shape[0] != n_rows:
        raise AuditInputError(f"sensitive has {sensitive.shape[0]} rows but y_true has {n_rows}")
    names = [str(c) for c in sensitive.columns]
    if len(set(names)) != len(names):
        raise AuditInputError("sensitive feature names must be unique")
    if len(names) > 1 and INTERSECTION_SEPARATOR.join(names) in names:
        raise AuditInputError(
            f"a feature is named like the intersection {INTERSECTION_SEPARATOR.join(names)!r}"
        )
    return names


def _code_sensitive(
    sensitive: pd.DataFrame,
    features: list[str],
    truth: NDArray[np.int8],
    pred: NDArray[np.int8],
) -> _CodedData:
    labels: dict[str, tuple[str, ...]] = {}
    codes: dict[str, NDArray[np.int64]] = {}
    for position, name in enumerate(features):
        codes[name], labels[name] = fastpath.factorize_labels(
            sensitive.iloc[:, position].to_numpy(), name=name
        )
    cell_codes, cell_table = fastpath.combine_codes(
        [codes[f] for f in features], [len(labels[f]) for f in features]
    )
    cell_counts = fastpath.confusion_counts(
        group_codes=cell_codes, n_groups=cell_table.shape[0], y_true=truth, y_pred=pred
    )
    return _CodedData(labels=labels, codes=codes, cell_table=cell_table, cell_counts=cell_counts)


def _spec_counts(
    counts: NDArray[np.int64],
    coded: _CodedData,
    features: list[str],
    spec_features: tuple[str, ...],
) -> NDArray[np.int64]:
    """One audit's counts from the intersection cells' counts (``(..., cells, 4)``)."""
    assert coded.cell_table is not None
    if len(spec_features) == len(features):
        return counts
    position = features.index(spec_features[0])
    return fastpath.marginalize(
        counts,
        mapping=coded.cell_table[:, position],
        n_targets=len(coded.labels[spec_features[0]]),
    )


def _spec_labels(
    coded: _CodedData, features: list[str], spec_features: tuple[str, ...]
) -> list[tuple[str, ...]]:
    assert coded.cell_table is not None
    if len(spec_features) == len(features):
        columns = [coded.labels[f] for f in features]
        return [
            tuple(columns[i][code] for i, code in enumerate(row))
            for row in coded.cell_table.tolist()
        ]
    return [(label,) for label in coded.labels[spec_features[0]]]


def _fastpath_tables(
    coded: _CodedData, features: list[str], specs: list[tuple[str, tuple[str, ...]]]
) -> tuple[OverallMetrics, list[_GroupTable]]:
    assert coded.cell_counts is not None
    total = fastpath.group_rates(coded.cell_counts.sum(axis=0, keepdims=True))
    overall = OverallMetrics(
        count=int(total.count[0]),
        selection_rate=float(total.selection_rate[0]),
        accuracy=float(total.accuracy[0]),
        true_positive_rate=float(total.true_positive_rate[0]),
        false_positive_rate=float(total.false_positive_rate[0]),
    )
    tables = []
    for name, spec_features in specs:
        rates = fastpath.group_rates(
            _spec_counts(coded.cell_counts, coded, features, spec_features)
        )
        tables.append(
            _GroupTable(
                name=name,
                features=spec_features,
                labels=_spec_labels(coded, features, spec_features),
                count=rates.count,
                selection_rate=rates.selection_rate,
                accuracy=rates.accuracy,
                true_positive_rate=rates.true_positive_rate,
                false_positive_rate=rates.false_positive_rate,
            )
        )
    return overall, tables


def _metricframe_tables(
    coded: _CodedData,
    features: list[str],
    specs: list[tuple[str, tuple[str, ...]]],
    truth: NDArray[np.int8],
    pred: NDArray[np.int8],
) -> tuple[OverallMetrics, list[_GroupTable]]:
    # Imported here so that the fast path never pays for Fairlearn's and sklearn's import.
    import pandas as pd
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    metrics = {
        "count": count,
        "selection_rate": selection_rate,
        "accuracy": accuracy_score,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
    }
    frame = pd.DataFrame(
        {name: np.asarray(coded.labels[name], dtype=object)[coded.codes[name]] for name in features}
    )
    overall: OverallMetrics | None = None
    tables = []
    for name, spec_features in specs:
        mf = MetricFrame(
            metrics=metrics,
            y_true=truth,
            y_pred=pred,
            sensitive_features=frame[list(spec_features)],
        )
        if overall is None:
            whole = mf.overall
            overall = OverallMetrics(
                count=int(whole["count"]),
                selection_rate=float(whole["selection_rate"]),
                accuracy=float(whole["accuracy"]),
                true_positive_rate=float(whole["true_positive_rate"]),
                false_positive_rate=float(whole["false_positive_rate"]),
            )
        # With several features MetricFrame reindexes to the full product; keep observed cells.
        by_group = mf.by_group
        by_group = by_group[by_group["count"].notna()]
        labels = [
            tuple(str(v) for v in (key if isinstance(key, tuple) else (key,)))
            for key in by_group.index
        ]
        tables.append(
            _GroupTable(
                name=name,
                features=spec_features,
                labels=labels,
                count=by_group["count"].to_numpy(dtype=np.int64),
                selection_rate=by_group["selection_rate"].to_numpy(dtype=np.float64),
                accuracy=by_group["accuracy"].to_numpy(dtype=np.float64),
                true_positive_rate=by_group["true_positive_rate"].to_numpy(dtype=np.float64),
                false_positive_rate=by_group["false_positive_rate"].to_numpy(dtype=np.float64),
            )
        )
    assert overall is not None
    return overall, tables


@dataclass(frozen=True)
class _Intervals:
    """Bootstrap intervals for one audit: per group ``(low, high)`` arrays, and per measure."""

    labels: list[tuple[str, ...]]
    selection_rate: NDArray[np.float64]
    true_positive_rate: NDArray[np.float64]
    false_positive_rate: NDArray[np.float64]
    measures: dict[str, NDArray[np.float64]]


def _bootstrap(
    coded: _CodedData,
    features: list[str],
    tables: list[_GroupTable],
    reliable: list[NDArray[np.bool_]],
    *,
    bootstrap: int,
    seed: int,
) -> list[_Intervals | None]:
    assert coded.cell_counts is not None
    specs = [(table.name, table.features) for table in tables]
    labels = [_spec_labels(coded, features, spec_features) for _, spec_features in specs]
    # Replicates are in the counts' group order; take each group's reliability by its label so
    # the mask never depends on the point-estimate engine's row order.
    masks = []
    for table, mask, spec_labels in zip(tables, reliable, labels, strict=True):
        lookup = dict(zip(table.labels, mask.tolist(), strict=True))
        masks.append(np.array([lookup[label] for label in spec_labels], dtype=bool))
    group_samples: list[dict[str, list[NDArray[np.float64]]]] = [
        {"selection_rate": [], "true_positive_rate": [], "false_positive_rate": []} for _ in specs
    ]
    measure_samples: list[dict[str, list[NDArray[np.float64]]]] = [
        {m: [] for m in DISPARITY_MEASURES} for _ in specs
    ]
    for draws in fastpath.resample_counts(
        coded.cell_counts, replicates=bootstrap, seed=seed, chunk_cells=_BOOTSTRAP_CHUNK_CELLS
    ):
        for index, (_, spec_features) in enumerate(specs):
            rates = fastpath.group_rates(_spec_counts(draws, coded, features, spec_features))
            for metric, samples in group_samples[index].items():
                samples.append(getattr(rates, metric))
            mask = masks[index]
            if int(mask.sum()) >= 2:
                values = fastpath.disparities(
                    selection_rate=rates.selection_rate[:, mask],
                    true_positive_rate=rates.true_positive_rate[:, mask],
                    false_positive_rate=rates.false_positive_rate[:, mask],
                )
                for measure, value in values.items():
                    measure_samples[index][measure].append(value)
    results: list[_Intervals | None] = []
    for index in range(len(specs)):
        per_group = {
            metric: _percentile_interval(np.concatenate(samples, axis=0))
            for metric, samples in group_samples[index].items()
        }
        results.append(
            _Intervals(
                labels=labels[index],
                selection_rate=per_group["selection_rate"],
                true_positive_rate=per_group["true_positive_rate"],
                false_positive_rate=per_group["false_positive_rate"],
                measures={
                    measure: _percentile_interval(np.concatenate(samples, axis=0))
                    for measure, samples in measure_samples[index].items()
                    if samples
                },
            )
        )
    return results


def clopper_pearson(
    successes: NDArray[np.int64], trials: NDArray[np.int64], *, level: float = CONFIDENCE_LEVEL
) -> NDArray[np.float64]:
    """Exact (Clopper-Pearson) intervals for binomial proportions.

    Args:
        successes: ``k`` per proportion.
        trials: ``n`` per proportion, the same shape; 0 gives a NaN interval.
        level: the confidence level (two-sided, equal tails).

    Returns:
        ``(2, ...)``: the lower and upper bounds, from the beta quantiles
        ``Beta(k, n - k + 1)`` at ``alpha / 2`` and ``Beta(k + 1, n - k)`` at ``1 - alpha / 2``
        (0 when ``k = 0``, 1 when ``k = n``).
    """
    from scipy.stats import beta

    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    tail = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, beta.ppf(tail, k, n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1.0 - tail, k + 1, n - k), 1.0)
    empty = n <= 0
    return np.stack([np.where(empty, np.nan, low), np.where(empty, np.nan, high)])


@dataclass(frozen=True)
class _ExactIntervals:
    """Clopper-Pearson intervals per group label, as ``(2,)`` arrays per rate."""

    selection_rate: dict[tuple[str, ...], NDArray[np.float64]]
    true_positive_rate: dict[tuple[str, ...], NDArray[np.float64]]
    false_positive_rate: dict[tuple[str, ...], NDArray[np.float64]]


def _exact_intervals(coded: _CodedData, features: list[str], table: _GroupTable) -> _ExactIntervals:
    assert coded.cell_counts is not None
    counts = _spec_counts(coded.cell_counts, coded, features, table.features)
    labels = _spec_labels(coded, features, table.features)
    tn, fp, fn, tp = (counts[:, i] for i in range(fastpath.CELLS))
    rates = {
        "selection_rate": clopper_pearson(tp + fp, tn + fp + fn + tp),
        "true_positive_rate": clopper_pearson(tp, tp + fn),
        "false_positive_rate": clopper_pearson(fp, fp + tn),
    }
    by_label = {
        name: {label: bounds[:, j] for j, label in enumerate(labels)}
        for name, bounds in rates.items()
    }
    return _ExactIntervals(**by_label)


def _percentile_interval(samples: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(2, ...)``: the 2.5th and 97.5th percentiles over replicates (axis 0), NaNs skipped."""
    tail = (1.0 - CONFIDENCE_LEVEL) / 2.0 * 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slice -> NaN bound -> None
        return np.asarray(np.nanpercentile(samples, [tail, 100.0 - tail], axis=0), dtype=np.float64)


def _assemble(
    table: _GroupTable,
    reliable: NDArray[np.bool_],
    intervals: _Intervals | None,
    exact: _ExactIntervals,
    *,
    min_group_size: int,
) -> FeatureAudit:
    position: dict[tuple[str, ...], int] = {}
    if intervals is not None:
        if sorted(intervals.labels) != sorted(table.labels):
            # Both engines group the same coded columns; a mismatch is a bug, never data.
            raise FairnessError("bootstrap groups do not match the audited groups")
        position = {label: i for i, label in enumerate(intervals.labels)}
    groups = []
    excluded = []
    for i, label in enumerate(table.labels):
        ci: dict[str, Interval | None] = {
            "selection_rate_ci": None,
            "true_positive_rate_ci": None,
            "false_positive_rate_ci": None,
        }
        method: IntervalMethod | None = None
        if not reliable[i]:
            method = "clopper-pearson"
            ci = {
                "selection_rate_ci": _interval(exact.selection_rate[label]),
                "true_positive_rate_ci": _interval(exact.true_positive_rate[label]),
                "false_positive_rate_ci": _interval(exact.false_positive_rate[label]),
            }
        elif intervals is not None:
            method = "bootstrap"
            j = position[label]
            ci = {
                "selection_rate_ci": _interval(intervals.selection_rate[:, j]),
                "true_positive_rate_ci": _interval(intervals.true_positive_rate[:, j]),
                "false_positive_rate_ci": _interval(intervals.false_positive_rate[:, j]),
            }
        count = int(table.count[i])
        groups.append(
            GroupMetrics(
                group=label,
                count=count,
                reliable=bool(reliable[i]),
                selection_rate=float(table.selection_rate[i]),
                accuracy=float(table.accuracy[i]),
                true_positive_rate=float(table.true_positive_rate[i]),
                false_positive_rate=float(table.false_positive_rate[i]),
                interval_method=method,
                **ci,
            )
        )
        if not reliable[i]:
            excluded.append(
                ExcludedGroup(
                    group=label,
                    count=count,
                    reason=f"{count} rows, fewer than min_group_size {min_group_size}",
                )
            )
    return FeatureAudit(
        name=table.name,
        features=table.features,
        groups=tuple(groups),
        excluded=tuple(excluded),
        disparities=_point_disparities(table, reliable, intervals),
    )


def _point_disparities(
    table: _GroupTable, reliable: NDArray[np.bool_], intervals: _Intervals | None
) -> tuple[Disparity, ...]:
    every = np.ones_like(reliable)
    everyone = _disparities_over(table, every) if every.size >= 2 else {}
    used = int(reliable.sum())
    if used < 2:
        note = (
            f"{used} reliable group{'s' if used != 1 else ''}; "
            "a disparity needs at least two groups of min_group_size rows"
        )
        return tuple(
            Disparity(m, None, None, used, note, everyone.get(m), int(every.size))
            for m in DISPARITY_MEASURES
        )
    values = _disparities_over(table, reliable)
    result = []
    for measure in DISPARITY_MEASURES:
        ci = None
        if intervals is not None and measure in intervals.measures:
            ci = _interval(intervals.measures[measure])
        result.append(
            Disparity(
                measure,
                values[measure],
                ci,
                used,
                all_groups_value=everyone[measure],
                all_groups_used=int(every.size),
            )
        )
    return tuple(result)


def _disparities_over(table: _GroupTable, mask: NDArray[np.bool_]) -> dict[str, float]:
    values = fastpath.disparities(
        selection_rate=table.selection_rate[mask],
        true_positive_rate=table.true_positive_rate[mask],
        false_positive_rate=table.false_positive_rate[mask],
    )
    return {measure: float(values[measure]) for measure in DISPARITY_MEASURES}


def _interval(bounds: NDArray[np.float64]) -> Interval:
    return Interval(low=_optional_float(bounds[0]), high=_optional_float(bounds[1]))


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number
