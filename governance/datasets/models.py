"""Registered datasets: what was registered, by whom, and the hashes its data must still have.

A privacy ledger belongs to the rows, not to a name: every registration is placed in a
:class:`Ledger`, and every set of rows ever registered into it stays recorded there as a
:class:`LedgerRowset` (its row fingerprint), so a later registration of the same rows, under
any name, joins that ledger (see :mod:`governance.datasets.fingerprint`). Training runs charge
the ledger of their dataset (``governance.privacy.ledger``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column

from governance.db.base import Base, utcnow


class Ledger(Base):
    """One privacy budget, shared by every registration whose rows match its rowsets."""

    __tablename__ = "privacy_ledgers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The dataset name that opened it (a label for people; the rowsets are the key).
    opened_by: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when a registration showed it holds the same people as another ledger: its datasets
    # and rowsets moved there, and its runs are charged there. Never cleared.
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("privacy_ledgers.id"))


class LedgerRowset(Base):
    """Rows once registered into a ledger; kept when the dataset is replaced or renamed."""

    __tablename__ = "privacy_ledger_rowsets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("privacy_ledgers.id"), index=True)
    # sha256 over the sorted row digests: one fingerprint belongs to one ledger.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    rows: Mapped[int] = mapped_column(BigInteger)
    distinct_rows: Mapped[int] = mapped_column(BigInteger)
    # Sorted distinct 8-byte row-digest prefixes (little-endian), for subset/superset matching;
    # deferred: only a registration reads them.
    prefixes: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    dataset: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    # JSON {"<path as the schema names it>": "<sha256>"}: every load checks them.
    file_hashes: Mapped[str] = mapped_column(Text)
    # The schema document as JSON; its data paths are relative to ``base_dir``.
    schema: Mapped[str] = mapped_column(Text)
    base_dir: Mapped[str] = mapped_column(Text)
    privacy_unit: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    bundled: Mapped[bool] = mapped_column(Boolean, default=False)
    train_rows: Mapped[int] = mapped_column(BigInteger)
    test_rows: Mapped[int] = mapped_column(BigInteger)
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("privacy_ledgers.id"), index=True)
    # The current rows' fingerprint; None for a dataset registered before fingerprints existed
    # (migration 0008) until the next registration computes it.
    row_fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    # JSON {"<split>": {"<column>": count}} of values clipped to the schema's public bounds
    # (out_of_bounds: clip); None for a dataset registered before bounds were enforced.
    values_clipped: Mapped[str | None] = mapped_column(Text)
