"""The shared request counters (migration 0009)."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base


class RateCounter(Base):
    """How many requests one key made in one window, summed over every server process."""

    __tablename__ = "rate_counters"

    # HMAC-SHA256 (the digest key) of the limit and the address or principal: never in clear.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    expires: Mapped[int] = mapped_column(BigInteger, index=True)
