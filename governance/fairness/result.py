"""The audit result: a frozen dataclass tree whose ``to_dict()`` is plain JSON, and back.

The database stores ``FairnessResult.to_dict()`` and reports render it, so every float is a
Python float, NaN becomes None, and group labels are strings. ``schema_version`` changes when a
field is renamed or removed; adding one does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from governance.fairness.errors import FairnessError
from governance.fairness.thresholds.bounds import DISPARITY_MEASURES

INTERSECTION_SEPARATOR: Final[str] = "&"
SCHEMA_VERSION: Final[int] = 1

Engine = Literal["metricframe", "fastpath"]
IntervalMethod = Literal["bootstrap", "clopper-pearson"]
# A failing measure either fails its bound over the reliable groups, or passes there but would
# not with the excluded (small) groups counted: then the audit cannot tell, and says so.
Outcome = Literal["pass", "fail", "insufficient evidence"]
FAIL: Final[Outcome] = "fail"
INSUFFICIENT_EVIDENCE: Final[Outcome] = "insufficient evidence"


@dataclass(frozen=True)
class Interval:
    """A confidence interval; a bound is None where every replicate was undefined."""

    low: float | None
    high: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {"low": _json_float(self.low), "high": _json_float(self.high)}


@dataclass(frozen=True)
class GroupMetrics:
    """One group's metrics. ``group`` holds its value for each of the audit's features.

    Reliable groups get bootstrap intervals; a group below ``min_group_size`` gets exact
    Clopper-Pearson intervals, which stay honest at a handful of rows (``interval_method``).
    """

    group: tuple[str, ...]
    count: int
    reliable: bool
    selection_rate: float
    accuracy: float
    true_positive_rate: float
    false_positive_rate: float
    selection_rate_ci: Interval | None = None
    true_positive_rate_ci: Interval | None = None
    false_positive_rate_ci: Interval | None = None
    interval_method: IntervalMethod | None = None

    def to_dict(self, features: Sequence[str]) -> dict[str, Any]:
        return {
            "group": dict(zip(features, self.group, strict=True)),
            "label": INTERSECTION_SEPARATOR.join(self.group),
            "count": self.count,
            "reliable": self.reliable,
            "interval_method": self.interval_method,
            "selection_rate": _json_float(self.selection_rate),
            "accuracy": _json_float(self.accuracy),
            "true_positive_rate": _json_float(self.true_positive_rate),
            "false_positive_rate": _json_float(self.false_positive_rate),
            "selection_rate_ci": _json_interval(self.selection_rate_ci),
            "true_positive_rate_ci": _json_interval(self.true_positive_rate_ci),
            "false_positive_rate_ci": _json_interval(self.false_positive_rate_ci),
        }


@dataclass(frozen=True)
class ExcludedGroup:
    """A group left out of the disparity measures, and why."""

    group: tuple[str, ...]
    count: int
    reason: str

    def to_dict(self, features: Sequence[str]) -> dict[str, Any]:
        return {
            "group": dict(zip(features, self.group, strict=True)),
            "label": INTERSECTION_SEPARATOR.join(self.group),
            "count": self.count,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Disparity:
    """One disparity measure over an audit's reliable groups, beside the same over all groups.

    ``value`` is None when it cannot be computed (fewer than two reliable groups, with the
    reason in ``note``) and NaN where Fairlearn's definition gives NaN (a ratio of 0/0).
    ``all_groups_value`` counts every group, the small ones included (None with fewer than two
    groups); ``all_groups_used`` is None only in audits stored before it was reported.
    """

    measure: str
    value: float | None
    ci: Interval | None
    groups_used: int
    note: str | None = None
    all_groups_value: float | None = None
    all_groups_used: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "value": _json_float(self.value),
            "ci": _json_interval(self.ci),
            "groups_used": self.groups_used,
            "note": self.note,
            "all_groups_value": _json_float(self.all_groups_value),
            "all_groups_used": self.all_groups_used,
        }


@dataclass(frozen=True)
class FeatureAudit:
    """The audit of one sensitive feature, or of the intersection of all of them."""

    name: str
    features: tuple[str, ...]
    groups: tuple[GroupMetrics, ...]
    excluded: tuple[ExcludedGroup, ...]
    disparities: tuple[Disparity, ...]

    @property
    def is_intersection(self) -> bool:
        return len(self.features) > 1

    def disparity(self, measure: str) -> Disparity:
        """Return the named disparity measure.

        Raises:
            KeyError: no such measure.
        """
        for item in self.disparities:
            if item.measure == measure:
                return item
        raise KeyError(measure)

    def group(self, *values: str) -> GroupMetrics:
        """Return the group with these feature values (one per feature, in order).

        Raises:
            KeyError: no such group in the data.
        """
        for item in self.groups:
            if item.group == values:
                return item
        raise KeyError(values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": list(self.features),
            "is_intersection": self.is_intersection,
            "groups": [g.to_dict(self.features) for g in self.groups],
            "excluded": [g.to_dict(self.features) for g in self.excluded],
            "disparities": {d.measure: d.to_dict() for d in self.disparities},
        }


@dataclass(frozen=True)
class OverallMetrics:
    """Metrics over all rows, for context next to the per-group numbers."""

    count: int
    selection_rate: float
    accuracy: float
    true_positive_rate: float
    false_positive_rate: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "selection_rate": _json_float(self.selection_rate),
            "accuracy": _json_float(self.accuracy),
            "true_positive_rate": _json_float(self.true_positive_rate),
            "false_positive_rate": _json_float(self.false_positive_rate),
        }


@dataclass(frozen=True)
class FairnessResult:
    """A complete audit; ``to_dict()`` is what the database stores and reports render."""

    n_rows: int
    engine: Engine
    min_group_size: int
    bootstrap: int
    seed: int
    confidence_level: float
    overall: OverallMetrics
    audits: tuple[FeatureAudit, ...]

    def audit(self, name: str) -> FeatureAudit:
        """Return the audit of one feature, or of the intersection (``"sex&race"``).

        Raises:
            KeyError: no such audit.
        """
        for item in self.audits:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON types (NaN becomes None)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "n_rows": self.n_rows,
            "engine": self.engine,
            "min_group_size": self.min_group_size,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "confidence_level": self.confidence_level,
            "overall": self.overall.to_dict(),
            "audits": [a.to_dict() for a in self.audits],
        }


@dataclass(frozen=True)
class GateFailure:
    """One reason the gate failed; ``outcome`` tells a failed bound from missing evidence."""

    feature: str
    measure: str
    value: float | None
    bound: str | None
    limit: float | None
    reason: str
    outcome: Outcome = FAIL
    all_groups_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "measure": self.measure,
            "value": _json_float(self.value),
            "bound": self.bound,
            "limit": self.limit,
            "reason": self.reason,
            "outcome": self.outcome,
            "all_groups_value": _json_float(self.all_groups_value),
        }


@dataclass(frozen=True)
class GateVerdict:
    """The deployment gate's decision: passed only if there is no failure.

    ``outcome`` is ``fail`` when any bound fails on the evidence, ``insufficient evidence``
    when every failure is a measure whose verdict depends on an excluded group (promotion then
    needs an officer's override or more evaluation data), and ``pass`` otherwise.
    """

    passed: bool
    failures: list[GateFailure] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome:
        if not self.failures:
            return "pass"
        if all(f.outcome == INSUFFICIENT_EVIDENCE for f in self.failures):
            return INSUFFICIENT_EVIDENCE
        return FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "outcome": self.outcome,
            "failures": [f.to_dict() for f in self.failures],
        }


def _json_float(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else number


def _json_interval(value: Interval | None) -> dict[str, float | None] | None:
    return None if value is None else value.to_dict()


# -- a stored result back into a FairnessResult, so the gate can re-judge it ------------------
# When the thresholds change after an audit, the disparities do not (they depend on the
# predictions and the minimum group size only); a changed ``min_group_size`` changes which
# groups count, so then the stored numbers are stale and a new audit is required.


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
