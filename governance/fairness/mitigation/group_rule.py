"""Post-processing mitigation: Fairlearn's ``ThresholdOptimizer``, exported as plain JSON.

``ThresholdOptimizer`` learns, per group, a randomised mix of two score thresholds. Its fitted
state is sklearn objects that only unpickling could bring to the serving core, which must
never unpickle and has no sklearn. So we fit it here on precomputed scores and read its
``interpolated_thresholder_.interpolation_dict`` out into a *post-processing spec*::

    {"kind": "group_threshold", "version": 1, "feature": "sex",
     "constraints": "demographic_parity",
     "groups": {"Male": {"p0": 0.3, "t0": 0.61, "p1": 0.7, "t1": 0.58}, ...},
     "default": {"p0": ..., "t0": ..., "p1": ..., "t1": ...}}

For a row of group ``g`` with score ``s`` (probability of the positive class),
``P(positive) = p0 * [s > t0] + p1 * [s > t1]``, exactly Fairlearn's ``_pmf_predict``, and the
label is ``uniform < P``. Fairlearn's infinite thresholds (always / never positive) become
-1.0 and 1.0, which decide every score in [0, 1] the same way and are valid JSON.

A group unseen at fit time gets ``default``, the rule of the largest fitted group. Fairlearn
itself would predict 0 for every such row, a silent denial for whoever is new.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from governance.fairness.errors import MitigationError
from governance.fairness.metrics import audit_predictions

SPEC_KIND: Final[str] = "group_threshold"
SPEC_VERSION: Final[int] = 1
ALWAYS_THRESHOLD: Final[float] = -1.0
NEVER_THRESHOLD: Final[float] = 1.0
FOUR_FIFTHS: Final[float] = 0.8

Constraint = Literal[
    "demographic_parity",
    "true_positive_rate_parity",
    "false_positive_rate_parity",
    "true_negative_rate_parity",
    "false_negative_rate_parity",
]
_RULE_KEYS: Final[tuple[str, ...]] = ("p0", "t0", "p1", "t1")


class _PrecomputedScores(ClassifierMixin, BaseEstimator):
    """An estimator whose input is the model's score: ``X[:, 0]`` is P(positive).

    ThresholdOptimizer needs an estimator to call; this one hands back the scores of the real
    (torch) model unchanged, so no model is refitted or pickled.
    """

    def fit(self, X: Any, y: Any = None) -> _PrecomputedScores:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        scores = np.asarray(X, dtype=np.float64)[:, 0]
        return np.column_stack([1.0 - scores, scores])

    def predict(self, X: Any) -> NDArray[np.int64]:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(np.int64)


def fit_group_thresholds(
    *,
    scores: Any,
    y_true: Any,
    sensitive: Any,
    feature: str | None = None,
    constraints: Constraint = "demographic_parity",
    grid_size: int = 1000,
) -> dict[str, Any]:
    """Fit ``ThresholdOptimizer`` on precomputed scores and export it as a spec.

    Args:
        scores: the model's P(positive) on the fit split, each in [0, 1].
        y_true: 0/1 labels of the fit split.
        sensitive: the sensitive column (a Series names the feature).
        feature: the feature's name; defaults to the Series' name.
        constraints: the parity to enforce; ``"demographic_parity"`` equalises selection rates.
        grid_size: Fairlearn's grid over the constraint value.

    Returns:
        The JSON-serialisable post-processing spec.

    Raises:
        MitigationError: bad input, a group with only one label (Fairlearn cannot draw its
            curve), or a fitted rule that the spec format cannot express.
    """
    from fairlearn.postprocessing import ThresholdOptimizer

    score_array = _check_scores(scores)
    labels = np.asarray(y_true).reshape(-1)
    if labels.shape != score_array.shape:
        raise MitigationError("scores and y_true must have the same length")
    if not np.all((labels == 0) | (labels == 1)):
        raise MitigationError("y_true must contain only 0 and 1")
    groups = _group_labels(sensitive, n_rows=score_array.shape[0])
    name = feature if feature is not None else getattr(sensitive, "name", None)
    if not name:
        raise MitigationError("name the sensitive feature (feature=...) or pass a named Series")

    per_group = pd.crosstab(groups, labels)
    one_label = sorted(str(g) for g in per_group.index if (per_group.loc[g] == 0).any())
    if per_group.shape[1] < 2 or one_label:
        names = one_label or [str(g) for g in per_group.index]
        raise MitigationError(
            f"groups {names} have only one label in the fit split; ThresholdOptimizer needs "
            "positives and negatives in every group"
        )

    optimizer = ThresholdOptimizer(
        estimator=_PrecomputedScores().fit(None),
        constraints=constraints,
        objective="accuracy_score",
        grid_size=grid_size,
        flip=False,  # the spec has no '<' operator; '>' thresholds only
        prefit=True,
        predict_method="predict_proba",
    )
    try:
        optimizer.fit(score_array[:, None], labels.astype(int), sensitive_features=groups)
    except ValueError as exc:
        # Fairlearn's messages name the group and the problem, never row data.
        raise MitigationError(f"ThresholdOptimizer could not fit: {exc}") from exc

    rules = {
        str(group): _export_rule(bunch)
        for group, bunch in optimizer.interpolated_thresholder_.interpolation_dict.items()
    }
    sizes = pd.Series(groups).value_counts()
    largest = str(sorted(sizes.index[sizes == sizes.max()])[0])
    spec = {
        "kind": SPEC_KIND,
        "version": SPEC_VERSION,
        "feature": str(name),
        "constraints": constraints,
        "groups": dict(sorted(rules.items())),
        "default": dict(rules[largest]),
    }
    validate_spec(spec)
    return spec


def validate_spec(spec: Mapping[str, Any]) -> None:
    """Check a post-processing spec before anyone applies it.

    Args:
        spec: the spec, as loaded from JSON.

    Raises:
        MitigationError: listing every problem found.
    """
    problems: list[str] = []
    if spec.get("kind") != SPEC_KIND:
        problems.append(f"kind must be {SPEC_KIND!r}")
    if spec.get("version", SPEC_VERSION) != SPEC_VERSION:
        problems.append(f"unsupported version {spec.get('version')!r}")
    if not isinstance(spec.get("feature"), str) or not spec.get("feature"):
        problems.append("feature must be a non-empty string")
    groups = spec.get("groups")
    if not isinstance(groups, Mapping) or not groups:
        problems.append("groups must be a non-empty mapping")
        groups = {}
    for group, rule in groups.items():
        problems.extend(_rule_problems(rule, where=f"groups.{group}"))
    problems.extend(_rule_problems(spec.get("default"), where="default"))
    if problems:
        raise MitigationError(
            f"invalid post-processing spec: {'; '.join(problems)}", extra={"problems": problems}
        )


def apply_group_threshold(
    spec: Mapping[str, Any], scores: Any, groups: Any, uniforms: Any
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Apply a spec: each row's probability of a positive label, and the drawn label.

    Args:
        spec: a post-processing spec (validated here).
        scores: P(positive) from the model, each in [0, 1].
        groups: each row's value of ``spec["feature"]``; values not in the spec use ``default``.
        uniforms: one draw from U[0, 1) per row; the caller owns the randomness so that a
            decision can be replayed from the audit log.

    Returns:
        ``(prob_positive, labels)`` with ``labels = uniforms < prob_positive`` as 0/1.

    Raises:
        MitigationError: an invalid spec, or inputs of different lengths or out of range.
    """
    validate_spec(spec)
    score_array = _check_scores(scores)
    draws = np.asarray(uniforms, dtype=np.float64).reshape(-1)
    group_values = np.asarray(groups, dtype=object).reshape(-1)
    if not (score_array.shape == draws.shape == group_values.shape):
        raise MitigationError("scores, groups and uniforms must have the same length")
    if draws.size and (np.nanmin(draws) < 0.0 or not np.nanmax(draws) < 1.0):
        raise MitigationError("uniforms must lie in [0, 1)")
    names = list(spec["groups"])
    rules = [spec["groups"][g] for g in names] + [spec["default"]]
    table = {key: np.array([float(r[key]) for r in rules]) for key in _RULE_KEYS}
    index = pd.Index(names).get_indexer(pd.Index([str(v) for v in group_values]))
    index = np.where(index < 0, len(names), index)
    # Same expression and order as Fairlearn's _pmf_predict, so probabilities match bit for bit.
    prob = table["p0"][index] * (score_array > table["t0"][index]) + table["p1"][index] * (
        score_array > table["t1"][index]
    )
    return prob, (draws < prob).astype(np.int8)


