"""The versioned encrypted-record format: AES-256-GCM under a subject's DEK.

Stored blob::

    blob = version (1 byte: 0x02 now, 0x01 before) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16)

The nonce is 96 random bits, fresh for every seal. With random nonces one DEK may seal at most
2**32 records before nonce collisions become a risk (NIST SP 800-38D, 8.3); Warden rotates a
DEK long before (``dek_max_uses``, at most :data:`MAX_SEALS_PER_KEY`, counted in the database).

Associated data (authenticated, not stored), format 2::

    AAD = lp("warden.record") ‖ 0x02
          ‖ lp(record_id) ‖ lp(subject_ref) ‖ lp(model) ‖ lp(model_version)
          ‖ lp(principal) ‖ lp(request_id) ‖ lp(dek_id)
          ‖ dek_version (8 bytes, unsigned big-endian)

    lp(s) = len(utf8(s)) (4 bytes, unsigned big-endian) ‖ utf8(s)

Format 1 (records sealed before format 2) binds ``record_id``, ``subject_ref``,
``model_version``, ``dek_id`` and ``dek_version`` only, in that order. A record opens under the
format its own version byte names, and that byte is inside the AAD: a format 2 record never
opens as format 1, so the stored ``format_version`` column cannot downgrade a record. The
record's audit sequence number is assigned when the record commits, after it was sealed, so it
cannot be in the AAD: it is bound through the log instead (the entry at that sequence carries
the record's request id; :mod:`governance.records.service`).

Length prefixes make the encoding injective: no two field tuples give the same AAD. The label
keeps record AADs apart from every other AAD in Warden. Because the AAD binds the record id, a
blob copied to another record's row fails to open; the same holds for any other field.

Any failure to open (altered ciphertext, nonce or tag; another record's fields; wrong DEK;
unknown version byte; truncated blob) raises :class:`DecryptionError` with one fixed message.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from governance.randomness import random_bytes
from governance.vault._canonical import text_field, u64_field
from governance.vault.errors import DecryptionError

__all__ = [
    "FORMAT_VERSION",
    "MAX_SEALS_PER_KEY",
    "RecordFields",
    "SealedRecord",
    "open_sealed",
    "record_aad",
    "seal",
]

FORMAT_VERSION = 2
FORMATS = (1, 2)
# Half NIST's 2**32 limit for random 96-bit nonces (SP 800-38D, 8.3): the most records one
# data key may seal, whatever dek_max_uses says.
MAX_SEALS_PER_KEY = 2**31
NONCE_BYTES = 12
TAG_BYTES = 16
DEK_BYTES = 32
_VERSION_BYTE = bytes([FORMAT_VERSION])
_HEADER_BYTES = 1 + NONCE_BYTES
_MIN_BLOB_BYTES = _HEADER_BYTES + TAG_BYTES
_LABEL = text_field("warden.record", name="label")


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """An encrypted record as stored: ``blob`` is version ‖ nonce ‖ ciphertext ‖ tag."""

    blob: bytes

    @property
    def version(self) -> int | None:
        """The format version byte, or None for an empty blob."""
        return self.blob[0] if self.blob else None

    def __repr__(self) -> str:
        return f"SealedRecord(blob=<{len(self.blob)} bytes>)"


@dataclass(frozen=True, slots=True)
class RecordFields:
    """What a record's associated data binds (module docstring).

    Attributes:
        record_id: the record's id.
        subject_ref: the data subject's reference (its blind index, never the raw id).
        model: the model's name.
        model_version: the model version that served the request.
        principal: who made the request.
        request_id: the request's id (its audit entry carries the same).
        dek_id: the id of the DEK that seals the record.
        dek_version: the DEK's version number (0 to 2**64 - 1).
    """

    record_id: str
    subject_ref: str
    model: str
    model_version: str
    principal: str
    request_id: str
    dek_id: str
    dek_version: int


def record_aad(fields: RecordFields, *, version: int = FORMAT_VERSION) -> bytes:
    """The canonical associated data of a record, as defined in the module docstring.

    Args:
        fields: the record's identifying fields.
        version: the format version (1 binds fewer fields).

    Returns:
        The AAD bytes.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: a text field is not valid Unicode, ``dek_version`` is out of range, or
            the version is unknown.
    """
    if version not in FORMATS:
        raise ValueError(f"unknown record format {version!r}")
    parts = [
        _LABEL,
        bytes([version]),
        text_field(fields.record_id, name="record_id"),
        text_field(fields.subject_ref, name="subject_ref"),
    ]
    if version >= 2:
        parts.append(text_field(fields.model, name="model"))
    parts.append(text_field(fields.model_version, name="model_version"))
    if version >= 2:
        parts.append(text_field(fields.principal, name="principal"))
        parts.append(text_field(fields.request_id, name="request_id"))
    parts.append(text_field(fields.dek_id, name="dek_id"))
    parts.append(u64_field(fields.dek_version, name="dek_version"))
    return b"".join(parts)


def seal(dek: bytes | AESGCM, plaintext: bytes, fields: RecordFields) -> SealedRecord:
    """Encrypt a record under ``dek`` in the current format, bound to its identifying fields.

    Args:
        dek: the subject's 32-byte data key, or the AES-GCM context made from it (the key
            cache keeps one per key: the hot path need not set one up per record).
        plaintext: the record (serialised request or response); up to 2**31 - 1 bytes.
        fields: what the record is bound to.

    Returns:
        The sealed record, with a fresh random nonce.

    Raises:
        ValueError: ``dek`` is not 32 bytes, or a field is invalid (see :func:`record_aad`).
        TypeError: a field has the wrong type.
    """
    cipher = _cipher(dek)
    aad = record_aad(fields)
    nonce = random_bytes(NONCE_BYTES)
    return SealedRecord(blob=_VERSION_BYTE + nonce + cipher.encrypt(nonce, plaintext, aad))


def open_sealed(dek: bytes, sealed: SealedRecord, fields: RecordFields) -> bytes:
    """Decrypt a sealed record, checking that it belongs to the given fields.

    The format is the blob's own version byte (which the AAD binds).

    Args:
        dek: the subject's 32-byte data key.
        sealed: the stored record.
        fields: the fields stored with it (and ``dek``'s id and version).

    Returns:
        The plaintext.

    Raises:
        DecryptionError: the record was altered, moved, truncated, sealed under another key or
            fields, or has an unknown version byte.
        ValueError: ``dek`` is not 32 bytes, or a field is invalid (see :func:`record_aad`).
        TypeError: a field has the wrong type.
    """
    cipher = _cipher(dek)
    blob = sealed.blob
    if isinstance(blob, bytearray | memoryview):  # some database drivers return these
        blob = bytes(blob)
    if not isinstance(blob, bytes) or len(blob) < _MIN_BLOB_BYTES or blob[0] not in FORMATS:
        raise DecryptionError()
    aad = record_aad(fields, version=blob[0])
    try:
        return cipher.decrypt(blob[1:_HEADER_BYTES], blob[_HEADER_BYTES:], aad)
    except InvalidTag:
        pass
    # Raised outside the handler so no chained exception travels with it.
    raise DecryptionError()


def _cipher(dek: bytes | AESGCM) -> AESGCM:
    if isinstance(dek, AESGCM):
        return dek
    if not isinstance(dek, bytes | bytearray | memoryview) or len(dek) != DEK_BYTES:
        raise ValueError(f"a data key must be {DEK_BYTES} bytes")
    return AESGCM(bytes(dek))
