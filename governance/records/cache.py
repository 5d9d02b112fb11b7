"""A bounded in-memory cache of unwrapped data keys, keyed by subject reference.

It keeps the hot path free of I/O: a request for a subject seen recently is sealed with a key
already in memory. Each entry seals at most the uses it reserved in the database
(:meth:`~governance.vault.keys.DataKeyService.reserve_uses`), so a key is rotated long before
AES-GCM's random nonce limit (2**32 seals per key), whichever processes share it. Keys are
evicted least-recently-used, on erasure, and when the database says the key was rotated or
destroyed by another process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


@dataclass(eq=False)
class CachedKey:
    """An unwrapped DEK. The key bytes never appear in a repr."""

    subject_ref: str
    dek_id: str
    version: int
    key: bytes = field(repr=False)
    # Seals this process reserved in the database for this entry, and made so far.
    reserved: int = 0
    seals: int = 0
    # The key's AES-GCM context, made once: setting one up costs more than sealing a record
    # with it. It lives and dies with the entry, so evicting the entry drops both.
    cipher: AESGCM = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cipher = AESGCM(self.key)

    @property
    def exhausted(self) -> bool:
        """Every reserved seal is spent: reserve more (or rotate) before the next one."""
        return self.seals >= self.reserved


class KeyCache:
    """Thread-safe LRU of :class:`CachedKey` by subject reference.

    Args:
        capacity: most subjects kept; the least recently used is dropped beyond it.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._entries: OrderedDict[str, CachedKey] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, subject_ref: str) -> CachedKey | None:
        with self._lock:
            entry = self._entries.get(subject_ref)
            if entry is not None:
                self._entries.move_to_end(subject_ref)
            return entry

    def put(self, entry: CachedKey) -> None:
        with self._lock:
            self._entries[entry.subject_ref] = entry
            self._entries.move_to_end(entry.subject_ref)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def evict_key(self, dek_id: str, subject_ref: str) -> None:
        """Drop the subject's entry only if it still holds ``dek_id`` (a newer key stays)."""
        with self._lock:
            entry = self._entries.get(subject_ref)
            if entry is not None and entry.dek_id == dek_id:
                del self._entries[subject_ref]

    def held(self) -> list[tuple[str, str]]:
        """``(dek_id, subject_ref)`` of every entry, at this moment."""
        with self._lock:
            return [(e.dek_id, e.subject_ref) for e in self._entries.values()]

    def evict_subject(self, subject_ref: str) -> None:
        with self._lock:
            self._entries.pop(subject_ref, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"KeyCache(size={len(self._entries)}, capacity={self._capacity})"
