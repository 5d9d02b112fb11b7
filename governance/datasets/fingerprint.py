"""Row fingerprints: which registrations hold the same rows, whatever their bytes.

A privacy ledger belongs to the people in the data, not to a name or a file's bytes: a copy
of a spent dataset re-encoded (rows reordered, other line endings, quoting, whitespace, column
order or names, ``39`` for ``39.0``, gzip or not) must not open a fresh budget. So the ledger
is keyed by a fingerprint of the rows as the schema parsed them, not of the files.

**A row's canonical encoding** is what training reads of it: each feature as a typed token
(``n:<repr of the float64>`` for a numeric one, ``c:<stripped text>`` for a categorical one)
and the label as ``y:1`` or ``y:0`` (positive or negative, whatever the label's words). The
tokens are sorted, so neither column order nor column names enter, and joined by newlines (a
categorical value's backslashes and newlines are escaped first, so no value can make two rows
encode alike). Rows from every split count (train and
test), so merging or re-splitting the files does not change the fingerprint. Sensitive
attributes that are not features are left out: training does not read them.

**The dataset's fingerprint** is the sha256 of the sorted list of the rows' sha256 digests:
the sorted list is a canonical, injective encoding of the rows' multiset, so two datasets share
a fingerprint exactly when they hold the same rows the same number of times (up to sha256
collisions), independent of the order they come in.

**Overlap.** The fingerprint also keeps the sorted distinct 64-bit prefixes of the row
digests, so that a registration holding a subset or a superset of a spent dataset's rows can be
recognised (:func:`overlap`). A chance collision of two prefixes needs about 2^32 rows per side
and could only join two ledgers, never split one.

Limits: a copy whose values were changed (noise added, a column dropped or added, values
rounded) holds other rows and gets its own fingerprint; this recognises copies, not
transformations of the data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from governance.datasets.declaration import DatasetSchema

if TYPE_CHECKING:
    from governance.datasets.tabular import LoadedDataset, TabularSplit

_DOMAIN = b"warden.rows/1\n"
# Stored little-endian whatever the machine, so a blob written on one reads the same anywhere.
_PREFIX_DTYPE = np.dtype("<u8")


@dataclass(frozen=True)
class RowFingerprint:
    """A dataset's rows, fingerprinted.

    Attributes:
        digest: sha256 (hex) of the sorted per-row sha256 digests (the rows' multiset).
        rows: how many rows (duplicates counted).
        prefixes: the sorted distinct first 8 bytes of the row digests, as uint64.
    """

    digest: str
    rows: int
    prefixes: np.ndarray

    @property
    def distinct(self) -> int:
        return int(self.prefixes.size)

    def packed(self) -> bytes:
        """The prefixes as bytes (8 per distinct row, little-endian), for storage."""
        return self.prefixes.astype(_PREFIX_DTYPE).tobytes()


def unpack(blob: bytes) -> np.ndarray:
    """Prefixes stored by :meth:`RowFingerprint.packed`, as a sorted uint64 array."""
    return np.frombuffer(blob, dtype=_PREFIX_DTYPE).astype(np.uint64)


def _number(value: float) -> str:
    # repr is the shortest text that reads back as the same float64; + 0.0 turns -0.0 into 0.0.
    return "n:" + repr(float(value) + 0.0)


def _text(value: object) -> str:
    # Escaped so that the newline joining a row's tokens never occurs inside one.
    return "c:" + str(value).strip().replace("\\", "\\\\").replace("\n", "\\n")


def _split_rows(schema: DatasetSchema, split: TabularSplit) -> Iterable[bytes]:
    columns: list[list[str]] = []
    for spec in schema.features:
        col = split.features[spec.name]
        if spec.type == "numeric":
            columns.append([_number(v) for v in col.to_numpy(dtype=np.float64).tolist()])
        else:
            columns.append([_text(v) for v in col.tolist()])
    columns.append(["y:1" if y else "y:0" for y in split.labels.tolist()])
    for tokens in zip(*columns, strict=True):
        yield hashlib.sha256("\n".join(sorted(tokens)).encode("utf-8")).digest()


def fingerprint_rows(loaded: LoadedDataset) -> RowFingerprint:
    """Fingerprint a loaded dataset's rows (train and test together).

    Args:
        loaded: the dataset as :func:`~governance.datasets.tabular.load_dataset` parsed it.

    Returns:
        Its row fingerprint.
    """
    digests = [
        d for split in (loaded.train, loaded.test) for d in _split_rows(loaded.schema, split)
    ]
    digests.sort()
    whole = hashlib.sha256(_DOMAIN)
    for d in digests:
        whole.update(d)
    prefixes = np.unique(
        np.frombuffer(b"".join(d[:8] for d in digests), dtype=np.dtype(">u8")).astype(np.uint64)
    )
    return RowFingerprint(digest=whole.hexdigest(), rows=len(digests), prefixes=prefixes)


def overlap(a: np.ndarray, b: np.ndarray) -> int:
    """How many distinct rows two prefix arrays (see :func:`unpack`) have in common."""
    return int(np.intersect1d(a, b, assume_unique=True).size)
