"""Loading registered tabular data (CSV or Parquet) as its schema describes.

**Content hash.** A data file's content hash is the sha256 of its bytes; for a gzipped file
(``*.gz``) it is the sha256 of the decompressed bytes, so recompressing the same data does not
change it (and it matches the hashes the UCI README publishes for Adult). A dataset's hash is
that file's hash when it has one file, else the sha256 of the lines ``"<role>:<sha256>\\n"`` for
its files in schema order (train, test). :func:`verify_hash` refuses data that changed since it
was registered, so a privacy ledger never charges one dataset for another's rows.

**Missing values.** Rows with a missing value in any column the schema uses (a feature, the label
or a sensitive column) are dropped when ``table.missing`` is ``drop`` (the standard treatment of
Adult: 30,162 train and 15,060 test rows remain) and refused when it is ``error``. Dropping is
decided per row from that row alone, so it does not change the privacy unit.

**Values outside the public lists.** A categorical value missing from the schema's public list,
or a sensitive value outside its public bins, is refused: the schema must describe the data
completely, or encoding would silently differ between training and serving. A numeric value
outside the feature's public bounds is refused too, unless the feature says
``out_of_bounds: clip``: then it is clipped to the nearest bound and counted per column.

**Every problem at once.** Every file is checked before anything is refused, and one
:class:`DatasetError` lists each problem with its file and column.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from governance.datasets.declaration import (
    ADULT_SCHEMA,
    DataFile,
    DatasetSchema,
    load_schema,
)
from governance.datasets.errors import DatasetChanged, DatasetError, DatasetFileMissing


@dataclass(frozen=True)
class TabularSplit:
    """One split of a dataset, rows aligned across the three parts.

    Attributes:
        features: one column per schema feature, in schema order (numeric as float64,
            categorical as str).
        labels: int64 array of 0/1, where 1 is the schema's positive class.
        sensitive: one column per sensitive attribute (str; binned where the schema bins).
    """

    features: pd.DataFrame
    labels: np.ndarray
    sensitive: pd.DataFrame

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset read and checked against its schema and hashes."""

    schema: DatasetSchema
    train: TabularSplit
    test: TabularSplit
    content_hash: str
    file_hashes: dict[str, str] = field(default_factory=dict)
    rows_dropped: dict[str, int] = field(default_factory=dict)
    # {role: {column: values clipped to the public bounds}}, for out_of_bounds: clip columns.
    values_clipped: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.schema.name


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DatasetFileMissing(f"dataset file {path.name!r} not found")
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"dataset file {path.name!r} could not be read") from exc


def content_hash(path: str | Path) -> str:
    """The sha256 (hex) of a data file's content; gzip files hash their decompressed bytes.

    Args:
        path: the data file.

    Returns:
        64 lowercase hex characters.

    Raises:
        DatasetFileMissing: when the file does not exist.
        DatasetError: when it cannot be read or decompressed.
    """
    return hashlib.sha256(_read_bytes(Path(path))).hexdigest()


def verify_hash(path: str | Path, expected: str) -> str:
    """Check that a data file still has the content hash recorded at registration.

    Args:
        path: the data file.
        expected: the registered sha256 (hex).

    Returns:
        The hash, equal to ``expected``.

    Raises:
        DatasetChanged: when the content differs (409).
        DatasetFileMissing: when the file is gone.
    """
    actual = content_hash(path)
    if actual != expected.lower():
        raise DatasetChanged(file=Path(path).name, expected=expected.lower(), actual=actual)
    return actual


def _parse(schema: DatasetSchema, data: bytes, file: DataFile) -> pd.DataFrame:
    table = schema.table
    if table.format == "parquet":
        try:
            return pd.read_parquet(io.BytesIO(data))
        except ImportError as exc:
            raise DatasetError(
                "reading Parquet needs the pyarrow package, which is not installed"
            ) from exc
        except (ValueError, OSError) as exc:
            raise DatasetError(f"dataset file {file.path!r} is not valid Parquet") from exc
    try:
        return pd.read_csv(
            io.BytesIO(data),
            sep=table.separator,
            header=0 if table.header else None,
            names=list(table.columns) if table.columns else None,
            skipinitialspace=table.skip_initial_space,
            skiprows=file.skip_rows,
            # An empty field is missing too, whatever else the schema calls missing.
            na_values=[*table.missing_values, ""],
            keep_default_na=False,
            dtype=str,
            skip_blank_lines=True,
            encoding="utf-8",
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"dataset file {file.path!r} is not valid CSV for its schema") from exc


