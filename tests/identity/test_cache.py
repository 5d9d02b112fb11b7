"""The API key cache: bounded, expiring, and one lookup per key however many requests miss."""

from __future__ import annotations

import asyncio

import pytest

from governance.identity.cache import AuthCache, CachedIdentity

IDENT = CachedIdentity(principal_id=7, name="svc", key_id="k1", expires_at=None)


class CountingFetch:
    """A lookup that takes ``delay`` seconds, answers ``result`` and counts its calls."""

    def __init__(self, result: CachedIdentity | None = IDENT, delay: float = 0.05) -> None:
        self.result = result
        self.delay = delay
        self.calls = 0
        self.error: Exception | None = None

    async def __call__(self) -> CachedIdentity | None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.result


def test_concurrent_misses_share_one_lookup_and_cache_its_answer() -> None:
    async def scenario() -> None:
        cache, fetch = AuthCache(ttl=60), CountingFetch()
        found = await asyncio.gather(*(cache.get_or_fetch("h", fetch) for _ in range(32)))
        assert found == [IDENT] * 32
        assert fetch.calls == 1
        assert cache.get("h") == IDENT
        assert await cache.get_or_fetch("h", fetch) == IDENT
        assert fetch.calls == 1

    asyncio.run(scenario())


def test_an_expired_entry_is_looked_up_again_once() -> None:
    async def scenario() -> None:
        cache, fetch = AuthCache(ttl=0.05), CountingFetch(delay=0.01)
        await cache.get_or_fetch("h", fetch)
        await asyncio.sleep(0.1)
        assert cache.get("h") is None
        await asyncio.gather(*(cache.get_or_fetch("h", fetch) for _ in range(10)))
        assert fetch.calls == 2

    asyncio.run(scenario())


def test_an_unknown_key_is_answered_to_every_waiter_but_never_cached() -> None:
    async def scenario() -> None:
        cache, fetch = AuthCache(ttl=60), CountingFetch(result=None)
        found = await asyncio.gather(*(cache.get_or_fetch("forged", fetch) for _ in range(5)))
        assert found == [None] * 5
        assert fetch.calls == 1
        await cache.get_or_fetch("forged", fetch)
        assert fetch.calls == 2

    asyncio.run(scenario())


def test_a_failed_lookup_fails_every_waiter_and_the_next_miss_tries_again() -> None:
    async def scenario() -> None:
        cache, fetch = AuthCache(ttl=60), CountingFetch()
        fetch.error = ConnectionError("database down")
        results = await asyncio.gather(
            *(cache.get_or_fetch("h", fetch) for _ in range(4)), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionError) for r in results)
        assert fetch.calls == 1
        fetch.error = None
        assert await cache.get_or_fetch("h", fetch) == IDENT
        assert fetch.calls == 2

    asyncio.run(scenario())


def test_a_cancelled_request_does_not_cancel_the_lookup_others_wait_for() -> None:
    async def scenario() -> None:
        cache, fetch = AuthCache(ttl=60), CountingFetch(delay=0.1)
        first = asyncio.ensure_future(cache.get_or_fetch("h", fetch))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(cache.get_or_fetch("h", fetch))
        await asyncio.sleep(0.01)
        first.cancel()
        assert await second == IDENT
        with pytest.raises(asyncio.CancelledError):
            await first
        assert fetch.calls == 1
        assert cache.get("h") == IDENT

    asyncio.run(scenario())


def test_a_lookup_that_began_before_a_clear_is_not_cached() -> None:
    # clear() is what a revocation does: an answer read before it may be the revoked key's.
    async def scenario() -> None:
        cache, fetch = AuthCache(ttl=60), CountingFetch(delay=0.05)
        pending = asyncio.ensure_future(cache.get_or_fetch("h", fetch))
        await asyncio.sleep(0.01)
        cache.clear()
        assert await pending == IDENT
        assert cache.get("h") is None

    asyncio.run(scenario())


def test_the_cache_stays_within_its_size() -> None:
    async def scenario() -> None:
        cache, fetch = AuthCache(ttl=60, size=3), CountingFetch(delay=0)
        for n in range(10):
            await cache.get_or_fetch(f"h{n}", fetch)
        assert [cache.get(f"h{n}") for n in range(10)] == [None] * 7 + [IDENT] * 3

    asyncio.run(scenario())


def test_a_zero_ttl_caches_nothing() -> None:
    async def scenario() -> None:
        cache, fetch = AuthCache(ttl=0), CountingFetch(delay=0)
        assert await cache.get_or_fetch("h", fetch) == IDENT
        assert await cache.get_or_fetch("h", fetch) == IDENT
        assert fetch.calls == 2

    asyncio.run(scenario())
