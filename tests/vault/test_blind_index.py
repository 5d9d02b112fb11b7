"""Blind indexes and audit digests: keyed, deterministic, domain-separated."""

from __future__ import annotations

import hashlib
import hmac
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from governance.vault.blind_index import blind_index, digest

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
HEX64 = re.compile(r"[0-9a-f]{64}")


def test_blind_index_follows_the_documented_construction() -> None:
    expected = hmac.new(KEY, b"warden.blind-index/1\x00alice@example.org", hashlib.sha256)
    assert blind_index(KEY, "alice@example.org") == expected.hexdigest()
    # Pinned, so a change of construction cannot go unnoticed: it would orphan every subject.
    assert blind_index(KEY, "alice@example.org") == (
        "b612aff97adda6bea22a140f05132a969336eecb0a787f8dc7cfafff9cf7f509"
    )


def test_digest_follows_the_documented_construction() -> None:
    expected = hmac.new(KEY, b"warden.digest/1\x00" + b'{"age": 41}', hashlib.sha256)
    assert digest(KEY, b'{"age": 41}') == expected.hexdigest()
    assert digest(KEY, b'{"age": 41}') == (
        "b9fe8832a4576264282535c46b1eb652a957463adedc074b46542ef247942d01"
    )


def test_outputs_are_deterministic_lowercase_hex() -> None:
    assert blind_index(KEY, "s-1") == blind_index(KEY, "s-1")
    assert HEX64.fullmatch(blind_index(KEY, "s-1"))
    assert HEX64.fullmatch(digest(KEY, b""))


def test_key_matters() -> None:
    assert blind_index(KEY, "s-1") != blind_index(OTHER_KEY, "s-1")
    assert digest(KEY, b"x") != digest(OTHER_KEY, b"x")


def test_domains_are_separated() -> None:
    # Same key, same bytes: a blind index never equals a digest, nor a plain HMAC.
    assert blind_index(KEY, "s-1") != digest(KEY, b"s-1")
    assert blind_index(KEY, "s-1") != hmac.new(KEY, b"s-1", hashlib.sha256).hexdigest()


def test_unicode_subjects_are_exact_utf8() -> None:
    composed, decomposed = "Zo\u00eb", "Zoe\u0308"
    assert blind_index(KEY, composed) != blind_index(KEY, decomposed)
    assert blind_index(KEY, composed) == (
        hmac.new(KEY, b"warden.blind-index/1\x00" + composed.encode(), "sha256").hexdigest()
    )


def test_digest_of_large_input() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    expected = hmac.new(KEY, b"warden.digest/1\x00" + data, hashlib.sha256).hexdigest()
    assert digest(KEY, data) == expected
    assert digest(KEY, memoryview(data)) == expected


@pytest.mark.parametrize("key", [b"", b"k" * 31])
def test_short_keys_are_refused(key: bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        blind_index(key, "s-1")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        digest(key, b"x")


def test_bad_subject_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        blind_index(KEY, "")
    with pytest.raises(TypeError):
        blind_index(KEY, b"s-1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not valid Unicode") as caught:
        blind_index(KEY, "secret-\udc80")
    assert "secret" not in str(caught.value)
    assert caught.value.__context__ is None


@given(st.text(min_size=1), st.text(min_size=1))
def test_distinct_subjects_get_distinct_indexes(first: str, second: str) -> None:
    first_ok = not any(0xD800 <= ord(c) <= 0xDFFF for c in first)
    second_ok = not any(0xD800 <= ord(c) <= 0xDFFF for c in second)
    if not (first_ok and second_ok):
        return
    assert (blind_index(KEY, first) == blind_index(KEY, second)) == (first == second)


def test_digest_refuses_text() -> None:
    with pytest.raises(TypeError, match="bytes-like"):
        digest(KEY, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes-like"):
        digest(KEY, 16)  # type: ignore[arg-type]


def test_the_shared_keyed_state_is_never_consumed() -> None:
    """Each call starts from the key's absorbed state: calls from threads, interleaved across
    keys and domains, give the same digests as fresh HMACs."""
    messages = [f"m-{i}".encode() for i in range(200)]

    def fresh(key: bytes, message: bytes) -> str:
        return hmac.new(key, b"warden.digest/1\x00" + message, hashlib.sha256).hexdigest()

    expected = [(fresh(KEY, m), fresh(OTHER_KEY, m)) for m in messages]

    def work(_: int) -> list[tuple[str, str]]:
        out = []
        for m in messages:
            blind_index(KEY, m.decode())  # the other domain, in between
            out.append((digest(KEY, m), digest(bytearray(OTHER_KEY), m)))
        return out

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(8)))
    assert all(r == expected for r in results)
