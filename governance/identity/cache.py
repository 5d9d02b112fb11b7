"""A short-lived, bounded cache of successful API key lookups for the hot path.

Only keys that authenticated are cached, so unknown or forged tokens cannot grow it. Entries
expire after ``ttl`` seconds and the whole cache is dropped whenever the identity counter moves
(a revocation or disable anywhere): in this process at once, in others within the poll period.

A miss is looked up once however many requests want the same key at that moment
(:meth:`AuthCache.get_or_fetch`): an entry expires under load with dozens of requests for its
key in flight, and each of them would otherwise send its own query.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CachedIdentity:
    principal_id: int
    name: str
    key_id: str
    expires_at: datetime | None
    # How the caller proved who they are: "api_key", or "session" (a signed-in person's cookie).
    method: str = "api_key"


Fetch = Callable[[], Awaitable[CachedIdentity | None]]


class AuthCache:
    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self._ttl = ttl
        self._size = size
        self._items: OrderedDict[str, tuple[float, CachedIdentity]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by clear(): a lookup that began before a revocation must not cache its answer.
        self._generation = 0
        self._flights: dict[str, asyncio.Task[CachedIdentity | None]] = {}

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

    def _put_locked(self, token_hash: str, ident: CachedIdentity) -> None:
        if self._ttl <= 0:
            return
        self._items[token_hash] = (time.monotonic(), ident)
        self._items.move_to_end(token_hash)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._items.clear()

    async def get_or_fetch(self, token_hash: str, fetch: Fetch) -> CachedIdentity | None:
        """The cached identity for ``token_hash``, else what ``fetch()`` finds (then cached).

        Concurrent misses for one key on one event loop await a single ``fetch``; its error, if
        it fails, reaches each of them. A request cancelled meanwhile does not cancel the lookup
        the others wait for. A lookup that began before a :meth:`clear` is not cached (its
        answer may predate the revocation that cleared the cache), though it is still returned
        to its waiters, as it would have been without the cache.
        """
        hit = self.get(token_hash)
        if hit is not None:
            return hit
        loop = asyncio.get_running_loop()
        with self._lock:
            flight = self._flights.get(token_hash)
            if flight is None or flight.get_loop() is not loop:
                flight = loop.create_task(self._fetch(token_hash, fetch, self._generation))
                # Its error is retrieved even if every waiter was cancelled.
                flight.add_done_callback(_retrieve)
                self._flights[token_hash] = flight
        return await asyncio.shield(flight)

    async def _fetch(self, token_hash: str, fetch: Fetch, generation: int) -> CachedIdentity | None:
        try:
            ident = await fetch()
        finally:
            with self._lock:
                if self._flights.get(token_hash) is asyncio.current_task():
                    del self._flights[token_hash]
        if ident is not None:
            with self._lock:
                if generation == self._generation:
                    self._put_locked(token_hash, ident)
        return ident


def _retrieve(task: asyncio.Task[CachedIdentity | None]) -> None:
    if not task.cancelled():
        task.exception()
