"""A clock that tests move by hand, for product code that takes an injectable clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from governance.db.base import utcnow


class SteppedClock:
    """Monotonic seconds and a UTC time that move together, only when ``advance`` is called."""

    def __init__(self) -> None:
        self._start = utcnow()
        self._seconds = 0.0

    def monotonic(self) -> float:
        return self._seconds

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._seconds)

    def advance(self, seconds: float) -> None:
        self._seconds += seconds
