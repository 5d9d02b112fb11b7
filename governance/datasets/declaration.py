"""Dataset schemas: what a tabular dataset is, declared in a YAML file beside the data.

A schema names the data's source and licence, its privacy unit, the label, every feature and
the sensitive attributes used for fairness audits. Numeric features carry PUBLIC bounds and
categorical features a PUBLIC category list: the preprocessing statistics are derived from
these declarations, never from the rows, so computing them costs no privacy budget.

Format ``warden.dataset/1`` (see ``bundled/adult/schema.yaml`` for a full example)::

    format: warden.dataset/1
    name: adult
    description: ...
    source: {citation: ..., doi: ..., url: ..., licence: CC BY 4.0}
    privacy_unit: one row = one person
    table: {format: csv, header: false, columns: [...], separator: ",",
            skip_initial_space: true, missing_values: ["?"], missing: drop}
    split: {kind: files, train: {path: ..., sha256: ...}, test: {path: ..., skip_rows: 1}}
       or: {kind: random, file: {path: ...}, test_fraction: 0.2, seed: 0}
    label: {column: income, positive: ">50K", negative: "<=50K"}
    out_of_bounds: refuse        # or clip; the default for every numeric feature
    features:
      - {name: age, type: numeric, lo: 17, hi: 90}
      - {name: hours-per-week, type: numeric, lo: 1, hi: 99, out_of_bounds: clip}
      - {name: capital-gain, type: numeric, lo: 0, hi: 99999, transform: log1p}
      - {name: sex, type: categorical, categories: [Female, Male]}
    sensitive:
      - {name: sex, column: sex}
      - {name: age_group, column: age, bins: [17, 25, 35, 91], labels: [a, b, c]}
    privacy: {allow_non_private: false, delta: 1.0e-5}
       or: {allow_non_private: false, public: true}   # public or holdout rows, never charged

The bounds are a contract, because they are what makes preprocessing free of privacy cost: a
value outside ``[lo, hi]`` is refused (with a count per column), or clipped into the bounds
where the feature (or the schema's ``out_of_bounds``) says ``clip``. ``docs/datasets.md``
documents every key.

Validation is strict and complete: every problem is collected, then one
:class:`DatasetError` lists them all.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from governance.datasets.errors import DatasetError, DatasetFileMissing

FORMAT = "warden.dataset/1"
# \Z, not $: "$" also matches before a trailing newline ("adult\n" would pass).
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
MAX_SCHEMA_BYTES = 1024 * 1024
# The datasets that ship with Warden, one folder each with its schema.yaml beside the data.
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
ADULT_SCHEMA = BUNDLED_DIR / "adult" / "schema.yaml"

_TOP_KEYS = {
    "format",
    "name",
    "description",
    "source",
    "privacy_unit",
    "table",
    "split",
    "label",
    "features",
    "sensitive",
    "privacy",
    "out_of_bounds",
}

OutOfBounds = Literal["refuse", "clip"]
OUT_OF_BOUNDS: tuple[OutOfBounds, ...] = ("refuse", "clip")


@dataclass(frozen=True)
class Source:
    citation: str
    licence: str
    url: str | None = None
    doi: str | None = None


@dataclass(frozen=True)
class FeatureSpec:
    """One model input. Numeric features have public bounds; categorical a public list.

    ``out_of_bounds`` says what happens to a numeric value outside ``[lo, hi]``, in the data
    and in a request to a model trained on it: ``refuse`` it, or ``clip`` it into the bounds.
    """

    name: str
    type: Literal["numeric", "categorical"]
    lo: float = 0.0
    hi: float = 1.0
    transform: Literal["identity", "log1p"] = "identity"
    categories: tuple[str, ...] = ()
    out_of_bounds: OutOfBounds = "refuse"

    def standardisation(self) -> tuple[float, float]:
        """Mean and std for ``(t(x) - mean) / std``, from the public bounds alone.

        The midpoint and half-range of the transformed bounds map ``[lo, hi]`` onto
        ``[-1, 1]``; no statistic of the private rows enters.
        """
        lo, hi = self.lo, self.hi
        if self.transform == "log1p":
            lo, hi = math.log1p(lo), math.log1p(hi)
        return (lo + hi) / 2.0, (hi - lo) / 2.0


@dataclass(frozen=True)
class SensitiveSpec:
    """A sensitive attribute for fairness audits, optionally binned with public edges."""

    name: str
    column: str
    bins: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableFormat:
    format: Literal["csv", "parquet"]
    header: bool = True
    columns: tuple[str, ...] = ()
    separator: str = ","
    skip_initial_space: bool = False
    missing_values: tuple[str, ...] = ()
    missing: Literal["drop", "error"] = "drop"


@dataclass(frozen=True)
class DataFile:
    """One data file, relative to the schema's folder."""

    path: str
    sha256: str | None = None
    skip_rows: int = 0
    label_suffix: str = ""


