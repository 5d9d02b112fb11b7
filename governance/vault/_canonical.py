"""Canonical, length-prefixed encoding of associated data (AAD) for AES-GCM.

Each field is its 4-byte big-endian length followed by its bytes, so no two different field
tuples encode to the same bytes: ``("ab", "c")`` and ``("a", "bc")`` differ. Every AAD starts
with a domain label, so an AAD built for one purpose (a wrapped key, a record) never equals
one built for another.
"""

from __future__ import annotations

import struct

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def text_field(value: str, *, name: str) -> bytes:
    """Encode a text field as length ‖ UTF-8.

    Raises:
        TypeError: ``value`` is not a str.
        ValueError: ``value`` is not encodable as UTF-8 (lone surrogates) or is too long.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        # Re-raised outside the handler: the original error would quote the field's text.
        raw = None
    if raw is None:
        raise ValueError(f"{name} is not valid Unicode text (lone surrogate)")
    return bytes_field(raw, name=name)


def bytes_field(value: bytes, *, name: str) -> bytes:
    """Encode a byte field as length ‖ bytes.

    Raises:
        ValueError: ``value`` is 4 GiB or longer.
    """
    if len(value) > 0xFFFFFFFF:
        raise ValueError(f"{name} is too long for the canonical encoding")
    return _U32.pack(len(value)) + value


def u64_field(value: int, *, name: str) -> bytes:
    """Encode an unsigned integer as 8 bytes, big-endian.

    Raises:
        TypeError: ``value`` is not an int (bool is refused too).
        ValueError: ``value`` is negative or does not fit in 64 bits.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"{name} must be between 0 and 2**64 - 1")
    return _U64.pack(value)
