"""The key document (``warden.keys/1``) and the keyring it holds.

The document is JSON::

    {
      "format": "warden.keys/1",
      "current": "kek-2",
      "keks": [
        {"id": "kek-1", "created": "2025-01-01T00:00:00+00:00", "key": "<base64, 32 bytes>"},
        {"id": "kek-2", "created": "2025-06-01T00:00:00+00:00", "key": "<base64, 32 bytes>"}
      ],
      "blind_index_key": "<base64, 32 bytes>",
      "digest_key": "<base64, 32 bytes>"
    }

The same document comes from a key file or from an environment variable. Parsing collects every
problem and reports them together. A problem names the field, never its value. Errors are raised
outside ``except`` blocks, so no chained exception carries the document either.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.vault._canonical import bytes_field, text_field
from governance.vault.errors import DecryptionError

KEY_DOCUMENT_FORMAT = "warden.keys/1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16

_KEK_ID = re.compile(r"kek-([1-9][0-9]{0,17})")
_FIELDS = frozenset({"format", "current", "keks", "blind_index_key", "digest_key"})
_KEK_FIELDS = frozenset({"id", "created", "key"})
# Binds a wrapped key to the KEK that wrapped it and to the caller's AAD, in a domain of its own.
_WRAP_LABEL = text_field("warden.kek-wrap/1", name="label")
_UNWRAP_FAILED = (
    "wrapped data key failed authentication: blob or associated data altered, "
    "or key moved to another id"
)


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key wrapped (AES-256-GCM encrypted) under a KEK.

    Attributes:
        kek_id: the KEK version that wrapped it; unwrapping needs that version.
        blob: nonce ‖ ciphertext ‖ tag, opaque to callers.
    """

    kek_id: str
    blob: bytes

    def __repr__(self) -> str:
        return f"WrappedKey(kek_id={self.kek_id!r}, blob=<{len(self.blob)} bytes>)"


@dataclass(frozen=True, slots=True)
class Kek:
    """One KEK version. The key never appears in a repr."""

    id: str
    created: datetime
    key: bytes = field(repr=False)

    @property
    def number(self) -> int:
        match = _KEK_ID.fullmatch(self.id)
        assert match is not None  # ids are validated on construction of every keyring
        return int(match.group(1))


