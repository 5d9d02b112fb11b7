"""The model manifest: what an artifact is, how raw records become tensors, and its hashes.

The manifest is plain JSON (``manifest.json`` beside ``weights.safetensors``). Parsing is strict:
unknown architecture kinds, missing fields, wrong types and inconsistent dimensions are refused
with :class:`ManifestError`, so a tampered or truncated manifest never loads half-way.

Format ``warden.model/1``::

    {
      "format": "warden.model/1",
      "name": "adult-mlp", "version": "20261123-0712-1a2b",
      "architecture": {"kind": "mlp", "input_dim": 108, "output_dim": 2,
                       "hidden": [64, 64], "dropout": 0.0},
      "input_schema": {"features": [
          {"name": "age", "type": "numeric"},
          {"name": "sex", "type": "categorical", "categories": ["Female", "Male"]}]},
      "preprocessing": {"numeric": {"age": {"mean": 38.6, "std": 13.6, "transform": "identity"}},
                        "unknown_category": "error"},
      "labels": ["<=50K", ">50K"],
      "weights": {"file": "weights.safetensors", "sha256": "<hex>"},
      "files": {"model_card.json": "<hex sha256>"},
      "postprocessing": null,
      "training": {...free-form: data, DP mechanism, model_init_seed...}
    }

``training`` is the writer's description, never evidence: Warden takes a model's DP claim from
its privacy ledger, by this file's sha256 (``governance/privacy/claims.py``).

A numeric feature may declare its public bounds, ``{"name": "age", "type": "numeric", "lo": 17,
"hi": 90, "out_of_bounds": "refuse"}``: a request value outside ``[lo, hi]`` is then refused
(a 422 naming the field), or clipped into the bounds with ``"out_of_bounds": "clip"``. A feature
without bounds takes any finite number.

Numeric features are standardised ``(t(x) - mean) / std`` where ``t`` is the optional
``transform`` (``identity`` or ``log1p``, the latter for heavy-tailed amounts); categorical
features are one-hot encoded in the order of ``categories``. ``unknown_category`` is
``"error"`` (a 422 for the caller) or ``"zeros"`` (an all-zero one-hot block).
``postprocessing`` is either null or a ``group_threshold`` spec (see
:mod:`inference.postprocess`), which needs a binary model.

An imported model has architecture kind ``onnx``: ``{"kind": "onnx", "input_dim": 108,
"output_dim": 2, "hidden": [], "dropout": 0.0, "input": "X", "output": "probabilities",
"output_kind": "probabilities"}`` names the graph's input and output (``output_kind`` is
``probabilities``, ``logits`` or ``score``), and ``weights`` names ``model.onnx`` with its
sha256 (:mod:`inference.onnx_model`).

An imported model that is not tabular takes a tensor instead of named features:
``"input_schema": {"features": [], "tensor": {"dtype": "float32", "shape": [null, 1, 28, 28]}}``.
The first dimension is the batch (dynamic, ``null``), every other one is fixed, and
``input_dim`` is their product (a request's tensors are carried flattened to that width and
reshaped for the graph). Such a model has no preprocessing and no post-processing.

File names are plain names (``[A-Za-z0-9][A-Za-z0-9._-]*``, no paths, no dot files, never
``manifest.json``); digests are 64 lowercase hex characters. An ``mlp`` has at least one hidden
layer, labels are distinct, and ``preprocessing.numeric`` only names numeric features.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from inference.errors import ManifestError

FORMAT = "warden.model/1"
# Anchored with \Z, not $: "$" also matches before a trailing newline ("adult\n" would pass).
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
# Artifact file names: one plain name inside the artifact folder, never a path or a dot file.
FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
MANIFEST_FILE = "manifest.json"
RESERVED_FILES = (MANIFEST_FILE,)
ARCHITECTURES = ("logreg", "mlp", "onnx")
WEIGHTS_FILE = "weights.safetensors"
# An imported model: an ONNX graph run by ONNX Runtime (inference/onnx_model.py).
ONNX_FILE = "model.onnx"
# What the graph's named output holds: a probability per label, logits (Warden applies the
# softmax), or one score, the positive label's probability of a binary model.
OUTPUT_KINDS = ("probabilities", "logits", "score")
# Element types a tensor input may declare (numpy and torch share these names).
TENSOR_DTYPES = ("float32", "float64", "int32", "int64", "uint8")
MAX_TENSOR_RANK = 8


@dataclass(frozen=True)
class TensorInput:
    """A tensor input: its element type and shape, the first dimension the dynamic batch."""

    dtype: str
    shape: tuple[int, ...]  # the dimensions after the batch one

    @property
    def width(self) -> int:
        return math.prod(self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": [None, *self.shape]}


@dataclass(frozen=True)
class Feature:
    name: str
    type: Literal["numeric", "categorical"]
    categories: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0
    transform: Literal["identity", "log1p"] = "identity"
    lo: float | None = None
    hi: float | None = None
    out_of_bounds: Literal["refuse", "clip"] = "refuse"

    @property
    def width(self) -> int:
        return len(self.categories) if self.type == "categorical" else 1

    def schema_entry(self) -> dict[str, Any]:
        """This feature's entry in ``input_schema.features``."""
        if self.type == "categorical":
            return {"name": self.name, "type": "categorical", "categories": list(self.categories)}
        entry: dict[str, Any] = {"name": self.name, "type": "numeric"}
        if self.lo is not None and self.hi is not None:
            entry.update(lo=self.lo, hi=self.hi, out_of_bounds=self.out_of_bounds)
        return entry

    def statistics(self) -> dict[str, Any]:
        """This numeric feature's entry in ``preprocessing.numeric``."""
        return {"mean": self.mean, "std": self.std, "transform": self.transform}