@dataclass(frozen=True)
class Split:
    kind: Literal["files", "random"]
    train: DataFile | None = None
    test: DataFile | None = None
    file: DataFile | None = None
    test_fraction: float = 0.2
    seed: int = 0

    @property
    def files(self) -> tuple[DataFile, ...]:
        """Every file the split reads, in a stable order."""
        if self.kind == "files":
            return tuple(f for f in (self.train, self.test) if f is not None)
        return (self.file,) if self.file is not None else ()


@dataclass(frozen=True)
class Label:
    column: str
    positive: str
    negative: str

    @property
    def names(self) -> tuple[str, str]:
        """Class names in model output order: index 1 is the positive class."""
        return (self.negative, self.positive)


@dataclass(frozen=True)
class PrivacySpec:
    allow_non_private: bool = False
    delta: float | None = None
    # Public rows, or a holdout released outside any DP guarantee: reading them charges no
    # ledger and no DP claim covers them (unless they share a ledger with private rows).
    public: bool = False


@dataclass(frozen=True)
class DatasetSchema:
    name: str
    description: str
    source: Source
    privacy_unit: str
    table: TableFormat
    split: Split
    label: Label
    features: tuple[FeatureSpec, ...]
    sensitive: tuple[SensitiveSpec, ...]
    privacy: PrivacySpec
    base_dir: Path

    def path_of(self, file: DataFile) -> Path:
        """Absolute path of a data file named by the schema."""
        return self.base_dir / file.path

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)


