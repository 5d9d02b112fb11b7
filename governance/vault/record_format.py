"""The versioned encrypted-record format (version 1): AES-256-GCM under a subject's DEK.

Stored blob::

    blob = version (1 byte, 0x01) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)

The nonce is 96 random bits, fresh for every seal. With random nonces one DEK may seal at most
2**32 records before nonce collisions become a risk (NIST SP 800-38D, 8.3); a DEK serves one
data subject, far below that.

Associated data (authenticated, not stored)::

    AAD = lp("warden.record") ‖ version (1 byte)
          ‖ lp(record_id) ‖ lp(subject_ref) ‖ lp(model_version) ‖ lp(dek_id)
          ‖ dek_version (8 bytes, unsigned big-endian)

    lp(s) = len(utf8(s)) (4 bytes, unsigned big-endian) ‖ utf8(s)

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

__all__ = ["FORMAT_VERSION", "SealedRecord", "open_sealed", "record_aad", "seal"]

FORMAT_VERSION = 1
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


def record_aad(
    *,
    record_id: str,
    subject_ref: str,
    model_version: str,
    dek_id: str,
    dek_version: int,
    version: int = FORMAT_VERSION,
) -> bytes:
    """The canonical associated data of a record, as defined in the module docstring.

    Args:
        record_id: the record's id.
        subject_ref: the data subject's reference (its blind index, never the raw id).
        model_version: the model version that served the request.
        dek_id: the id of the DEK that seals the record.
        dek_version: the DEK's version number (0 to 2**64 - 1).
        version: the format version.

    Returns:
        The AAD bytes.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: a text field is not valid Unicode, or ``dek_version`` is out of range.
    """
    return b"".join(
        (
            _LABEL,
            bytes([version]),
            text_field(record_id, name="record_id"),
            text_field(subject_ref, name="subject_ref"),
            text_field(model_version, name="model_version"),
            text_field(dek_id, name="dek_id"),
            u64_field(dek_version, name="dek_version"),
        )
    )


def seal(
    dek: bytes | AESGCM,
    plaintext: bytes,
    *,
    record_id: str,
    subject_ref: str,
    model_version: str,
    dek_id: str,
    dek_version: int,
) -> SealedRecord:
    """Encrypt a record under ``dek``, bound to its identifying fields.

    Args:
        dek: the subject's 32-byte data key, or the AES-GCM context made from it (the key
            cache keeps one per key: the hot path need not set one up per record).
        plaintext: the record (serialised request or response); up to 2**31 - 1 bytes.
        record_id: the record's id.
        subject_ref: the data subject's reference.
        model_version: the model version that served the request.
        dek_id: the id of ``dek``.
        dek_version: the version of ``dek``.

    Returns:
        The sealed record, with a fresh random nonce.

    Raises:
        ValueError: ``dek`` is not 32 bytes, or a field is invalid (see :func:`record_aad`).
        TypeError: a field has the wrong type.
    """
    cipher = _cipher(dek)
    aad = record_aad(
        record_id=record_id,
        subject_ref=subject_ref,
        model_version=model_version,
        dek_id=dek_id,
        dek_version=dek_version,
    )
    nonce = random_bytes(NONCE_BYTES)
    return SealedRecord(blob=_VERSION_BYTE + nonce + cipher.encrypt(nonce, plaintext, aad))


def open_sealed(
    dek: bytes,
    sealed: SealedRecord,
    *,
    record_id: str,
    subject_ref: str,
    model_version: str,
    dek_id: str,
    dek_version: int,
) -> bytes:
    """Decrypt a sealed record, checking that it belongs to the given fields.

    Args:
        dek: the subject's 32-byte data key.
        sealed: the stored record.
        record_id: the id of the row it was read from.
        subject_ref: the subject reference stored with it.
        model_version: the model version stored with it.
        dek_id: the id of ``dek``.
        dek_version: the version of ``dek``.

    Returns:
        The plaintext.

    Raises:
        DecryptionError: the record was altered, moved, truncated, sealed under another key or
            fields, or has an unknown version byte.
        ValueError: ``dek`` is not 32 bytes, or a field is invalid (see :func:`record_aad`).
        TypeError: a field has the wrong type.
    """
    cipher = _cipher(dek)
    aad = record_aad(
        record_id=record_id,
        subject_ref=subject_ref,
        model_version=model_version,
        dek_id=dek_id,
        dek_version=dek_version,
    )
    blob = sealed.blob
    if isinstance(blob, bytearray | memoryview):  # some database drivers return these
        blob = bytes(blob)
    if not isinstance(blob, bytes) or len(blob) < _MIN_BLOB_BYTES or blob[0] != FORMAT_VERSION:
        raise DecryptionError()
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
