"""Group-threshold post-processing, the serving form of Fairlearn's ThresholdOptimizer.

A fitted ThresholdOptimizer holds, per group of one sensitive feature, an interpolation of two
threshold operations. For a row of group ``g`` with score ``s`` (probability of the positive
label)::

    q = p0 * [s op0 t0] + p1 * [s op1 t1]            op is ">" (default) or "<"
    P(positive) = p_ignore * prediction_constant + (1 - p_ignore) * q

(``p_ignore`` defaults to 0: Fairlearn only sets it for equalized odds.) The label is positive
when a uniform draw ``u`` is below that probability. Serving draws ``u`` with
:func:`keyed_uniform`: an HMAC under a server-side key of the data subject's stable identity, so
a client can neither compute its draw nor get a new one by nudging the record, and an auditor
who is given the draw replays the decision. Offline evaluation, where no client is involved,
uses :func:`row_uniforms` (a hash of the encoded row). No sklearn object is ever unpickled: the
spec is plain JSON in the manifest, built from a fitted optimizer by :func:`group_threshold_spec`.

Spec::

    {"kind": "group_threshold", "feature": "sex", "positive_label": 1,
     "groups": {"Male": {"p0": 0.3, "t0": 0.41, "p1": 0.7, "t1": 0.52}, ...},
     "default": {"p0": 1.0, "t0": 0.5, "p1": 0.0, "t1": 0.5}}

A rule may also carry ``"op0"``/``"op1"`` (``">"`` or ``"<"``) and ``"p_ignore"`` with
``"prediction_constant"``. ``default`` applies to a group the optimizer never saw. A spec may
also carry ``"version": 1`` and ``"constraints"`` (the parity it was fitted for), as
:mod:`governance.fairness.mitigation.group_rule` writes them; serving ignores ``constraints``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from inference.errors import ManifestError

_RULE_KEYS = ("p0", "t0", "p1", "t1")
_OPTIONAL_KEYS = ("op0", "op1", "p_ignore", "prediction_constant")
_OPERATORS = (">", "<")
# Scores are probabilities in [0, 1], so a threshold of +/-2 behaves exactly like +/-inf (which
# Fairlearn uses and strict JSON cannot carry).
_THRESHOLD_BOUND = 2.0
_TIE_BREAK_DOMAIN = b"warden.tie-break/1\x00"
MIN_TIE_BREAK_KEY_BYTES = 32


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{where}: expected a finite number")
    try:
        number = float(value)
    except OverflowError:
        raise ManifestError(f"{where}: expected a finite number") from None
    if not math.isfinite(number):
        raise ManifestError(f"{where}: expected a finite number")
    return number


def _validate_rule(rule: Any, where: str) -> None:
    if not isinstance(rule, dict) or not set(_RULE_KEYS) <= set(rule):
        raise ManifestError(f"{where}: expected keys {_RULE_KEYS}")
    if set(rule) - set(_RULE_KEYS) - set(_OPTIONAL_KEYS):
        raise ManifestError(f"{where}: unknown keys (allowed: {_RULE_KEYS + _OPTIONAL_KEYS})")
    values = {key: _number(rule[key], f"{where}.{key}") for key in _RULE_KEYS}
    if not (0 <= values["p0"] <= 1 and 0 <= values["p1"] <= 1):
        raise ManifestError(f"{where}: p0 and p1 must be probabilities")
    if values["p0"] + values["p1"] > 1 + 1e-9:
        raise ManifestError(f"{where}: p0 + p1 must be at most 1")
    for key in ("op0", "op1"):
        if rule.get(key, ">") not in _OPERATORS:
            raise ManifestError(f"{where}.{key}: expected '>' or '<'")
    if ("p_ignore" in rule) != ("prediction_constant" in rule):
        raise ManifestError(f"{where}: p_ignore and prediction_constant go together")
    if "p_ignore" in rule:
        for key in ("p_ignore", "prediction_constant"):
            if not 0 <= _number(rule[key], f"{where}.{key}") <= 1:
                raise ManifestError(f"{where}.{key}: expected a probability")


def validate_spec(spec: Any, features: Sequence[Any]) -> None:
    """Check a post-processing spec against the model's features.

    Args:
        spec: the manifest's ``postprocessing`` value.
        features: the manifest's parsed features (objects with ``name``, ``type``,
            ``categories``).

    Raises:
        ManifestError: when the spec is malformed, names an unknown or numeric feature, or a
            group that is not one of that feature's categories.
    """
    if not isinstance(spec, dict) or spec.get("kind") != "group_threshold":
        raise ManifestError("postprocessing: only kind 'group_threshold' is supported")
    # "version" and "constraints" are written by governance.fairness.mitigation.group_rule: the spec
    # format's version and the parity it was fitted for (provenance; serving ignores it).
    allowed = {"kind", "version", "constraints", "feature", "positive_label", "groups", "default"}
    if set(spec) - allowed:
        raise ManifestError(f"postprocessing: unknown keys (allowed: {sorted(allowed)})")
    if spec.get("version", 1) != 1 or isinstance(spec.get("version"), bool):
        raise ManifestError("postprocessing.version: only version 1 is supported")
    if "constraints" in spec and not isinstance(spec["constraints"], str):
        raise ManifestError("postprocessing.constraints: expected a string")
    names = {f.name: f for f in features}
    feature = spec.get("feature")
    if not isinstance(feature, str) or feature not in names or names[feature].type != "categorical":
        raise ManifestError("postprocessing.feature must name a categorical input feature")
    groups = spec.get("groups")
    if not isinstance(groups, dict) or not groups:
        raise ManifestError("postprocessing.groups: expected a non-empty object")
    categories = set(names[feature].categories)
    for group, rule in groups.items():
        if group not in categories:
            raise ManifestError(f"postprocessing.groups: a group is not a category of {feature!r}")
        _validate_rule(rule, f"postprocessing.groups.{group}")
    _validate_rule(spec.get("default"), "postprocessing.default")
    positive = spec.get("positive_label", 1)
    if isinstance(positive, bool) or positive not in (0, 1) or not isinstance(positive, int):
        raise ManifestError("postprocessing.positive_label must be the integer 0 or 1")


def keyed_uniform(key: bytes, identity: bytes) -> float:
    """The serving tie-break: one draw in [0, 1) per (key, subject identity).

    Args:
        key: the server's tie-break key, at least 32 bytes; never sent to clients.
        identity: the data subject's stable identity (and whatever else scopes the draw).

    Returns:
        The first 64 bits of HMAC-SHA256(key, domain ‖ identity) over 2**64.

    Raises:
        ValueError: ``key`` is shorter than 32 bytes.
    """
    if len(key) < MIN_TIE_BREAK_KEY_BYTES:
        raise ValueError(f"the tie-break key needs at least {MIN_TIE_BREAK_KEY_BYTES} bytes")
    # hmac.new, not hmac.digest: the one-shot call releases the GIL even for a short message.
    mac = hmac.new(key, _TIE_BREAK_DOMAIN + identity, hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") / 2**64


def row_uniforms(encoded: torch.Tensor) -> torch.Tensor:
    """A uniform draw in [0, 1) per row, a pure function of the row's encoded values.

    For offline evaluation only: anyone who knows the encoding computes it, so serving uses
    :func:`keyed_uniform`.

    Args:
        encoded: the encoded batch ``[n, input_dim]``.

    Returns:
        A float64 tensor ``[n]``: the first 64 bits of sha256 over the row's float32 bytes.
    """
    rows = encoded.detach().to("cpu", torch.float32).contiguous().numpy()
    out = []
    for row in rows:
        digest = hashlib.sha256(row.tobytes()).digest()
        out.append(int.from_bytes(digest[:8], "big") / 2**64)
    return torch.tensor(out, dtype=torch.float64)


def _compare(scores: torch.Tensor, ops: Sequence[str], thresholds: torch.Tensor) -> torch.Tensor:
    greater = torch.tensor([op == ">" for op in ops], dtype=torch.bool)
    return torch.where(greater, scores > thresholds, scores < thresholds).double()


def apply_group_threshold(
    spec: dict[str, Any], scores: torch.Tensor, groups: Sequence[str], uniforms: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a group-threshold spec.

    Args:
        spec: a validated spec.
        scores: probability of the positive label, shape ``[n]``.
        groups: the raw value of ``spec["feature"]`` for each row.
        uniforms: one draw in [0, 1) per row.

    Returns:
        ``(prob_positive, label_is_positive)``, both of shape ``[n]``.
    """
    s = scores.detach().to("cpu", torch.float64)
    rules = [spec["groups"].get(g, spec["default"]) for g in groups]

    def column(key: str, default: float = 0.0) -> torch.Tensor:
        return torch.tensor([float(r.get(key, default)) for r in rules], dtype=torch.float64)

    mixed = column("p0") * _compare(s, [r.get("op0", ">") for r in rules], column("t0"))
    mixed = mixed + column("p1") * _compare(s, [r.get("op1", ">") for r in rules], column("t1"))
    p_ignore = column("p_ignore")
    prob = p_ignore * column("prediction_constant") + (1.0 - p_ignore) * mixed
    return prob, uniforms.to(torch.float64) < prob