def tradeoff_numbers(
    *,
    y_true: Any,
    y_pred_before: Any,
    y_pred_after: Any,
    sensitive: Any,
    min_group_size: int = 30,
) -> dict[str, Any]:
    """Accuracy and demographic parity before and after mitigation, as plain JSON.

    Args:
        y_true: 0/1 labels of the evaluation split.
        y_pred_before: the unmitigated model's 0/1 predictions.
        y_pred_after: the mitigated 0/1 predictions.
        sensitive: the sensitive column (a Series names it).
        min_group_size: as in the audit: smaller groups do not count towards parity.

    Returns:
        ``{"feature", "before": {...}, "after": {...}, "change": {...}}`` where each side has
        ``accuracy``, ``demographic_parity_ratio``, ``demographic_parity_difference`` and
        ``selection_rates`` per group.
    """
    name = str(getattr(sensitive, "name", None) or "sensitive")
    frame = pd.DataFrame({name: np.asarray(sensitive, dtype=object).reshape(-1)})
    sides: dict[str, dict[str, Any]] = {}
    for side, predictions in (("before", y_pred_before), ("after", y_pred_after)):
        result = audit_predictions(
            y_true=y_true,
            y_pred=predictions,
            sensitive=frame,
            min_group_size=min_group_size,
            bootstrap=0,
            use_fast_path=True,
        )
        audit = result.audit(name)
        sides[side] = {
            "accuracy": result.overall.accuracy,
            "demographic_parity_ratio": _finite(audit.disparity("demographic_parity_ratio").value),
            "demographic_parity_difference": _finite(
                audit.disparity("demographic_parity_difference").value
            ),
            "selection_rates": {g.group[0]: _finite(g.selection_rate) for g in audit.groups},
        }
    change = {
        key: None
        if sides["before"][key] is None or sides["after"][key] is None
        else sides["after"][key] - sides["before"][key]
        for key in ("accuracy", "demographic_parity_ratio", "demographic_parity_difference")
    }
    return {"feature": name, **sides, "change": change}


