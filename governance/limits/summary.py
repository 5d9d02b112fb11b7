"""Refusals summarised: one audit entry per source and window, with a count.

An address that sends a thousand wrong keys, or a principal that goes on past its limit, would
otherwise write a thousand entries: the audit log itself becomes the target. The first refusal
(401 or 429) from a source in a window is audited in full, as any call; the further ones are
counted here, and one ``api.refusals`` entry with the counts is written once the window has
closed (by the limits' sync thread) or when the server stops. A 403, the policy's denial of an
authenticated caller, is never summarised: each stays one entry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from governance.kit.events import Actor, AuditEvent, Source

SUMMARY_EVENT = "api.refusals"
# Sources followed at once; past it, further refusals from new sources are audited in full
# (bounded memory, and nothing goes unrecorded).
MAX_SOURCES = 100_000


@dataclass
class _Tally:
    window: int
    per_seconds: int
    actor: Actor
    source: Source
    by_status: dict[int, int] = field(default_factory=dict)


class RefusalSummaries:
    """Counts of refusals by (limit, source) and window; thread-safe.

    Args:
        clock: seconds since the epoch (``time.time``; tests inject their own).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._closed: list[AuditEvent] = []
        self._lock = threading.Lock()

    def note(
        self,
        limit: str,
        subject: str,
        *,
        status: int,
        per_seconds: int,
        actor: Actor,
        source: Source,
    ) -> bool:
        """Note a refusal of ``subject`` under ``limit``.

        Returns:
            True if it is the first in its window (audit it in full), False if it was counted
            for the window's summary (do not audit it on its own).
        """
        window = int(self._clock() // per_seconds)
        key = (limit, subject)
        with self._lock:
            tally = self._tallies.get(key)
            if tally is not None and tally.window == window:
                tally.by_status[status] = tally.by_status.get(status, 0) + 1
                return False
            if tally is not None:
                self._close(key, tally)
            if len(self._tallies) >= MAX_SOURCES:
                return True
            self._tallies[key] = _Tally(window, per_seconds, actor, source)
            return True

    def _close(self, key: tuple[str, str], tally: _Tally) -> None:
        del self._tallies[key]
        if tally.by_status:
            self._closed.append(_event(key[0], tally))

    def take_due(self, *, everything: bool = False) -> list[AuditEvent]:
        """The summaries of closed windows (of every window, at stop), each handed out once."""
        now = self._clock()
        with self._lock:
            for key, tally in list(self._tallies.items()):
                if everything or (tally.window + 1) * tally.per_seconds <= now:
                    self._close(key, tally)
            due, self._closed = self._closed, []
        return due

    def give_back(self, events: list[AuditEvent]) -> None:
        """Summaries that could not be written: written with the next ones."""
        with self._lock:
            self._closed[0:0] = events


def _event(limit: str, tally: _Tally) -> AuditEvent:
    start = tally.window * tally.per_seconds
    count = sum(tally.by_status.values())
    statuses = {str(s): n for s, n in sorted(tally.by_status.items())}
    return AuditEvent(
        event_type=SUMMARY_EVENT,
        action=f"summary {limit}",
        actor=tally.actor,
        source=tally.source,
        resource={"limit": limit},
        decision="deny",
        reason=f"{count} further refusals from this source in the window, not audited one by one",
        outcome=429 if 429 in tally.by_status else max(tally.by_status),
        details={
            "count": count,
            "by_status": statuses,
            "window_start": _iso(start),
            "window_end": _iso(start + tally.per_seconds),
        },
    )


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