@dataclass(frozen=True, slots=True)
class Keyring:
    """An immutable set of KEK versions plus the two HMAC secrets.

    Immutable so that a provider can swap in a rotated keyring with one assignment while other
    threads keep using the one they hold.
    """

    keks: tuple[Kek, ...]
    current: str
    blind_index_key: bytes = field(repr=False)
    digest_key: bytes = field(repr=False)
    _ciphers: dict[str, AESGCM] = field(repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        # AESGCM objects are stateless per call; building them once saves the key schedule.
        for kek in self.keks:
            self._ciphers[kek.id] = AESGCM(kek.key)

    @classmethod
    def generate(cls, *, now: datetime | None = None) -> Keyring:
        """A fresh keyring: one KEK (``kek-1``) and two independent HMAC secrets."""
        kek = Kek(id="kek-1", created=_now(now), key=os.urandom(KEY_BYTES))
        return cls(
            keks=(kek,),
            current=kek.id,
            blind_index_key=os.urandom(KEY_BYTES),
            digest_key=os.urandom(KEY_BYTES),
        )

    def kek_ids(self) -> tuple[str, ...]:
        return tuple(kek.id for kek in self.keks)

    def has(self, kek_id: str) -> bool:
        return kek_id in self._ciphers

    def with_new_kek(self, *, now: datetime | None = None) -> Keyring:
        """A copy with a new KEK version that becomes current; older versions stay for unwrap."""
        number = max(kek.number for kek in self.keks) + 1
        kek = Kek(id=f"kek-{number}", created=_now(now), key=os.urandom(KEY_BYTES))
        return Keyring(
            keks=(*self.keks, kek),
            current=kek.id,
            blind_index_key=self.blind_index_key,
            digest_key=self.digest_key,
        )

    def without(self, kek_id: str) -> Keyring:
        """A copy without ``kek_id``; the caller has checked it is neither current nor unknown."""
        return Keyring(
            keks=tuple(kek for kek in self.keks if kek.id != kek_id),
            current=self.current,
            blind_index_key=self.blind_index_key,
            digest_key=self.digest_key,
        )

    def wrap(self, dek: bytes, *, aad: bytes) -> WrappedKey:
        """Encrypt ``dek`` under the current KEK with a fresh random nonce."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current].encrypt(nonce, dek, _wrap_aad(self.current, aad))
        return WrappedKey(kek_id=self.current, blob=nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        """Decrypt a wrapped key; the caller has checked ``self.has(wrapped.kek_id)``.

        Raises:
            DecryptionError: the blob is malformed or fails authentication.
        """
        blob = wrapped.blob
        if isinstance(blob, bytearray | memoryview):  # some database drivers return these
            blob = bytes(blob)
        if not isinstance(blob, bytes) or len(blob) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(_UNWRAP_FAILED)
        cipher = self._ciphers[wrapped.kek_id]
        try:
            return cipher.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], _wrap_aad(wrapped.kek_id, aad)
            )
        except InvalidTag:
            pass
        raise DecryptionError(_UNWRAP_FAILED)

    def to_json_bytes(self) -> bytes:
        """The key document, UTF-8 JSON with a trailing newline."""
        document: dict[str, Any] = {
            "format": KEY_DOCUMENT_FORMAT,
            "current": self.current,
            "keks": [
                {"id": kek.id, "created": kek.created.isoformat(), "key": _b64(kek.key)}
                for kek in self.keks
            ],
            "blind_index_key": _b64(self.blind_index_key),
            "digest_key": _b64(self.digest_key),
        }
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def parse_key_document(raw: bytes) -> tuple[Keyring | None, list[str]]:
    """Parse and validate a key document.

    Args:
        raw: the document's bytes (UTF-8 JSON).

    Returns:
        ``(keyring, [])`` when valid, else ``(None, problems)`` listing every problem found.
        No problem text quotes a value from the document.
    """
    text = _decode_utf8(raw)
    if text is None:
        return None, ["is not UTF-8 text"]
    document, json_problem = _load_json(text)
    if json_problem is not None:
        return None, [json_problem]
    if not isinstance(document, dict):
        return None, ["must be a JSON object"]

    problems: list[str] = []
    unknown = sorted(str(name)[:40] for name in set(document) - _FIELDS)
    if unknown:
        problems.append(f"unknown field(s): {', '.join(unknown)}")
    if document.get("format") != KEY_DOCUMENT_FORMAT:
        problems.append(f"field 'format' must be {KEY_DOCUMENT_FORMAT!r}")

    keks = _parse_keks(document.get("keks"), problems)
    current = document.get("current")
    if not isinstance(current, str):
        problems.append("field 'current' must be a KEK id string")
    elif keks is not None and current not in {kek.id for kek in keks}:
        problems.append("field 'current' does not name a KEK listed in 'keks'")

    blind_index_key = _parse_key(document.get("blind_index_key"), "blind_index_key", problems)
    digest_key = _parse_key(document.get("digest_key"), "digest_key", problems)
    if blind_index_key is not None and blind_index_key == digest_key:
        problems.append("'blind_index_key' and 'digest_key' must be independent secrets (equal)")
    kek_keys = {kek.key for kek in keks or ()}
    for name, secret in (("blind_index_key", blind_index_key), ("digest_key", digest_key)):
        if secret is not None and secret in kek_keys:
            problems.append(f"'{name}' must be independent of every KEK (equals one)")

    if problems or keks is None or blind_index_key is None or digest_key is None:
        return None, problems
    assert isinstance(current, str)
    ordered = tuple(sorted(keks, key=lambda kek: kek.number))
    keyring = Keyring(
        keks=ordered, current=current, blind_index_key=blind_index_key, digest_key=digest_key
    )
    return keyring, []


def _parse_keks(value: object, problems: list[str]) -> list[Kek] | None:
    if not isinstance(value, list) or not value:
        problems.append("field 'keks' must be a non-empty list")
        return None
    keks: list[Kek] = []
    seen: set[str] = set()
    valid = True
    for index, entry in enumerate(value):
        where = f"keks[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be an object")
            valid = False
            continue
        unknown = sorted(str(name)[:40] for name in set(entry) - _KEK_FIELDS)
        if unknown:
            problems.append(f"{where} has unknown field(s): {', '.join(unknown)}")
            valid = False
        kek_id = entry.get("id")
        if not isinstance(kek_id, str) or _KEK_ID.fullmatch(kek_id) is None:
            problems.append(f"{where}.id must look like 'kek-<n>' with n >= 1")
            kek_id = None
        elif kek_id in seen:
            problems.append(f"{where}.id repeats KEK id {kek_id!r}")
            kek_id = None
        else:
            seen.add(kek_id)
        created = _parse_time(entry.get("created"))
        if created is None:
            problems.append(f"{where}.created must be an ISO 8601 timestamp")
        key = _parse_key(entry.get("key"), f"{where}.key", problems)
        if kek_id is None or created is None or key is None:
            valid = False
            continue
        keks.append(Kek(id=kek_id, created=created, key=key))
    return keks if valid else None


def _parse_key(value: object, name: str, problems: list[str]) -> bytes | None:
    if not isinstance(value, str):
        problems.append(f"field {name!r} must be a base64 string")
        return None
    key = _b64decode(value)
    if key is None:
        problems.append(f"field {name!r} is not valid base64")
        return None
    if len(key) != KEY_BYTES:
        problems.append(f"field {name!r} must decode to {KEY_BYTES} bytes (256 bits)")
        return None
    return key


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _decode_utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Not re-raised: its message quotes a byte of the document.
        return None


def _load_json(text: str) -> tuple[object, str | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        # Only the position survives: the exception object holds the whole document.
        return None, f"is not valid JSON (line {exc.lineno}, column {exc.colno})"
    except RecursionError:
        return None, "is not valid JSON (nested too deeply)"


def b64decode_strict(value: str) -> bytes | None:
    """Strict standard base64 (padding required, no stray characters); None when invalid.

    Whitespace anywhere is ignored, because ``base64`` tools wrap their output at 76 columns.
    """
    return _b64decode(value)


def _b64decode(value: str) -> bytes | None:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _wrap_aad(kek_id: str, aad: bytes) -> bytes:
    return _WRAP_LABEL + text_field(kek_id, name="kek_id") + bytes_field(aad, name="aad")


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).replace(microsecond=0)
