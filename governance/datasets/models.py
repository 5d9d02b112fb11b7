"""Registered datasets: what was registered, by whom, and the hashes its data must still have."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base, utcnow


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
