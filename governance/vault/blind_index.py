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

Subjects are scoped (:func:`subject_index`): the same subject id sent by two client principals
is two subjects, unless an officer put both clients in one shared namespace. The scope is
length-prefixed, so no (scope, id) pair encodes like another, and the domain differs from the
unscoped index that records made before scoping (migration 0010) still carry::

    subject_index = HMAC-SHA256(blind_index_key, "warden.blind-index/2" ‖ 0x00 ‖
                                u16be(len(utf8(scope))) ‖ utf8(scope) ‖ utf8(subject_id))

Subject ids are compared byte for byte after UTF-8 encoding: callers that accept ids in
several spellings (case, Unicode normalisation) must canonicalise them first.

Both run on the predict path's event loop, three times a request. ``hmac.digest`` releases the
GIL around every call, and the loop then waits behind busy threads to take it back. So each
(key, domain) pair gets an HMAC object that has absorbed the key and the prefix once; copying
it and feeding a message under 2 KiB keeps the GIL.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

__all__ = ["MIN_KEY_BYTES", "blind_index", "digest", "subject_index"]

MIN_KEY_BYTES = 32
_BLIND_INDEX_PREFIX = b"warden.blind-index/1\x00"
_DIGEST_PREFIX = b"warden.digest/1\x00"
_SCOPED_PREFIX = b"warden.blind-index/2\x00"


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
    return _mac(bytes(key), _BLIND_INDEX_PREFIX, encoded)


def subject_index(key: bytes, scope: str, subject_id: str) -> str:
    """The blind index of a data subject within a scope (a client's, or a shared namespace).

    Args:
        key: the blind-index key, at least 32 bytes.
        scope: the scope's label (``client:<principal>`` or ``shared:<namespace>``).
        subject_id: the subject's id, as the client sent it.

    Returns:
        64 lowercase hex characters, never equal to an unscoped :func:`blind_index`.

    Raises:
        ValueError: as :func:`blind_index`; or the scope is empty or longer than 1,024 bytes.
        TypeError: ``scope`` or ``subject_id`` is not a str.
    """
    _check_key(key)
    encoded = _text(subject_id, "subject_id")
    label = _text(scope, "scope")
    if len(label) > 1024:
        raise ValueError("scope is longer than 1024 bytes")
    return _mac(bytes(key), _SCOPED_PREFIX, len(label).to_bytes(2, "big") + label + encoded)


def _text(value: str, name: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        pass  # raised below: the original error would quote the value
    raise ValueError(f"{name} is not valid Unicode text (lone surrogate)")


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
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    return _mac(bytes(key), _DIGEST_PREFIX, data)


def _mac(key: bytes, prefix: bytes, message: bytes | bytearray | memoryview) -> str:
    mac = _keyed(key, prefix).copy()
    mac.update(message)
    return mac.hexdigest()


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes, prefix: bytes) -> hmac.HMAC:
    """An HMAC that has absorbed ``key`` and ``prefix``; callers copy it, never update it.

    A handful of keys live in a process (the blind-index and digest keys); old ones age out.
    """
    return hmac.new(key, prefix, hashlib.sha256)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"an HMAC key must be at least {MIN_KEY_BYTES} bytes")
