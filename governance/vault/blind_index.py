"""Keyed one-way lookups: subject blind indexes and audit digests (HMAC-SHA256, hex).

A blind index lets the service find a data subject's records without storing the subject's id:
the same id always gives the same index, and without the key the index reveals nothing, not
even a guess checked against a list of ids. Audit entries hold keyed digests of inputs and
outputs for the same reason: a plain hash of a low-entropy input could be reversed by trying
candidates.

Each use has its own domain prefix and its own key, so a blind index can never equal a digest
even if the keys were mixed up::

    blind_index = HMAC-SHA256(blind_index_key, "warden.blind-index/1" ‖ 0x00 ‖ utf8(subject_id))
    digest      = HMAC-SHA256(digest_key,      "warden.digest/1" ‖ 0x00 ‖ data)

Subject ids are compared byte for byte after UTF-8 encoding: callers that accept ids in
several spellings (case, Unicode normalisation) must canonicalise them first.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["MIN_KEY_BYTES", "blind_index", "digest"]

MIN_KEY_BYTES = 32
_BLIND_INDEX_PREFIX = b"warden.blind-index/1\x00"
_DIGEST_PREFIX = b"warden.digest/1\x00"
_ONE_SHOT_MAX = 64 * 1024


def blind_index(key: bytes, subject_id: str) -> str:
    """The blind index of a data subject.

    Args:
        key: the blind-index key (``provider.blind_index_key()``), at least 32 bytes.
        subject_id: the subject's id.

    Returns:
        64 lowercase hex characters.

    Raises:
        ValueError: ``key`` is shorter than 32 bytes, or ``subject_id`` is empty or not valid
            Unicode.
        TypeError: ``subject_id`` is not a str.
    """
    _check_key(key)
    if not isinstance(subject_id, str):
        raise TypeError(f"subject_id must be a str, got {type(subject_id).__name__}")
    if not subject_id:
        raise ValueError("subject_id must not be empty")
    try:
        encoded = subject_id.encode("utf-8")
    except UnicodeEncodeError:
        encoded = None  # re-raised below: the original error would quote the subject id
    if encoded is None:
        raise ValueError("subject_id is not valid Unicode text (lone surrogate)")
    # hmac.digest: one call into OpenSSL, without building an HMAC object per lookup.
    return hmac.digest(key, _BLIND_INDEX_PREFIX + encoded, "sha256").hex()


def digest(key: bytes, data: bytes) -> str:
    """The keyed digest of an audited input or output.

    Args:
        key: the digest key (``provider.digest_key()``), at least 32 bytes.
        data: the bytes to digest (a canonical serialisation of the payload).

    Returns:
        64 lowercase hex characters.

    Raises:
        ValueError: ``key`` is shorter than 32 bytes.
        TypeError: ``data`` is not bytes-like.
    """
    _check_key(key)
    if len(data) <= _ONE_SHOT_MAX:
        # Small payloads (every prediction): one call into OpenSSL.
        return hmac.digest(key, _DIGEST_PREFIX + bytes(data), "sha256").hex()
    mac = hmac.new(key, _DIGEST_PREFIX, hashlib.sha256)
    mac.update(data)  # no copy of a large payload to prepend the prefix
    return mac.hexdigest()


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"an HMAC key must be at least {MIN_KEY_BYTES} bytes")
