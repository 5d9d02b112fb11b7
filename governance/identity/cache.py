"""A short-lived, bounded cache of successful API key lookups for the hot path.

Only keys that authenticated are cached, so unknown or forged tokens cannot grow it. Entries
expire after ``ttl`` seconds and the whole cache is dropped whenever the identity counter moves
(a revocation or disable anywhere): in this process at once, in others within the poll period.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CachedIdentity:
    principal_id: int
    name: str
    key_id: str
    expires_at: datetime | None


class AuthCache:
    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self._ttl = ttl
        self._size = size
        self._items: OrderedDict[str, tuple[float, CachedIdentity]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> CachedIdentity | None:
        if self._ttl <= 0:
            return None
        with self._lock:
            hit = self._items.get(token_hash)
            if hit is None:
                return None
            stamp, ident = hit
            if time.monotonic() - stamp > self._ttl:
                del self._items[token_hash]
                return None
            return ident

    def put(self, token_hash: str, ident: CachedIdentity) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._items[token_hash] = (time.monotonic(), ident)
            self._items.move_to_end(token_hash)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
