"""Random identifiers and nonces from the OS CSPRNG, drawn a block at a time.

Every ``os.urandom`` call releases and retakes the GIL around its system call, and a prediction
needs three draws (request id, record id, AES-GCM nonce): each time, the event loop can lose
the GIL to the audit writer or the batcher and wait for it back. Drawing 4 KiB at once and
handing out slices costs one system call per hundred-odd requests, with the same bytes.

The pool is only for values that are public once used: identifiers and nonces. Keys (DEKs,
KEKs, API keys) and DP mechanism seeds are drawn with ``os.urandom``/``secrets`` directly, so
no secret sits in this buffer. A forked child starts with an empty buffer, so parent and child
never hand out the same bytes.
"""

from __future__ import annotations

import os
import secrets
import threading
import time

_BLOCK = 4096


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._position = 0

    def take(self, n: int) -> bytes:
        if not 0 < n <= _BLOCK:
            raise ValueError(f"draw between 1 and {_BLOCK} bytes, not {n}")
        with self._lock:
            if self._position + n > len(self._buffer):
                self._buffer = os.urandom(_BLOCK)
                self._position = 0
            start = self._position
            self._position = start + n
            return self._buffer[start : start + n]

    def reset(self) -> None:
        # After a fork, under a fresh lock: the parent's could have been held mid-draw.
        self._lock = threading.Lock()
        self._buffer = b""
        self._position = 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.reset)


def random_bytes(n: int) -> bytes:
    """``n`` bytes (1..4096) from the OS CSPRNG, never handed out twice."""
    return _pool.take(n)


def random_hex(n: int = 16) -> str:
    """A random identifier: ``n`` bytes as lowercase hex (128 bits by default)."""
    return _pool.take(n).hex()


def sortable_hex() -> str:
    """A time-ordered random identifier: 32 lowercase hex digits, like :func:`random_hex`.

    The first 12 digits are the Unix time in milliseconds, the other 20 are 80 random bits
    (the layout of a UUIDv7, without its version bits and dashes). Identifiers stored in an
    index for every request (request ids, record ids) are drawn this way: a new one lands at
    the right edge of its index instead of on a random page, so a group commit rewrites a few
    pages rather than one per request and index. The creation time an identifier reveals is
    no secret: the entry and the record that carry it store their time anyway.
    """
    return f"{time.time_ns() // 1_000_000:012x}{_pool.take(10).hex()}"


def mechanism_seed() -> int:
    """A fresh 64-bit seed for a DP mechanism's noise or sampling, from the OS CSPRNG.

    Drawn with ``secrets``, not from the identifier pool: it is secret for good. The caller
    seeds a generator with it and records it nowhere (manifest, card, ledger, log, report);
    whoever learnt it could replay every noise vector and batch, and the guarantee would be void.
    """
    return secrets.randbits(64)
