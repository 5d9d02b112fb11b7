"""The schema an importer writes for an ONNX model: how records become the graph's input.

It maps the graph's one input to named tabular features, which Warden validates and encodes
exactly as for its own models (numeric values as they are, or standardised; categories one-hot
in the order listed), names the output and what it holds, and declares the model card's
provenance::

    input:
      name: X                       # the graph's input, float32 [batch, encoded width]
      features:
        - {name: age, type: numeric, lo: 17, hi: 90, preprocessing: none}
        - {name: hours, type: numeric, preprocessing: {mean: 40, std: 12, transform: log1p}}
        - {name: sex, type: categorical, categories: [Female, Male]}   # one-hot, in this order
      unknown_category: error       # or zeros
    output:
      name: probabilities           # the graph's output
      kind: probabilities           # or logits (Warden applies softmax), or score (P(labels[1]))
      labels: ["<=50K", ">50K"]
    card:                           # provenance the importer declares; all five are required
      trained_by: credit-risk team  #   before the model may be promoted
      training_data: adult
      code_version: git 4f2a9c1
      intended_use: credit pre-screening
      out_of_scope_uses: automated final decisions

A model that is not tabular (images, sequences) takes a tensor instead, which Warden checks for
shape and dtype and passes to the graph as it is (no preprocessing)::

    input:
      name: pixels
      kind: tensor                  # the default is kind: features, as above
      dtype: float32                # float32, float64, int32, int64 or uint8
      shape: [null, 1, 28, 28]      # the batch first and dynamic (null), every other size fixed

Such a model is called with ``{"inputs": [...]}``, one nested list per example. It has no named
features, so no bias audit can run on it: docs/models.md says how it may pass the fairness gate.

Every problem is collected and reported at once (:class:`ImportSchemaError`, a 422).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import yaml

from governance.registry.errors import InvalidArtifact
from inference.manifest import MAX_TENSOR_RANK, TENSOR_DTYPES

MAX_SCHEMA_BYTES = 256 * 1024
# The card's file and format, as Warden writes them for its own models (privacy/model_card.py).
MODEL_CARD_FILE = "model_card.json"
CARD_FORMAT = "warden.model_card/1"
CARD_FIELDS = ("trained_by", "training_data", "code_version", "intended_use", "out_of_scope_uses")
_FEATURE_KEYS = {"name", "type", "categories", "lo", "hi", "out_of_bounds", "preprocessing"}
_FEATURES_INPUT_KEYS = {"name", "kind", "features", "unknown_category"}
_TENSOR_INPUT_KEYS = {"name", "kind", "dtype", "shape"}


class ImportSchemaError(InvalidArtifact):
    type_slug = "invalid-import-schema"
    title = "Invalid import schema"


@dataclass
class ImportSchema:
    """The manifest sections the schema describes, and the declared provenance."""

    input_name: str
    output_name: str
    output_kind: str
    features: list[dict[str, Any]]
    numeric: dict[str, dict[str, Any]]
    unknown_category: str
    labels: list[str]
    card: dict[str, str] = field(default_factory=dict)
    # A tensor input's {"dtype", "shape": [None, ...]}; None for tabular features.
    tensor: dict[str, Any] | None = None

    @property
    def width(self) -> int:
        if self.tensor is not None:
            return math.prod(self.tensor["shape"][1:])
        return sum(len(f["categories"]) if f["type"] == "categorical" else 1 for f in self.features)

    def manifest_doc(self, name: str, version: str) -> dict[str, Any]:
        """A ``warden.model/1`` document (weights and files are filled in when saved)."""
        return {
            "format": "warden.model/1",
            "name": name,
            "version": version,
            "architecture": {
                "kind": "onnx",
                "input_dim": self.width,
                "output_dim": len(self.labels),
                "hidden": [],
                "dropout": 0.0,
                "input": self.input_name,
                "output": self.output_name,
                "output_kind": self.output_kind,
            },
            "input_schema": {
                "features": self.features,
                **({"tensor": self.tensor} if self.tensor is not None else {}),
            },
            "preprocessing": {"numeric": self.numeric, "unknown_category": self.unknown_category},
            "labels": self.labels,
            "weights": {"file": "model.onnx", "sha256": "0" * 64},
            "files": {},
            "postprocessing": None,
            "training": {
                "imported": True,
                "private": False,
                "trained_by": self.card.get("trained_by"),
            },
        }


def _text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 256 and value.isprintable()


def _number(value: Any) -> TypeGuard[int | float]:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _feature(
    doc: Any, index: int, problems: list[str]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    where = f"input.features[{index}]"
    if not isinstance(doc, dict):
        problems.append(f"{where}: expected a mapping")
        return None
    for key in sorted(set(map(str, doc)) - _FEATURE_KEYS):
        problems.append(f"{where}.{key[:64]}: unknown key")
    name, ftype = doc.get("name"), doc.get("type")
    if not _text(name):
        problems.append(f"{where}.name: a printable name is required")
        return None
    if ftype == "categorical":
        cats = doc.get("categories")
        if (
            not isinstance(cats, list)
            or not cats
            or not all(_text(c) for c in cats)
            or len(set(cats)) != len(cats)
        ):
            problems.append(f"{where}.categories: a list of distinct names is required")
            return None
        if doc.get("preprocessing", "one_hot") != "one_hot":
            problems.append(f"{where}.preprocessing: a categorical feature is one_hot encoded")
        return {"name": name, "type": "categorical", "categories": list(cats)}, {}
    if ftype != "numeric":
        problems.append(f"{where}.type: numeric or categorical")
        return None
    entry: dict[str, Any] = {"name": name, "type": "numeric"}
    if "lo" in doc or "hi" in doc:
        lo, hi = doc.get("lo"), doc.get("hi")
        if not (_number(lo) and _number(hi) and lo < hi):
            problems.append(f"{where}: bounds need finite lo < hi")
        else:
            entry.update(lo=lo, hi=hi, out_of_bounds=doc.get("out_of_bounds", "refuse"))
            if entry["out_of_bounds"] not in ("refuse", "clip"):
                problems.append(f"{where}.out_of_bounds: refuse or clip")
    pre = doc.get("preprocessing", "none")
    stats: dict[str, Any] = {"mean": 0.0, "std": 1.0, "transform": "identity"}
    if pre == "none":
        pass  # the graph takes the raw value (it does its own scaling, or needs none)
    elif isinstance(pre, dict) and set(pre) <= {"mean", "std", "transform"}:
        mean, std = pre.get("mean", 0.0), pre.get("std", 1.0)
        if not (_number(mean) and _number(std) and std > 0):
            problems.append(f"{where}.preprocessing: finite mean and positive std")
        transform = pre.get("transform", "identity")
        if transform not in ("identity", "log1p"):
            problems.append(f"{where}.preprocessing.transform: identity or log1p")
        stats = {"mean": mean, "std": std, "transform": transform}
    else:
        problems.append(f"{where}.preprocessing: none, or {{mean, std, transform}}")
    return entry, stats


def parse_import_schema(data: bytes) -> ImportSchema:
    """Parse and check an import schema (YAML or JSON).

    Raises:
        ImportSchemaError: naming every problem.
    """
    if len(data) > MAX_SCHEMA_BYTES:
        raise ImportSchemaError(f"the schema is larger than {MAX_SCHEMA_BYTES} bytes")
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError):
        raise ImportSchemaError("the schema is not readable UTF-8 YAML") from None
    if not isinstance(doc, dict):
        raise ImportSchemaError("the schema must be a mapping with input, output and card")
    problems: list[str] = []
    for key in sorted(set(map(str, doc)) - {"input", "output", "card"}):
        problems.append(f"{key[:64]}: unknown key")
    inp = doc.get("input")
    out = doc.get("output")
    card = doc.get("card") or {}
    if not isinstance(inp, dict) or not isinstance(out, dict):
        raise ImportSchemaError("the schema needs an input and an output mapping")
    input_name = inp.get("name")
    if not _text(input_name):
        problems.append("input.name: the graph input's name is required")
    input_kind = inp.get("kind", "features")
    tensor: dict[str, Any] | None = None
    features: list[dict[str, Any]] = []
    numeric: dict[str, dict[str, Any]] = {}
    raw: Any = []
    if input_kind == "tensor":
        for key in sorted(set(map(str, inp)) - _TENSOR_INPUT_KEYS):
            problems.append(f"input.{key[:64]}: unknown key for a tensor input")
        tensor = _tensor(inp, problems)
    elif input_kind == "features":
        for key in sorted(set(map(str, inp)) - _FEATURES_INPUT_KEYS):
            problems.append(f"input.{key[:64]}: unknown key")
        raw = inp.get("features")
        if not isinstance(raw, list) or not raw:
            problems.append("input.features: a list of at least one feature is required")
            raw = []
    else:
        problems.append("input.kind: features or tensor")
    for i, fdoc in enumerate(raw):
        parsed = _feature(fdoc, i, problems)
        if parsed is not None:
            entry, stats = parsed
            features.append(entry)
            if entry["type"] == "numeric":
                numeric[entry["name"]] = stats
    if len({f["name"] for f in features}) != len(features):
        problems.append("input.features: feature names must be distinct")
    unknown = inp.get("unknown_category", "error")
    if unknown not in ("error", "zeros"):
        problems.append("input.unknown_category: error or zeros")
    output_name, kind, labels = out.get("name"), out.get("kind"), out.get("labels")
    if not _text(output_name):
        problems.append("output.name: the graph output's name is required")
    if kind not in ("probabilities", "logits", "score"):
        problems.append("output.kind: probabilities, logits or score")
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(_text(x) for x in labels)
        or len(set(labels)) != len(labels)
    ):
        problems.append("output.labels: at least two distinct label names")
        labels = []
    elif kind == "score" and len(labels) != 2:
        problems.append("output.labels: a score needs exactly two labels (negative, positive)")
    declared: dict[str, str] = {}
    if not isinstance(card, dict):
        problems.append("card: expected a mapping")
        card = {}
    for key in sorted(set(map(str, card)) - set(CARD_FIELDS)):
        problems.append(f"card.{key[:64]}: unknown key (known: {', '.join(CARD_FIELDS)})")
    for key in CARD_FIELDS:
        value = card.get(key)
        if value is None:
            declared[key] = ""
        elif isinstance(value, str) and len(value) <= 2000 and "\x00" not in value:
            declared[key] = value.strip()
        else:
            problems.append(f"card.{key}: text of at most 2000 characters")
    if problems:
        raise ImportSchemaError(
            "the import schema is invalid: " + "; ".join(problems), extra={"problems": problems}
        )
    return ImportSchema(
        input_name=str(input_name),
        output_name=str(output_name),
        output_kind=str(kind),
        features=features,
        numeric=numeric,
        unknown_category=str(unknown),
        labels=[str(x) for x in labels],
        card=declared,
        tensor=tensor,
    )


def _tensor(inp: dict[str, Any], problems: list[str]) -> dict[str, Any] | None:
    dtype, shape = inp.get("dtype"), inp.get("shape")
    ok = True
    if dtype not in TENSOR_DTYPES:
        problems.append(f"input.dtype: one of {', '.join(TENSOR_DTYPES)}")
        ok = False
    if (
        not isinstance(shape, list)
        or not 2 <= len(shape) <= MAX_TENSOR_RANK
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 1 << 20 for d in shape[1:]
        )
    ):
        problems.append(
            "input.shape: [null, d1, ...]: the batch dimension, then at least one fixed "
            f"positive size (rank at most {MAX_TENSOR_RANK})"
        )
        return None
    if shape[0] is not None:
        problems.append("input.shape: the first (batch) dimension must be dynamic: null")
        ok = False
    elif math.prod(shape[1:]) > 1 << 20:
        problems.append("input.shape: at most 1048576 values per example")
        ok = False
    return {"dtype": dtype, "shape": shape} if ok else None


def missing_card_fields(card: dict[str, Any]) -> list[str]:
    """The required provenance fields a card leaves empty."""
    provenance = card.get("provenance") or {}
    return [k for k in CARD_FIELDS if not str(provenance.get(k) or "").strip()]
