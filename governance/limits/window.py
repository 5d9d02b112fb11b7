"""A sliding-window request limit whose counts are shared through the database.

Time is cut into fixed windows of ``per_seconds`` (aligned on the epoch, so every process cuts
them alike). A subject's rate is estimated as the previous window's count, weighted by how much
of it still lies within the last ``per_seconds``, plus the current window's count; a request is
taken while that estimate is under the limit (the sliding window of Cloudflare's limiter, which
does not let a burst through at each window's edge as a fixed window would). A request is taken
only if it does not carry the estimate past the limit.

Each process keeps its own view of every subject it has seen lately. The counts are summed by
the database (:mod:`governance.limits.store`), in one of two ways:

- :meth:`SharedWindow.take_shared` adds each request to the database as it is taken and judges
  it by the total: exact across processes, one round trip per request. For rare and costly
  requests (failed authentication, heavy jobs). Once a subject is over, its further requests
  are refused from the local view without a round trip.
- :meth:`SharedWindow.take` judges from the local view and counts locally; :meth:`sync` (every
  fraction of a second, on a thread) adds the local counts to the database and reads back the
  totals. For the hot path (predictions): no request waits for the database, and the limit
  holds across ``n`` processes up to what the other processes take in one sync period.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from governance.limits import store
from governance.limits.policy import Limit
from governance.vault.blind_index import digest

_KEY_CONTEXT = b"warden.limits/1\x00"
# Subjects a process follows at once. Past it, a new subject (an address never seen, from a
# botnet say) is judged by the database alone, without a slot to remember it by.
MAX_SUBJECTS = 100_000
# Float slack when an estimate is compared with the limit: 5 * (1 - 12/60) is 4.000000001.
_EPSILON = 1e-6


@dataclass
class _Slot:
    """One subject's counts, as this process knows them."""

    key: str  # the keyed digest the database row is stored under
    window: int  # index of the current window (start: window * per_seconds)
    shared: int = 0  # the database's total for the window when last read (own counts in it)
    pending: int = 0  # own counts not yet added to the database
    prev: int = 0  # the previous window's total
    prev_stale: bool = True  # whether ``prev`` may miss other processes' counts


