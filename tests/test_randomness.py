"""Identifiers and nonces drawn from the block-buffered CSPRNG."""

from __future__ import annotations

import os
import time

import pytest

from governance.randomness import random_bytes, random_hex, sortable_hex


def test_draws_have_the_asked_length_and_never_repeat() -> None:
    # Enough draws to cross several 4 KiB block boundaries.
    draws = [random_bytes(12) for _ in range(2_000)]
    assert all(len(d) == 12 for d in draws)
    assert len(set(draws)) == len(draws)
    ids = {random_hex() for _ in range(1_000)}
    assert len(ids) == 1_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_sortable_ids_are_unique_and_ordered_by_time() -> None:
    before = time.time_ns() // 1_000_000
    first = [sortable_hex() for _ in range(1_000)]
    newest_ms = int(max(first)[:12], 16)
    deadline = time.monotonic() + 5
    while time.time_ns() // 1_000_000 <= newest_ms:  # until a later millisecond begins
        assert time.monotonic() < deadline
        time.sleep(0.0002)
    later = sortable_hex()
    after = time.time_ns() // 1_000_000
    assert len(set(first)) == len(first)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in [*first, later])
    # The first 12 digits are the creation time in ms: ids of later milliseconds sort after.
    assert all(before <= int(i[:12], 16) <= after for i in [*first, later])
    assert later > max(first)
    # The rest is random: ids of the same millisecond differ there.
    same_ms = [i for i in first if i[:12] == first[0][:12]]
    assert len({i[12:] for i in same_ms}) == len(same_ms)


@pytest.mark.parametrize("n", [0, -1, 4097])
def test_refuses_sizes_outside_one_block(n: int) -> None:
    with pytest.raises(ValueError):
        random_bytes(n)


def test_a_forked_child_never_hands_out_the_parents_bytes() -> None:
    random_bytes(1)  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, random_bytes(64))
        os._exit(0)
    os.close(write)
    child = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    parent = random_bytes(64)
    assert len(child) == 64
    assert child != parent
