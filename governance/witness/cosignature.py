"""Ed25519 checkpoint cosignatures, ``cosignature/v1`` (c2sp.org/tlog-cosignature).

A cosignature is a note signature line ``— <name> base64(key ID || timestamp || signature)``:
the key ID is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``, the timestamp a big-endian
u64 of POSIX seconds, and the Ed25519 signature covers ``cosignature/v1\\ntime <ts>\\n``
followed by the whole checkpoint text. A cosigner's verifier key is written
``<name>+<hex key ID>+<base64(0x04 || public key)>``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from governance.audit.errors import AuditVerificationError, NoteFormatError
from governance.audit.note import NoteSignature, open_note
from governance.kit.cosigner_key import (
    COSIGNATURE_TYPE,
    CosignerKeyError,
    key_id,
    parse_vkey,
    valid_key_name,
)

__all__ = [
    "COSIGNATURE_TYPE",
    "CosignerKey",
    "cosign",
    "cosignature_message",
    "cosignatures_of",
    "cosigner_key",
    "cosigner_vkey",
    "parse_cosigner_vkey",
    "verify_cosignature",
]

_SIG_PREFIX = "\u2014 "
# The spec caps the timestamp at 2^63 - 1.
_MAX_TIMESTAMP = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class CosignerKey:
    """A witness's cosigning key: its name, key ID and Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: bytes

    def vkey(self) -> str:
        """The verifier key text of this cosigner."""
        encoded = base64.b64encode(bytes([COSIGNATURE_TYPE]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def matches(self, signature: NoteSignature) -> bool:
        """Whether a signature line names this key."""
        return signature.name == self.name and signature.key_id == self.key_id


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def cosigner_key(name: str, public_key: Ed25519PublicKey) -> CosignerKey:
    """The cosigner key of ``name`` and an Ed25519 public key.

    Raises:
        NoteFormatError: an invalid key name.
    """
    if not valid_key_name(name):
        raise NoteFormatError("a cosigner name must be non-empty, without spaces or '+'")
    raw = _raw(public_key)
    return CosignerKey(name=name, key_id=key_id(name, raw), public_key=raw)


def cosigner_vkey(name: str, public_key: Ed25519PublicKey) -> str:
    """Write the cosigner verifier key ``<name>+<hex key ID>+<base64(0x04 || key)>``.

    Raises:
        NoteFormatError: an invalid key name.
    """
    return cosigner_key(name, public_key).vkey()


def parse_cosigner_vkey(vkey: str) -> CosignerKey:
    """Parse a cosigner verifier key (signature type 0x04).

    Raises:
        AuditVerificationError: a malformed key, another signature type, or a key ID that does
            not match the name and key.
    """
    try:
        name, ident, raw = parse_vkey(vkey)
    except CosignerKeyError as exc:
        raise AuditVerificationError(str(exc)) from None
    return CosignerKey(name=name, key_id=ident, public_key=raw)


def cosignature_message(body: str, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signs: header, time line, then the checkpoint text.

    Raises:
        NoteFormatError: a negative or too large timestamp, or a text without a final newline.
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise NoteFormatError("a cosignature timestamp is an integer")
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise NoteFormatError("a cosignature timestamp must lie in 0..2^63-1")
    if not body.endswith("\n"):
        raise NoteFormatError("a checkpoint text ends in a newline")
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(body: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """Cosign a checkpoint text and return the signature line (ending in a newline).

    Args:
        body: the checkpoint note text, without signature lines.
        name: the cosigner's key name.
        private_key: the cosigner's Ed25519 key.
        timestamp: POSIX seconds of the cosignature; the witness protocol forbids zero.

    Returns:
        ``— <name> base64(key ID || timestamp || signature)\\n``.

    Raises:
        NoteFormatError: an invalid name, timestamp or text.
    """
    key = cosigner_key(name, private_key.public_key())
    signature = private_key.sign(cosignature_message(body, timestamp))
    encoded = base64.b64encode(key.key_id + timestamp.to_bytes(8, "big") + signature)
    return f"{_SIG_PREFIX}{name} {encoded.decode('ascii')}\n"


def verify_cosignature(body: str, signature: NoteSignature, key: CosignerKey) -> int:
    """Verify one cosignature of a checkpoint text and return its timestamp.

    Args:
        body: the checkpoint note text, without signature lines.
        signature: the decoded signature line (``open_note`` output), naming ``key``.
        key: the trusted cosigner key.

    Returns:
        The cosignature's timestamp, POSIX seconds.

    Raises:
        AuditVerificationError: another key, a malformed or bad signature.
    """
    if not key.matches(signature):
        raise AuditVerificationError("signature line is not from this cosigner")
    if len(signature.signature) != 8 + 64:
        raise AuditVerificationError("cosignature is not a timestamped Ed25519 signature")
    timestamp = int.from_bytes(signature.signature[:8], "big")
    try:
        message = cosignature_message(body, timestamp)
    except NoteFormatError:
        raise AuditVerificationError("cosignature timestamp is out of range") from None
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature.signature[8:], message)
    except InvalidSignature:
        raise AuditVerificationError("cosignature does not verify") from None
    return timestamp


def cosignatures_of(note: str, keys: list[CosignerKey]) -> dict[str, int]:
    """The witnesses whose valid cosignature a signed note carries, with their timestamps.

    Lines from keys not in ``keys`` are ignored (the log's own signature among them); a line
    that names a trusted key but does not verify fails the note, as signed-note requires.

    Returns:
        ``{cosigner vkey: timestamp}`` for each trusted key that cosigned.

    Raises:
        AuditVerificationError: a malformed note, or a bad cosignature from a trusted key.
    """
    body, signatures = open_note(note)
    found: dict[str, int] = {}
    for signature in signatures:
        for key in keys:
            if key.matches(signature):
                found[key.vkey()] = verify_cosignature(body, signature, key)
    return found