def _clamp_threshold(value: float) -> float:
    return max(-_THRESHOLD_BOUND, min(_THRESHOLD_BOUND, float(value)))


def group_threshold_spec(
    *,
    feature: str,
    interpolation: Mapping[Any, Any],
    positive_label: int = 1,
    default: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the manifest spec from a fitted ThresholdOptimizer, without importing Fairlearn.

    Args:
        feature: the sensitive feature's name in the input schema.
        interpolation: ``optimizer.interpolation_dict``: group → object with ``p0``,
            ``operation0`` (``.operator``, ``.threshold``), ``p1``, ``operation1`` and, for
            equalized odds, ``p_ignore`` and ``prediction_constant`` (attribute or key access).
        positive_label: index of the positive label in the manifest's labels.
        default: the rule for a group the optimizer never saw; Fairlearn predicts negative for
            those, and so does the default here.

    Returns:
        A JSON-ready spec for the manifest's ``postprocessing`` field. Infinite thresholds are
        clamped to +/-2, which is equivalent for scores in [0, 1].
    """

    def get(obj: Any, key: str) -> Any:
        return obj[key] if isinstance(obj, Mapping) else getattr(obj, key)

    def has(obj: Any, key: str) -> bool:
        return key in obj if isinstance(obj, Mapping) else hasattr(obj, key)

    groups: dict[str, Any] = {}
    for group, item in interpolation.items():
        op0, op1 = get(item, "operation0"), get(item, "operation1")
        rule: dict[str, Any] = {
            "p0": float(get(item, "p0")),
            "op0": str(op0.operator),
            "t0": _clamp_threshold(op0.threshold),
            "p1": float(get(item, "p1")),
            "op1": str(op1.operator),
            "t1": _clamp_threshold(op1.threshold),
        }
        if has(item, "p_ignore"):
            rule["p_ignore"] = float(get(item, "p_ignore"))
            rule["prediction_constant"] = float(get(item, "prediction_constant"))
        groups[str(group)] = rule
    return {
        "kind": "group_threshold",
        "version": 1,
        "feature": feature,
        "positive_label": positive_label,
        "groups": groups,
        "default": dict(default) if default else {"p0": 0.0, "t0": 0.5, "p1": 0.0, "t1": 0.5},
    }