@dataclass(frozen=True)
class Architecture:
    kind: str
    input_dim: int
    output_dim: int
    hidden: tuple[int, ...] = ()
    dropout: float = 0.0
    # An onnx graph's input and output names, and what the output holds (OUTPUT_KINDS).
    input: str = ""
    output: str = ""
    output_kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.kind,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "hidden": list(self.hidden),
            "dropout": self.dropout,
        }
        if self.kind == "onnx":
            doc.update(input=self.input, output=self.output, output_kind=self.output_kind)
        return doc


@dataclass(frozen=True)
class Manifest:
    """A ``warden.model/1`` document, typed; :meth:`to_dict` writes what :func:`parse_manifest`
    reads. A manifest not yet saved has no weights digest: ``save_artifact`` fills it in."""

    name: str
    version: str
    architecture: Architecture
    features: tuple[Feature, ...]
    labels: tuple[str, ...]
    weights_file: str = WEIGHTS_FILE
    weights_sha256: str = ""
    unknown_category: Literal["error", "zeros"] = "error"
    files: dict[str, str] = field(default_factory=dict)
    postprocessing: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    input_tensor: TensorInput | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (statistics written for every numeric feature)."""
        return {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture.to_dict(),
            "input_schema": {
                "features": [f.schema_entry() for f in self.features],
                **({"tensor": self.input_tensor.to_dict()} if self.input_tensor else {}),
            },
            "preprocessing": {
                "numeric": {f.name: f.statistics() for f in self.features if f.type == "numeric"},
                "unknown_category": self.unknown_category,
            },
            "labels": list(self.labels),
            "weights": {"file": self.weights_file, "sha256": self.weights_sha256},
            "files": dict(self.files),
            "postprocessing": copy.deepcopy(self.postprocessing),
            "training": copy.deepcopy(self.training),
        }


def _req(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise ManifestError(f"{where}: missing field {key!r}")
    value = doc[key]
    # bool is an int subclass; a JSON true must not pass as a dimension.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ManifestError(f"{where}: field {key!r} has the wrong type")
    if not isinstance(value, kind):
        raise ManifestError(f"{where}: field {key!r} has the wrong type")
    return value


def _finite(value: Any, where: str) -> float:
    """``value`` when it is a finite number, as written: an integer stays one, so
    :meth:`Manifest.to_dict` writes back the same JSON."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{where}: expected a finite number")
    try:
        number = float(value)
    except OverflowError:
        # A JSON integer too large for a float (json.loads yields arbitrary-precision ints).
        raise ManifestError(f"{where}: expected a finite number") from None
    if not math.isfinite(number):
        raise ManifestError(f"{where}: expected a finite number")
    return value