class _Problems:
    """Collects validation problems so one error reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def obj(self, doc: Any, where: str) -> dict[str, Any]:
        if not isinstance(doc, dict):
            self.add(f"{where}: expected a mapping")
            return {}
        return doc

    def text(self, doc: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
        if key not in doc or doc[key] is None:
            if required:
                self.add(f"{where}.{key}: required")
            return ""
        value = doc[key]
        if not isinstance(value, str) or not value.strip():
            self.add(f"{where}.{key}: expected a non-empty string")
            return ""
        return value

    def number(self, doc: dict[str, Any], key: str, where: str) -> float | None:
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(f"{where}.{key}: expected a number")
            return None
        if not math.isfinite(value):
            self.add(f"{where}.{key}: expected a finite number")
            return None
        return float(value)

    def flag(self, doc: dict[str, Any], key: str, where: str, default: bool) -> bool:
        value = doc.get(key, default)
        if not isinstance(value, bool):
            self.add(f"{where}.{key}: expected true or false")
            return default
        return value

    def strings(self, doc: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(f"{where}.{key}: expected a list of non-empty strings")
            return ()
        if len(set(value)) != len(value):
            self.add(f"{where}.{key}: entries must be distinct")
        return tuple(value)

    def unknown(self, doc: dict[str, Any], allowed: set[str], where: str) -> None:
        for key in sorted(set(doc) - allowed, key=str):
            self.add(f"{where}: unknown field {str(key)[:64]!r}")


def _source(p: _Problems, doc: Any) -> Source:
    d = p.obj(doc, "source")
    p.unknown(d, {"citation", "licence", "url", "doi"}, "source")
    return Source(
        citation=p.text(d, "citation", "source"),
        licence=p.text(d, "licence", "source"),
        url=p.text(d, "url", "source", required=False) or None,
        doi=p.text(d, "doi", "source", required=False) or None,
    )


def _table(p: _Problems, doc: Any) -> TableFormat:
    d = p.obj(doc, "table")
    p.unknown(
        d,
        {"format", "header", "columns", "separator", "skip_initial_space", "missing_values"}
        | {"missing"},
        "table",
    )
    fmt: Literal["csv", "parquet"] = "csv"
    if d.get("format") == "parquet":
        fmt = "parquet"
    elif d.get("format") != "csv":
        p.add("table.format: must be csv or parquet")
    header = p.flag(d, "header", "table", True)
    columns = p.strings(d, "columns", "table")
    if not header and not columns and fmt == "csv":
        p.add("table.columns: required when the file has no header")
    separator = d.get("separator", ",")
    if not isinstance(separator, str) or len(separator) != 1:
        p.add("table.separator: expected a single character (use skip_initial_space for ', ')")
        separator = ","
    missing = d.get("missing", "drop")
    if missing not in ("drop", "error"):
        p.add("table.missing: must be drop or error")
        missing = "drop"
    return TableFormat(
        format=fmt,
        header=header,
        columns=columns,
        separator=separator,
        skip_initial_space=p.flag(d, "skip_initial_space", "table", False),
        missing_values=p.strings(d, "missing_values", "table"),
        missing=missing,
    )


def _data_file(p: _Problems, doc: Any, where: str) -> DataFile:
    d = p.obj(doc, where)
    p.unknown(d, {"path", "sha256", "skip_rows", "label_suffix"}, where)
    path = p.text(d, "path", where)
    if path and (Path(path).is_absolute() or ".." in Path(path).parts):
        p.add(f"{where}.path: must be relative to the schema's folder, without '..'")
    sha = d.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not SHA256_RE.match(sha)):
        p.add(f"{where}.sha256: expected 64 lowercase hex characters")
        sha = None
    skip = d.get("skip_rows", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        p.add(f"{where}.skip_rows: expected a non-negative integer")
        skip = 0
    suffix = d.get("label_suffix", "")
    if not isinstance(suffix, str):
        p.add(f"{where}.label_suffix: expected a string")
        suffix = ""
    return DataFile(path=path, sha256=sha, skip_rows=skip, label_suffix=suffix)


def _split(p: _Problems, doc: Any) -> Split:
    d = p.obj(doc, "split")
    kind = d.get("kind")
    if kind == "files":
        p.unknown(d, {"kind", "train", "test"}, "split")
        return Split(
            kind="files",
            train=_data_file(p, d.get("train"), "split.train"),
            test=_data_file(p, d.get("test"), "split.test"),
        )
    if kind == "random":
        p.unknown(d, {"kind", "file", "test_fraction", "seed"}, "split")
        fraction = p.number(d, "test_fraction", "split") if "test_fraction" in d else 0.2
        if fraction is not None and not 0.0 < fraction < 1.0:
            p.add("split.test_fraction: must be strictly between 0 and 1")
        seed = d.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            p.add("split.seed: expected a non-negative integer")
            seed = 0
        return Split(
            kind="random",
            file=_data_file(p, d.get("file"), "split.file"),
            test_fraction=fraction if fraction is not None else 0.2,
            seed=seed,
        )
    p.add("split.kind: must be files (train and test files) or random (one file and a rule)")
    return Split(kind="files")


def _out_of_bounds(p: _Problems, value: Any, where: str) -> OutOfBounds:
    if value == "clip":
        return "clip"
    if value != "refuse":
        p.add(f"{where}.out_of_bounds: must be refuse or clip")
    return "refuse"


def _feature(p: _Problems, doc: Any, index: int, default_bounds: OutOfBounds) -> FeatureSpec | None:
    where = f"features[{index}]"
    d = p.obj(doc, where)
    name = p.text(d, "name", where)
    if name:
        where = f"features[{index}] ({name[:64]})"
    ftype = d.get("type")
    if ftype == "numeric":
        p.unknown(d, {"name", "type", "lo", "hi", "transform", "out_of_bounds"}, where)
        lo = p.number(d, "lo", where)
        hi = p.number(d, "hi", where)
        bounds = _out_of_bounds(p, d.get("out_of_bounds", default_bounds), where)
        transform = d.get("transform", "identity")
        if transform not in ("identity", "log1p"):
            p.add(f"{where}.transform: must be identity or log1p")
            transform = "identity"
        if lo is None or hi is None:
            return None
        if not lo < hi:
            p.add(f"{where}: public bounds need lo < hi")
            return None
        if transform == "log1p" and lo <= -1:
            p.add(f"{where}: log1p needs lo > -1")
            return None
        return FeatureSpec(
            name=name, type="numeric", lo=lo, hi=hi, transform=transform, out_of_bounds=bounds
        )
    if ftype == "categorical":
        p.unknown(d, {"name", "type", "categories"}, where)
        cats = p.strings(d, "categories", where)
        if not cats:
            p.add(f"{where}.categories: a non-empty public category list is required")
            return None
        return FeatureSpec(name=name, type="categorical", categories=cats)
    p.add(f"{where}.type: must be numeric or categorical")
    return None


def _sensitive(p: _Problems, doc: Any, index: int) -> SensitiveSpec | None:
    where = f"sensitive[{index}]"
    d = p.obj(doc, where)
    p.unknown(d, {"name", "column", "bins", "labels"}, where)
    name = p.text(d, "name", where)
    column = p.text(d, "column", where)
    bins_doc = d.get("bins", [])
    labels = p.strings(d, "labels", where)
    if not isinstance(bins_doc, list) or not all(
        isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b)
        for b in bins_doc
    ):
        p.add(f"{where}.bins: expected a list of finite numbers")
        return None
    bins = tuple(float(b) for b in bins_doc)
    if bins:
        if len(bins) < 2 or any(b >= c for b, c in itertools.pairwise(bins)):
            p.add(f"{where}.bins: need at least two strictly increasing edges")
        elif len(labels) != len(bins) - 1:
            p.add(f"{where}.labels: need one label per bin ({len(bins) - 1})")
    elif labels:
        p.add(f"{where}.labels: only allowed with bins")
    return SensitiveSpec(name=name, column=column, bins=bins, labels=labels)


def _privacy(p: _Problems, doc: Any) -> PrivacySpec:
    d = p.obj(doc, "privacy")
    p.unknown(d, {"allow_non_private", "delta", "public"}, "privacy")
    if "allow_non_private" not in d:
        # Fail closed: a schema must say explicitly that non-private training is acceptable.
        p.add("privacy.allow_non_private: required (true or false)")
    delta = None
    if "delta" in d:
        delta = p.number(d, "delta", "privacy")
        if delta is not None and not 0.0 < delta < 1.0:
            p.add("privacy.delta: must be strictly between 0 and 1")
    return PrivacySpec(
        allow_non_private=p.flag(d, "allow_non_private", "privacy", False),
        delta=delta,
        public=p.flag(d, "public", "privacy", False),
    )


def parse_schema(doc: Any, *, base_dir: str | Path) -> DatasetSchema:
    """Validate a decoded schema document.

    Args:
        doc: the YAML document, decoded.
        base_dir: the folder data file paths are relative to.

    Returns:
        The typed schema.

    Raises:
        DatasetError: listing every problem found.
    """
    if not isinstance(doc, dict):
        raise DatasetError("invalid dataset schema", problems=["schema: expected a mapping"])
    p = _Problems()
    d = doc
    p.unknown(d, _TOP_KEYS, "schema")
    if d.get("format") != FORMAT:
        p.add(f"format: must be {FORMAT!r}")
    name = p.text(d, "name", "schema")
    if name and not NAME_RE.match(name):
        p.add(f"name: must match {NAME_RE.pattern}")
    description = p.text(d, "description", "schema")
    privacy_unit = p.text(d, "privacy_unit", "schema")
    source = _source(p, d.get("source"))
    table = _table(p, d.get("table"))
    split = _split(p, d.get("split"))

    label_doc = p.obj(d.get("label"), "label")
    p.unknown(label_doc, {"column", "positive", "negative"}, "label")
    positive = p.text(label_doc, "positive", "label")
    label = Label(
        column=p.text(label_doc, "column", "label"),
        positive=positive,
        negative=p.text(label_doc, "negative", "label", required=False) or f"not {positive}",
    )
    if label.positive and label.positive == label.negative:
        p.add("label: positive and negative must differ")

    default_bounds = _out_of_bounds(p, d.get("out_of_bounds", "refuse"), "schema")
    features_doc = d.get("features")
    features: list[FeatureSpec] = []
    if not isinstance(features_doc, list) or not features_doc:
        p.add("features: expected a non-empty list")
    else:
        features = [
            f
            for i, x in enumerate(features_doc)
            if (f := _feature(p, x, i, default_bounds)) is not None
        ]
    names = [f.name for f in features]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        p.add(f"features: duplicate name {dup!r}")
    if label.column and label.column in names:
        p.add("features: the label column cannot also be a feature")

    sensitive_doc = d.get("sensitive", [])
    sensitive: list[SensitiveSpec] = []
    if not isinstance(sensitive_doc, list):
        p.add("sensitive: expected a list")
    else:
        sensitive = [
            s for i, x in enumerate(sensitive_doc) if (s := _sensitive(p, x, i)) is not None
        ]
    snames = [s.name for s in sensitive]
    for dup in sorted({n for n in snames if snames.count(n) > 1}):
        p.add(f"sensitive: duplicate name {dup!r}")

    if table.columns:
        known = set(table.columns)
        needed = [*names, label.column, *(s.column for s in sensitive)]
        for col in sorted({c for c in needed if c and c not in known}):
            p.add(f"table.columns: {col!r} is used but not declared")

    privacy = _privacy(p, d.get("privacy"))
    if p.items:
        raise DatasetError("invalid dataset schema", problems=p.items)
    return DatasetSchema(
        name=name,
        description=description,
        source=source,
        privacy_unit=privacy_unit,
        table=table,
        split=split,
        label=label,
        features=tuple(features),
        sensitive=tuple(sensitive),
        privacy=privacy,
        base_dir=Path(base_dir),
    )


def load_schema(path: str | Path) -> DatasetSchema:
    """Read and validate a schema file; data paths are relative to its folder.

    Args:
        path: the ``schema.yaml`` file.

    Returns:
        The typed schema.

    Raises:
        DatasetFileMissing: when the file does not exist.
        DatasetError: when it is not valid YAML or does not validate.
    """
    file = Path(path)
    if not file.is_file():
        raise DatasetFileMissing(f"schema file {file.name!r} not found")
    if file.stat().st_size > MAX_SCHEMA_BYTES:
        raise DatasetError(f"schema file {file.name!r} is larger than {MAX_SCHEMA_BYTES} bytes")
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"schema file {file.name!r} is not valid UTF-8 YAML") from exc
    return parse_schema(doc, base_dir=file.parent.resolve())