class SharedWindow:
    """One limit over many subjects (addresses or principals).

    Args:
        name: the limit's name (``failed_auth``, ``predict``, ``jobs``), part of the row key.
        limit: requests per window.
        digest_key: the deployment's digest key; rows are keyed by an HMAC, never a subject.
        sessions: sessions on the shared database.
        clock: seconds since the epoch (``time.time``; tests inject their own).
    """

    def __init__(
        self,
        name: str,
        limit: Limit,
        *,
        digest_key: bytes,
        sessions: sessionmaker[Session],
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.limit = limit
        self._digest_key = digest_key
        self._sessions = sessions
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        # Counts of windows that ended before they reached the database: (key, window, n).
        self._carry: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()

    # -- judging -----------------------------------------------------------------------------

    def _row_key(self, subject: str) -> str:
        label = f"{self.name}\x00{self.limit.per_seconds}\x00{subject}".encode()
        return digest(self._digest_key, _KEY_CONTEXT + label)

    def _slot(self, subject: str, window: int) -> _Slot:
        """The subject's slot, rolled forward to ``window`` (call with the lock held)."""
        slot = self._slots.get(subject)
        if slot is None:
            slot = self._slots[subject] = _Slot(key=self._row_key(subject), window=window)
            return slot
        if slot.window < window:
            if slot.pending:
                self._carry.append((slot.key, slot.window, slot.pending))
            last = slot.shared + slot.pending
            slot.prev = last if slot.window == window - 1 else 0
            slot.prev_stale = True
            slot.window, slot.shared, slot.pending = window, 0, 0
        return slot

    def _estimate(self, slot: _Slot, now: float) -> float:
        per = self.limit.per_seconds
        elapsed = now / per - slot.window  # the fraction of the current window gone by
        return slot.prev * max(0.0, 1.0 - elapsed) + slot.shared + slot.pending

    def _full(self, slot: _Slot, now: float) -> bool:
        """Whether one more request would carry the estimate past the limit."""
        return self._estimate(slot, now) + 1 > self.limit.requests + _EPSILON

    def retry_after(self, slot: _Slot, now: float) -> int:
        """Whole seconds until one more request fits under the limit (at least 1)."""
        per = self.limit.per_seconds
        room = self.limit.requests - 1  # what the estimate may be before one more
        elapsed = now / per - slot.window
        current = slot.shared + slot.pending
        if current <= room and slot.prev > 0:
            # Within this window, as the previous one slides out: prev * (1 - f) + current <= room.
            wait = (1.0 - (room - current) / slot.prev - elapsed) * per
        else:
            # Once this window is the previous one: current * (1 - f) <= room.
            wait = (1.0 - elapsed) * per + max(0.0, 1.0 - room / max(current, 1)) * per
        return max(1, math.ceil(wait - 1e-3))  # float noise, not a second more

    @property
    def watching(self) -> bool:
        """Whether any subject has been seen lately (else :meth:`over` is None for all)."""
        return bool(self._slots)

    def over(self, subject: str) -> int | None:
        """Seconds to wait if ``subject`` is at its limit now, else None; counts nothing.

        Lock-free and without the database: a dictionary lookup for a subject seen lately.
        """
        if not self._slots:
            return None
        slot = self._slots.get(subject)
        if slot is None:
            return None
        now = self._clock()
        with self._lock:
            slot = self._slot(subject, int(now // self.limit.per_seconds))
            return self.retry_after(slot, now) if self._full(slot, now) else None

    def take(self, subject: str) -> int | None:
        """Count one request judged from the local view: None if taken, else seconds to wait."""
        now = self._clock()
        with self._lock:
            slot = self._slot(subject, int(now // self.limit.per_seconds))
            if self._full(slot, now):
                return self.retry_after(slot, now)
            slot.pending += 1
            return None

    def take_shared(self, subject: str) -> int | None:
        """Count one request in the database and judge it by the total (blocking: a thread).

        Returns:
            None if taken, else seconds to wait. A subject already over is refused from the
            local view; if the database cannot be reached, the request is counted and judged
            locally (the limit then holds per process) and added at the next sync.
        """
        now = self._clock()
        per = self.limit.per_seconds
        window = int(now // per)
        with self._lock:
            followed = subject in self._slots or len(self._slots) < MAX_SUBJECTS
            if followed:
                slot = self._slot(subject, window)
                if self._full(slot, now):
                    return self.retry_after(slot, now)
                key, read_prev = slot.key, slot.prev_stale
        if not followed:
            return self._take_unfollowed(subject, now, window)
        try:
            with self._sessions.begin() as session:
                total = store.add(session, key, window * per, 1, self._expires(window))
                prev = store.count(session, key, (window - 1) * per) if read_prev else None
        except Exception:
            total, prev = None, None
        with self._lock:
            slot = self._slot(subject, window)
            if slot.window == window:
                if total is None:
                    slot.pending += 1
                else:
                    slot.shared = max(slot.shared, total)
                if prev is not None:
                    slot.prev, slot.prev_stale = max(slot.prev, prev), False
            # This request is in the total now: taken if the total is within the limit.
            if self._estimate(slot, now) > self.limit.requests + _EPSILON:
                return self.retry_after(slot, now)
            return None

    def _take_unfollowed(self, subject: str, now: float, window: int) -> int | None:
        """:meth:`take_shared` for a subject this process has no room to follow.

        Refused if the database cannot be reached: nothing would count it.
        """
        per = self.limit.per_seconds
        slot = _Slot(key=self._row_key(subject), window=window)
        try:
            with self._sessions.begin() as session:
                slot.shared = store.add(session, slot.key, window * per, 1, self._expires(window))
                slot.prev = store.count(session, slot.key, (window - 1) * per)
        except Exception:
            return self.retry_after(slot, now)
        if self._estimate(slot, now) > self.limit.requests + _EPSILON:
            return self.retry_after(slot, now)
        return None

    def _expires(self, window: int) -> int:
        # Read as the previous window during the next one; no longer after that.
        return (window + 3) * self.limit.per_seconds

    # -- syncing -----------------------------------------------------------------------------

    def sync(self) -> None:
        """Add the local counts to the database, read back the totals, forget idle subjects.

        Counts taken from the slots are given back if the transaction fails, so a database
        outage delays counts and loses none.

        Raises:
            Exception: the database's error, after the counts were given back.
        """
        now = self._clock()
        per = self.limit.per_seconds
        window = int(now // per)
        work: list[tuple[str, str, int, bool]] = []  # subject, key, pending, read prev
        with self._lock:
            for subject, slot in list(self._slots.items()):
                if slot.window < window - 1:
                    # Idle for a whole window: nothing left to judge by.
                    if slot.pending:
                        self._carry.append((slot.key, slot.window, slot.pending))
                    del self._slots[subject]
                    continue
                self._slot(subject, window)
                # Active in this window, or the previous one still to be read: its totals are
                # read back, so that this process learns what the others took.
                if slot.pending or slot.shared or slot.prev_stale:
                    work.append((subject, slot.key, slot.pending, slot.prev_stale))
                    # Counted as shared while the transaction runs, so a request judged
                    # meanwhile still sees them (the read-back total includes them).
                    slot.shared += slot.pending
                    slot.pending = 0
            carry, self._carry = self._carry, []
        if not carry and not work:
            return
        start, before = window * per, (window - 1) * per
        try:
            with self._sessions.begin() as session:
                for key, carried_window, n in carry:
                    store.add(session, key, carried_window * per, n, self._expires(carried_window))
                for _, key, n, _ in work:
                    if n:
                        store.add(session, key, start, n, self._expires(window))
                totals = store.counts(session, [key for _, key, _, _ in work], (start, before))
        except Exception:
            self._give_back(carry, work, window)
            raise
        with self._lock:
            for subject, key, _, read_prev in work:
                found = self._slots.get(subject)
                if found is None or found.window != window:
                    continue
                found.shared = max(found.shared, totals.get((key, start), 0))
                if read_prev:
                    found.prev = max(found.prev, totals.get((key, before), 0))
                    found.prev_stale = False

    def _give_back(
        self, carry: list[tuple[str, int, int]], work: list[tuple[str, str, int, bool]], window: int
    ) -> None:
        with self._lock:
            self._carry.extend(carry)
            for subject, key, n, _ in work:
                slot = self._slots.get(subject)
                if slot is not None and slot.window == window:
                    slot.shared -= n
                    slot.pending += n
                elif n:
                    self._carry.append((key, window, n))