def _parse_feature(doc: Any, numeric_stats: dict[str, Any], index: int) -> Feature:
    where = f"input_schema.features[{index}]"
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: expected an object")
    name = _req(doc, "name", str, where)
    if not name or len(name) > 128 or not name.isprintable():
        raise ManifestError(f"{where}: bad feature name")
    ftype = _req(doc, "type", str, where)
    if ftype == "numeric":
        stats = numeric_stats.get(name, {"mean": 0.0, "std": 1.0})
        if not isinstance(stats, dict):
            raise ManifestError(f"preprocessing.numeric.{name}: expected an object")
        mean = _finite(stats.get("mean"), f"preprocessing.numeric.{name}.mean")
        std = _finite(stats.get("std"), f"preprocessing.numeric.{name}.std")
        if std <= 0:
            raise ManifestError(f"preprocessing.numeric.{name}.std must be positive")
        transform = stats.get("transform", "identity")
        if transform not in ("identity", "log1p"):
            raise ManifestError(f"preprocessing.numeric.{name}.transform: identity or log1p")
        lo = _finite(doc["lo"], f"{where}.lo") if "lo" in doc else None
        hi = _finite(doc["hi"], f"{where}.hi") if "hi" in doc else None
        if (lo is None) != (hi is None) or (lo is not None and hi is not None and not lo < hi):
            raise ManifestError(f"{where}: bounds need both lo and hi, with lo < hi")
        bounds = doc.get("out_of_bounds", "refuse")
        if bounds not in ("refuse", "clip"):
            raise ManifestError(f"{where}.out_of_bounds: refuse or clip")
        return Feature(
            name=name,
            type="numeric",
            mean=mean,
            std=std,
            transform=transform,
            lo=lo,
            hi=hi,
            out_of_bounds=bounds,
        )
    if ftype == "categorical":
        cats = _req(doc, "categories", list, where)
        if not cats or not all(isinstance(c, str) for c in cats) or len(set(cats)) != len(cats):
            raise ManifestError(f"{where}: categories must be distinct strings")
        return Feature(name=name, type="categorical", categories=tuple(cats))
    raise ManifestError(f"{where}: unknown feature type {ftype!r}")


