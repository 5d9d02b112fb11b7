"""What a server process holds about anchoring: the rows it refused, and the keys it checked.

A row that grants power is used only when an audit entry anchors it (governance/audit/
anchors.py). When a load finds one that is not, the process keeps its last good state, logs
the mismatch and reports it here, and ``/readyz`` answers not ready until the row is anchored
or gone. API keys are checked once per key and content and remembered, so authentication pays
for the check only on the first lookup after start or after an identity change.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session

from governance.identity import anchor as key_anchor
from governance.identity.models import ApiKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "api_key:"
# Bounded like the auth cache; past it the oldest checked key is checked again on next use.
_KEYS_MAX = 100_000


class Anchoring:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._problems: dict[str, str] = {}
        self._keys: dict[str, str] = {}  # key_id -> the content hash found anchored

    def report(self, ref: str, problem: str) -> None:
        """Record that the row ``ref`` is not anchored (logged once per distinct problem)."""
        with self._lock:
            known = self._problems.get(ref)
            self._problems[ref] = problem
        if known != problem:
            logger.error("%s; it is not used", problem)

    def resolve(self, ref: str) -> None:
        with self._lock:
            self._problems.pop(ref, None)

    def problem(self) -> str | None:
        """The first unanchored row's problem, for readiness; None when every load was good."""
        with self._lock:
            if not self._problems:
                return None
            first = min(self._problems)
            more = len(self._problems) - 1
            return self._problems[first] + (f" (and {more} more)" if more else "")

    def key_anchored(self, session: Session, key: ApiKey) -> bool:
        """Whether ``key`` may authenticate: its stored content is what the log recorded."""
        expected = key_anchor.row_hash(key)
        with self._lock:
            if self._keys.get(key.key_id) == expected:
                return True
        problem = key_anchor.problem(session, key)
        if problem is not None:
            self.report(KEY_PREFIX + key.key_id, problem)
            return False
        with self._lock:
            if len(self._keys) >= _KEYS_MAX:
                self._keys.pop(next(iter(self._keys)))
            self._keys[key.key_id] = expected
        return True

    def forget_keys(self) -> None:
        """Drop what was learnt about keys (an identity change: a revocation, say)."""
        with self._lock:
            self._keys.clear()
            for ref in [r for r in self._problems if r.startswith(KEY_PREFIX)]:
                del self._problems[ref]
