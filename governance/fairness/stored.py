"""A stored audit back into a :class:`FairnessResult`, so the gate can re-judge it.

When the thresholds change after an audit, the disparities do not (they depend on the
predictions and the minimum group size only), so the gate re-evaluates the stored result under
the new bounds instead of asking for a new audit. A changed ``min_group_size`` changes which
groups count, so then the stored numbers are stale and a new audit is required.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from governance.fairness.errors import FairnessError
from governance.fairness.result import (
    SCHEMA_VERSION,
    Disparity,
    ExcludedGroup,
    FairnessResult,
    FeatureAudit,
    GroupMetrics,
    Interval,
    OverallMetrics,
)
from governance.fairness.thresholds import DISPARITY_MEASURES


def result_from_dict(doc: Mapping[str, Any]) -> FairnessResult:
    """Rebuild a result from ``FairnessResult.to_dict()``.

    Args:
        doc: the stored document.

    Returns:
        The result; a metric stored as None (it was NaN) comes back as NaN.

    Raises:
        FairnessError: the document has another schema version or is malformed.
    """
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise FairnessError(f"stored audit has schema version {doc.get('schema_version')!r}")
    try:
        audits = tuple(_feature_audit(a) for a in doc["audits"])
        overall = doc["overall"]
        return FairnessResult(
            n_rows=int(doc["n_rows"]),
            engine=doc["engine"],
            min_group_size=int(doc["min_group_size"]),
            bootstrap=int(doc["bootstrap"]),
            seed=int(doc["seed"]),
            confidence_level=float(doc["confidence_level"]),
            overall=OverallMetrics(
                count=int(overall["count"]),
                selection_rate=_float(overall["selection_rate"]),
                accuracy=_float(overall["accuracy"]),
                true_positive_rate=_float(overall["true_positive_rate"]),
                false_positive_rate=_float(overall["false_positive_rate"]),
            ),
            audits=audits,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FairnessError(f"stored audit is malformed ({type(exc).__name__})") from None


def _feature_audit(doc: Mapping[str, Any]) -> FeatureAudit:
    features = tuple(str(f) for f in doc["features"])

    def label(group: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(str(group[f]) for f in features)

    groups = tuple(
        GroupMetrics(
            group=label(g["group"]),
            count=int(g["count"]),
            reliable=bool(g["reliable"]),
            selection_rate=_float(g["selection_rate"]),
            accuracy=_float(g["accuracy"]),
            true_positive_rate=_float(g["true_positive_rate"]),
            false_positive_rate=_float(g["false_positive_rate"]),
            selection_rate_ci=_interval(g.get("selection_rate_ci")),
            true_positive_rate_ci=_interval(g.get("true_positive_rate_ci")),
            false_positive_rate_ci=_interval(g.get("false_positive_rate_ci")),
            interval_method=g.get("interval_method"),
        )
        for g in doc["groups"]
    )
    excluded = tuple(
        ExcludedGroup(group=label(g["group"]), count=int(g["count"]), reason=str(g["reason"]))
        for g in doc["excluded"]
    )
    stored = doc["disparities"]
    disparities = []
    for measure in DISPARITY_MEASURES:
        item = stored[measure]
        value = item["value"]
        # None with a note: not computable; None without one: it was NaN (a 0/0 ratio).
        restored = None if value is None and item.get("note") else _float(value)
        # Audits stored before all-group measures were reported lack them: the gate then asks
        # for a new audit wherever a group was excluded.
        all_used = item.get("all_groups_used")
        all_value = item.get("all_groups_value")
        disparities.append(
            Disparity(
                measure=measure,
                value=restored,
                ci=_interval(item.get("ci")),
                groups_used=int(item["groups_used"]),
                note=item.get("note"),
                all_groups_value=None if all_used is None or all_used < 2 else _float(all_value),
                all_groups_used=None if all_used is None else int(all_used),
            )
        )
    return FeatureAudit(
        name=str(doc["name"]),
        features=features,
        groups=groups,
        excluded=excluded,
        disparities=tuple(disparities),
    )


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _interval(doc: Mapping[str, Any] | None) -> Interval | None:
    if doc is None:
        return None
    low, high = doc.get("low"), doc.get("high")
    return Interval(
        low=None if low is None else float(low), high=None if high is None else float(high)
    )