def parse_manifest(doc: Any) -> Manifest:
    """Validate a manifest document and return it typed.

    Args:
        doc: the decoded ``manifest.json``.

    Returns:
        The typed manifest.

    Raises:
        ManifestError: on any missing field, wrong type or inconsistency.
    """
    if not isinstance(doc, dict):
        raise ManifestError("manifest: expected a JSON object")
    if doc.get("format") != FORMAT:
        raise ManifestError(f"manifest: format must be {FORMAT!r}")
    name = _req(doc, "name", str, "manifest")
    version = _req(doc, "version", str, "manifest")
    for label, value in (("name", name), ("version", version)):
        if not NAME_RE.fullmatch(value):
            raise ManifestError(f"manifest: {label} must match {NAME_RE.pattern}")

    arch_doc = _req(doc, "architecture", dict, "manifest")
    kind = _req(arch_doc, "kind", str, "architecture")
    if kind not in ARCHITECTURES:
        raise ManifestError(f"architecture: unknown kind {kind!r}")
    hidden = arch_doc.get("hidden", [])
    if not isinstance(hidden, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) and 0 < h <= 65536 for h in hidden
    ):
        raise ManifestError("architecture.hidden: expected a list of positive integers")
    if kind == "mlp" and not hidden:
        # The manifest must describe the module exactly; an MLP without layers is a logreg.
        raise ManifestError("architecture.hidden: an mlp needs at least one hidden layer")
    dropout = _finite(arch_doc.get("dropout", 0.0), "architecture.dropout")
    if not 0.0 <= dropout < 1.0:
        raise ManifestError("architecture.dropout must be in [0, 1)")
    graph: dict[str, str] = {}
    if kind == "onnx":
        for key in ("input", "output", "output_kind"):
            value = _req(arch_doc, key, str, "architecture")
            if not value or len(value) > 256 or not value.isprintable():
                raise ManifestError(f"architecture.{key}: expected a graph name")
            graph[key] = value
        if graph["output_kind"] not in OUTPUT_KINDS:
            raise ManifestError(f"architecture.output_kind: one of {', '.join(OUTPUT_KINDS)}")
        if hidden or dropout:
            raise ManifestError("architecture: an onnx graph has no hidden layers or dropout")
    arch = Architecture(
        kind=kind,
        input_dim=_req(arch_doc, "input_dim", int, "architecture"),
        output_dim=_req(arch_doc, "output_dim", int, "architecture"),
        hidden=tuple(hidden) if kind == "mlp" else (),
        dropout=dropout,
        **graph,
    )
    if not 0 < arch.input_dim <= 1 << 20 or not 0 < arch.output_dim <= 1 << 16:
        raise ManifestError("architecture: input_dim and output_dim must be positive")

    pre = doc.get("preprocessing", {})
    if not isinstance(pre, dict):
        raise ManifestError("preprocessing: expected an object")
    numeric_stats = pre.get("numeric", {})
    if not isinstance(numeric_stats, dict):
        raise ManifestError("preprocessing.numeric: expected an object")
    unknown = pre.get("unknown_category", "error")
    if unknown not in ("error", "zeros"):
        raise ManifestError("preprocessing.unknown_category must be 'error' or 'zeros'")

    schema = _req(doc, "input_schema", dict, "manifest")
    feats_doc = _req(schema, "features", list, "input_schema")
    features = tuple(_parse_feature(f, numeric_stats, i) for i, f in enumerate(feats_doc))
    tensor = _parse_tensor(schema["tensor"], arch) if "tensor" in schema else None
    if tensor is not None:
        if features or numeric_stats:
            raise ManifestError("input_schema: a tensor input has no features or preprocessing")
        if doc.get("postprocessing") is not None:
            raise ManifestError("postprocessing: a tensor input has no features to group by")
    elif not features:
        raise ManifestError("input_schema.features: at least one feature is required")
    if len({f.name for f in features}) != len(features):
        raise ManifestError("input_schema.features: duplicate feature names")
    numeric_names = {f.name for f in features if f.type == "numeric"}
    stray = sorted(set(numeric_stats) - numeric_names)
    if stray:
        # Statistics for a feature the schema does not have mean the two sections disagree.
        raise ManifestError(
            f"preprocessing.numeric: {stray[0]!r} is not a numeric feature of the schema"
        )
    width = tensor.width if tensor is not None else sum(f.width for f in features)
    if width != arch.input_dim:
        raise ManifestError(
            f"architecture.input_dim is {arch.input_dim} but the schema encodes to {width}"
        )

    labels = _req(doc, "labels", list, "manifest")
    if len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        raise ManifestError("labels: expected at least two non-empty strings")
    if len(set(labels)) != len(labels):
        raise ManifestError("labels: must be distinct")
    if len(labels) != arch.output_dim:
        raise ManifestError("labels: count must equal architecture.output_dim")
    if arch.output_kind == "score" and len(labels) != 2:
        raise ManifestError("architecture.output_kind: a score needs a binary model")

    weights = _req(doc, "weights", dict, "manifest")
    wfile = _req(weights, "file", str, "weights")
    wsha = _req(weights, "sha256", str, "weights")
    files = doc.get("files", {})
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise ManifestError("files: expected an object of file name to sha256")
    for fname in [wfile, *files]:
        if not FILE_RE.fullmatch(fname) or fname in RESERVED_FILES:
            # Never echo the name: it is attacker-controlled and may hold control characters.
            raise ManifestError("files: each name must be a plain file name in the artifact")
    if wfile in files:
        raise ManifestError("files: the weights file must not be listed again")
    for digest in [wsha, *files.values()]:
        if not SHA256_RE.fullmatch(digest):
            raise ManifestError("files: sha256 digests must be 64 lowercase hex characters")

    post = doc.get("postprocessing")
    if post is not None:
        from inference.postprocess import validate_spec

        validate_spec(post, features)
        if arch.output_dim != 2:
            raise ManifestError("postprocessing: group thresholds need a binary model")
    training = doc.get("training", {})
    if not isinstance(training, dict):
        raise ManifestError("training: expected an object")

    return Manifest(
        name=name,
        version=version,
        architecture=arch,
        features=features,
        labels=tuple(labels),
        weights_file=wfile,
        weights_sha256=wsha,
        unknown_category=unknown,
        files=dict(files),
        postprocessing=post,
        training=training,
        input_tensor=tensor,
    )


def _parse_tensor(doc: Any, arch: Architecture) -> TensorInput:
    where = "input_schema.tensor"
    if arch.kind != "onnx":
        raise ManifestError(f"{where}: only an imported (onnx) model takes a tensor input")
    if not isinstance(doc, dict) or set(doc) != {"dtype", "shape"}:
        raise ManifestError(f"{where}: expected an object with dtype and shape")
    dtype, shape = doc["dtype"], doc["shape"]
    if dtype not in TENSOR_DTYPES:
        raise ManifestError(f"{where}.dtype: one of {', '.join(TENSOR_DTYPES)}")
    if (
        not isinstance(shape, list)
        or not 2 <= len(shape) <= MAX_TENSOR_RANK
        or shape[0] is not None
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 1 << 20 for d in shape[1:]
        )
    ):
        raise ManifestError(
            f"{where}.shape: [null, d1, ...]: a dynamic batch dimension, then fixed positive sizes"
        )
    return TensorInput(dtype=dtype, shape=tuple(shape[1:]))