@dataclass(frozen=True)
class _Checked:
    """One file read against the schema: its split (None if it has problems) and findings."""

    split: TabularSplit | None
    dropped: int = 0
    clipped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _to_split(schema: DatasetSchema, frame: pd.DataFrame, file: DataFile) -> _Checked:
    used = list(
        dict.fromkeys(
            [*schema.feature_names, schema.label.column, *(s.column for s in schema.sensitive)]
        )
    )
    absent = [c for c in used if c not in frame.columns]
    if absent:
        return _Checked(None, problems=[f"column {c!r} is missing" for c in absent])
    frame = frame[used]
    problems: list[str] = []
    # Parquet keeps native types; CSV was read as text. Either way "missing" is NA here.
    missing = frame.isna().any(axis=1)
    dropped = int(missing.sum())
    if dropped and schema.table.missing == "error":
        problems.append(
            f"{dropped} rows have missing values and the schema says table.missing: error"
        )
    frame = frame.loc[~missing].reset_index(drop=True)

    features: dict[str, pd.Series] = {}
    clipped: dict[str, int] = {}
    for spec in schema.features:
        col = frame[spec.name]
        if spec.type == "numeric":
            numbers = pd.to_numeric(col, errors="coerce")
            bad = int(numbers.isna().sum())
            if bad:
                problems.append(f"{spec.name}: {bad} values are not numbers")
            outside = int(((numbers < spec.lo) | (numbers > spec.hi)).sum())
            if outside and spec.out_of_bounds == "clip":
                numbers = numbers.clip(lower=spec.lo, upper=spec.hi)
                clipped[spec.name] = outside
            elif outside:
                problems.append(
                    f"{spec.name}: {outside} values are outside the public bounds "
                    f"[{spec.lo:g}, {spec.hi:g}] (out_of_bounds: refuse)"
                )
            if spec.transform == "log1p" and bool((numbers <= -1).any()):
                problems.append(f"{spec.name}: log1p needs values greater than -1")
            features[spec.name] = numbers.astype(np.float64)
        else:
            text = col.astype(str).str.strip()
            unknown = int((~text.isin(spec.categories)).sum())
            if unknown:
                problems.append(
                    f"{spec.name}: {unknown} values are not in the public category list"
                )
            features[spec.name] = text

    labels_text = frame[schema.label.column].astype(str).str.strip()
    if file.label_suffix:
        labels_text = labels_text.str.removesuffix(file.label_suffix)
    positive = labels_text == schema.label.positive
    negative = labels_text == schema.label.negative
    neither = int((~(positive | negative)).sum())
    if neither:
        problems.append(
            f"{schema.label.column}: {neither} labels are neither "
            f"{schema.label.positive!r} nor {schema.label.negative!r}"
        )

    sensitive: dict[str, pd.Series] = {}
    for sens in schema.sensitive:
        col = frame[sens.column]
        if sens.bins:
            numbers = pd.to_numeric(col, errors="coerce")
            binned = pd.cut(numbers, bins=list(sens.bins), labels=list(sens.labels), right=False)
            outside = int(binned.isna().sum())
            if outside:
                problems.append(f"{sens.name}: {outside} values fall outside the public bins")
            sensitive[sens.name] = binned.astype(str)
        else:
            sensitive[sens.name] = col.astype(str).str.strip()

    if problems:
        return _Checked(None, dropped, clipped, problems)
    split = TabularSplit(
        features=pd.DataFrame(features),
        labels=positive.to_numpy(dtype=np.int64),
        # The index keeps the row count when the schema names no sensitive attribute.
        sensitive=pd.DataFrame(sensitive, index=frame.index),
    )
    return _Checked(split, dropped, clipped)


def _take(split: TabularSplit, rows: np.ndarray) -> TabularSplit:
    return TabularSplit(
        features=split.features.iloc[rows].reset_index(drop=True),
        labels=split.labels[rows],
        sensitive=split.sensitive.iloc[rows].reset_index(drop=True),
    )


def load_dataset(
    schema: DatasetSchema, *, expected_hashes: Mapping[str, str] | None = None
) -> LoadedDataset:
    """Read, check and split a dataset.

    Args:
        schema: the validated schema (its folder holds the data files).
        expected_hashes: hashes recorded at registration, by file path as the schema names it;
            they are checked in addition to any ``sha256`` in the schema itself.

    Returns:
        The loaded dataset with its content hash.

    Raises:
        DatasetChanged: when a file's content differs from a recorded hash (409).
        DatasetFileMissing: when a file is missing (404).
        DatasetError: when the data does not match the schema (422), listing every problem
            of every file.
    """
    hashes: dict[str, str] = {}
    frames: dict[str, _Checked] = {}
    roles = (
        [("train", schema.split.train), ("test", schema.split.test)]
        if schema.split.kind == "files"
        else [("data", schema.split.file)]
    )
    for role, file in roles:
        assert file is not None  # guaranteed by parse_schema
        data = _read_bytes(schema.path_of(file))
        digest = hashlib.sha256(data).hexdigest()
        for expected in (file.sha256, (expected_hashes or {}).get(file.path)):
            if expected is not None and expected.lower() != digest:
                raise DatasetChanged(file=file.path, expected=expected.lower(), actual=digest)
        hashes[file.path] = digest
        frames[role] = _to_split(schema, _parse(schema, data, file), file)

    problems = [
        f"{file.path}: {problem}"
        for role, file in roles
        if file is not None
        for problem in frames[role].problems
    ]
    if problems:
        raise DatasetError("the data does not match its schema", problems=problems)
    dropped = {role: checked.dropped for role, checked in frames.items()}
    clipped = {role: checked.clipped for role, checked in frames.items() if checked.clipped}
    if schema.split.kind == "files":
        train, test = frames["train"].split, frames["test"].split
        assert train is not None and test is not None
        combined = "".join(f"{r}:{hashes[f.path]}\n" for r, f in roles if f is not None)
        digest = hashlib.sha256(combined.encode()).hexdigest()
    else:
        whole = frames["data"].split
        assert whole is not None
        # A seeded permutation of the cleaned rows: the same file always splits the same way.
        order = np.random.default_rng(schema.split.seed).permutation(len(whole))
        n_test = round(len(whole) * schema.split.test_fraction)
        if n_test == 0 or n_test == len(whole):
            raise DatasetError("split.test_fraction leaves an empty train or test split")
        test, train = _take(whole, order[:n_test]), _take(whole, order[n_test:])
        digest = next(iter(hashes.values()))
    return LoadedDataset(
        schema=schema,
        train=train,
        test=test,
        content_hash=digest,
        file_hashes=hashes,
        rows_dropped=dropped,
        values_clipped=clipped,
    )


def load_adult() -> LoadedDataset:
    """The bundled UCI Adult data (Becker & Kohavi 1996, CC BY 4.0), hashes verified.

    Returns:
        30,162 train and 15,060 test rows after dropping rows with missing values.
    """
    return load_dataset(load_schema(ADULT_SCHEMA))