def tradeoff_plot(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    path: str | Path,
    *,
    ratio_floor: float | None = FOUR_FIFTHS,
) -> Path:
    """Save a PNG of accuracy against demographic-parity ratio, before and after mitigation.

    Args:
        before: ``tradeoff_numbers(...)["before"]``.
        after: ``tradeoff_numbers(...)["after"]``.
        path: where to write the PNG.
        ratio_floor: draw the policy's minimum ratio (the four-fifths rule by default).

    Returns:
        The path written.

    Raises:
        MitigationError: a point has no accuracy or ratio to plot.
    """
    # The object API with an explicit Agg canvas: no pyplot global state, safe in a server.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = []
    for side, numbers in (("before", before), ("after", after)):
        x, y = numbers.get("demographic_parity_ratio"), numbers.get("accuracy")
        if x is None or y is None:
            raise MitigationError(f"'{side}' has no demographic_parity_ratio or accuracy to plot")
        points.append((float(x), float(y)))
    figure = Figure(figsize=(6.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if ratio_floor is not None:
        axes.axvline(ratio_floor, color="grey", linestyle="--", label=f"ratio {ratio_floor}")
    (bx, by), (ax_, ay) = points
    axes.annotate("", xy=(ax_, ay), xytext=(bx, by), arrowprops={"arrowstyle": "->"})
    axes.scatter([bx], [by], color="tab:red", zorder=3, label="before")
    axes.scatter([ax_], [ay], color="tab:green", zorder=3, label="after")
    axes.set_xlim(0.0, 1.05)
    axes.set_xlabel("demographic parity ratio (min/max selection rate)")
    axes.set_ylabel("accuracy")
    axes.set_title("Mitigation trade-off")
    axes.legend(loc="lower left")
    axes.grid(alpha=0.3)
    out = Path(path)
    figure.savefig(out, format="png")
    return out


def _export_rule(bunch: Any) -> dict[str, float]:
    if "p_ignore" in bunch:
        raise MitigationError("the fitted rule ignores scores part of the time; not expressible")
    rule: dict[str, float] = {}
    for index in ("0", "1"):
        operation = bunch[f"operation{index}"]
        if operation.operator != ">":
            raise MitigationError("only '>' threshold operations are expressible in a spec")
        threshold = float(operation.threshold)
        if threshold == -math.inf:
            threshold = ALWAYS_THRESHOLD
        elif threshold == math.inf:
            threshold = NEVER_THRESHOLD
        rule[f"p{index}"] = float(bunch[f"p{index}"])
        rule[f"t{index}"] = threshold
    return {key: rule[key] for key in _RULE_KEYS}


def _rule_problems(rule: Any, *, where: str) -> list[str]:
    if not isinstance(rule, Mapping):
        return [f"{where} must be a mapping with {', '.join(_RULE_KEYS)}"]
    problems = []
    for key in _RULE_KEYS:
        value = rule.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{where}.{key} must be a number")
        elif not math.isfinite(value):
            problems.append(f"{where}.{key} must be finite")
        elif key.startswith("p") and not 0.0 <= value <= 1.0:
            problems.append(f"{where}.{key} must be a probability")
    if not problems and abs(float(rule["p0"]) + float(rule["p1"]) - 1.0) > 1e-9:
        problems.append(f"{where}: p0 + p1 must be 1")
    return problems


def _check_scores(scores: Any) -> NDArray[np.float64]:
    array = np.asarray(scores, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise MitigationError("no scores")
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise MitigationError("scores must be probabilities in [0, 1]")
    return array


def _group_labels(sensitive: Any, *, n_rows: int) -> NDArray[np.object_]:
    values = pd.Series(np.asarray(sensitive, dtype=object).reshape(-1))
    if values.shape[0] != n_rows:
        raise MitigationError("the sensitive column must have one value per score")
    if values.isna().any():
        raise MitigationError("the sensitive column has missing values; label them explicitly")
    return values.astype(str).to_numpy(dtype=object)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
