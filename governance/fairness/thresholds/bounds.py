"""The fairness policy: which disparity bounds a model must meet, from ``policies/fairness.yaml``.

The shape, with the four-fifths rule as the default::

    min_group_size: 30
    defaults:
      demographic_parity_ratio: {min: 0.8}
      equalized_odds_difference: {max: 0.1}
    models:
      credit-scorer:
        min_group_size: 50
        equalized_odds_difference: {max: 0.05}

A model's entry overrides a measure's bounds as a whole (``{max: 0.05}`` replaces ``{max: 0.1}``)
and may add measures. It cannot remove a default measure: a gate is only ever made stricter or
re-tuned per model, never silently switched off. Validation collects every problem and raises
once, so a compliance officer sees the full list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from governance.fairness.errors import FairnessPolicyError

DISPARITY_MEASURES: Final[tuple[str, ...]] = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
)
BOUND_KINDS: Final[tuple[str, ...]] = ("min", "max")
DEFAULT_MIN_GROUP_SIZE: Final[int] = 30

# {measure: {"min": x} | {"max": y} | {"min": x, "max": y}}, as evaluate_thresholds takes it.
Thresholds = dict[str, dict[str, float]]


@dataclass(frozen=True)
class ModelThresholds:
    """The effective gate for one model.

    Attributes:
        model_name: the model these apply to.
        measures: bounds per disparity measure, as ``evaluate_thresholds`` takes them.
        min_group_size: groups smaller than this are flagged and left out of the measures.
    """

    model_name: str
    measures: Thresholds
    min_group_size: int
    required_features: tuple[str, ...] = ()

    def features_to_check(self, audited: Sequence[str]) -> list[str]:
        """The audits the gate judges: every one that ran, plus every required feature (a
        required feature that was not audited then fails, instead of being skipped)."""
        names = list(audited)
        return names + [f for f in self.required_features if f not in names]


@dataclass(frozen=True)
class FairnessPolicy:
    """A validated fairness policy: defaults plus per-model overrides."""

    defaults: Thresholds
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    required_features: tuple[str, ...] = ()

    def thresholds_for(self, model_name: str) -> ModelThresholds:
        """Return the defaults merged with ``model_name``'s overrides (if it has any).

        Args:
            model_name: the registered model's name.

        Returns:
            The effective thresholds and minimum group size for that model.
        """
        override = self.models.get(model_name, {})
        measures = {name: dict(bounds) for name, bounds in self.defaults.items()}
        for name, bounds in override.get("measures", {}).items():
            measures[name] = dict(bounds)
        return ModelThresholds(
            model_name=model_name,
            measures=measures,
            min_group_size=int(override.get("min_group_size", self.min_group_size)),
            required_features=tuple(override.get("required_features", self.required_features)),
        )


def validate_thresholds(data: Any, *, where: str = "thresholds") -> Thresholds:
    """Check a ``{measure: {min|max: number}}`` mapping and return a normalised copy.

    Args:
        data: the mapping to check.
        where: a prefix for problem messages (``"defaults"``, ``"models.x"``).

    Returns:
        The same thresholds with float bounds.

    Raises:
        FairnessPolicyError: listing every problem found.
    """
    problems: list[str] = []
    result = _collect_thresholds(data, where=where, problems=problems)
    _raise_if(problems)
    return result


def parse_policy(data: Any) -> FairnessPolicy:
    """Validate ``policies/fairness.yaml``-shaped data.

    Args:
        data: the parsed YAML document.

    Returns:
        The validated policy.

    Raises:
        FairnessPolicyError: listing every problem found.
    """
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise FairnessPolicyError(
            "fairness policy must be a mapping with 'defaults'",
            extra={"problems": ["document is not a mapping"]},
        )
    known = ("defaults", "min_group_size", "models", "required_features")
    unknown = sorted(str(k) for k in data if k not in known)
    problems.extend(f"unknown top-level key {k!r}" for k in unknown)
    if "defaults" not in data:
        problems.append("'defaults' is required (a policy with no measures would pass any model)")
    defaults = _collect_thresholds(data.get("defaults", {}), where="defaults", problems=problems)
    if "defaults" in data and not defaults and isinstance(data.get("defaults"), Mapping):
        problems.append("'defaults' names no measure (a policy with no measures passes any model)")
    min_group_size = _collect_group_size(
        data.get("min_group_size", DEFAULT_MIN_GROUP_SIZE),
        where="min_group_size",
        problems=problems,
    )
    models: dict[str, dict[str, Any]] = {}
    raw_models = data.get("models") or {}
    if not isinstance(raw_models, Mapping):
        problems.append("'models' must be a mapping of model name to overrides")
        raw_models = {}
    for name, override in raw_models.items():
        where = f"models.{name}"
        if not isinstance(override, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        entry: dict[str, Any] = {}
        if "min_group_size" in override:
            entry["min_group_size"] = _collect_group_size(
                override["min_group_size"], where=f"{where}.min_group_size", problems=problems
            )
        if "required_features" in override:
            entry["required_features"] = _collect_features(
                override["required_features"],
                where=f"{where}.required_features",
                problems=problems,
            )
        measures = {
            k: v for k, v in override.items() if k not in ("min_group_size", "required_features")
        }
        entry["measures"] = _collect_thresholds(measures, where=where, problems=problems)
        models[str(name)] = entry
    required = _collect_features(
        data.get("required_features", []), where="required_features", problems=problems
    )
    _raise_if(problems)
    return FairnessPolicy(
        defaults=defaults,
        min_group_size=min_group_size,
        models=models,
        required_features=required,
    )


def _collect_features(value: Any, *, where: str, problems: list[str]) -> tuple[str, ...]:
    """A list of sensitive feature names that every gating audit must cover."""
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        problems.append(f"{where}: must be a list of sensitive feature names")
        return ()
    return tuple(value)


def load_policy(path: str | Path) -> FairnessPolicy:
    """Read and validate a fairness policy YAML file.

    Args:
        path: the YAML file (usually ``policies/fairness.yaml``).

    Returns:
        The validated policy.

    Raises:
        FairnessPolicyError: the file is missing, is not YAML, or does not validate. A missing
            policy is an error, never an empty gate (fail closed).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FairnessPolicyError(f"cannot read fairness policy {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FairnessPolicyError(f"fairness policy {path} is not valid YAML") from exc
    return parse_policy(data)


def _collect_thresholds(data: Any, *, where: str, problems: list[str]) -> Thresholds:
    if not isinstance(data, Mapping):
        problems.append(f"{where}: must be a mapping of measure to bounds")
        return {}
    result: Thresholds = {}
    for measure, bounds in data.items():
        at = f"{where}.{measure}"
        if measure not in DISPARITY_MEASURES:
            problems.append(f"{at}: unknown measure (known: {', '.join(DISPARITY_MEASURES)})")
            continue
        if not isinstance(bounds, Mapping) or not bounds:
            problems.append(f"{at}: must be a mapping with 'min' and/or 'max'")
            continue
        clean: dict[str, float] = {}
        for kind, value in bounds.items():
            if kind not in BOUND_KINDS:
                problems.append(f"{at}: unknown bound {kind!r} (use 'min' or 'max')")
                continue
            # bool is an int subclass; `max: true` is a typo, not a bound.
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{at}.{kind}: must be a number")
                continue
            number = float(value)
            # Every supported measure lies in [0, 1]; a bound outside it is always a mistake.
            if not math.isfinite(number) or not 0.0 <= number <= 1.0:
                problems.append(f"{at}.{kind}: must be between 0 and 1")
                continue
            clean[kind] = number
        if "min" in clean and "max" in clean and clean["min"] > clean["max"]:
            problems.append(f"{at}: min is greater than max")
        if clean:
            result[str(measure)] = clean
    return result


def _collect_group_size(value: Any, *, where: str, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{where}: must be a positive integer")
        return DEFAULT_MIN_GROUP_SIZE
    return value


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise FairnessPolicyError(
            f"invalid fairness policy: {'; '.join(problems)}", extra={"problems": problems}
        )
