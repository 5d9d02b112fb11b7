"""C2SP signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

A checkpoint is the note text ``<origin>\\n<tree size>\\n<base64 root>\\n``; the log signs it
with Ed25519 and appends, after a blank line, ``— <key name> <base64(key ID || signature)>\\n``.
The key ID is ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``. A verifier key is
written ``<name>+<8 hex digits of key ID>+<base64(0x01 || public key)>``, the text Go's
``golang.org/x/mod/sumdb/note`` and the transparency-dev tools read.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from governance.audit.errors import AuditVerificationError, NoteFormatError

__all__ = [
    "ED25519_TYPE",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteSignature",
    "VerifierKey",
    "key_id_for",
    "make_checkpoint_body",
    "open_note",
    "parse_checkpoint",
    "parse_vkey",
    "sign_note",
    "verify_note",
    "verify_signed_note",
    "vkey_for",
]

ED25519_TYPE = 0x01
# The spec asks verifiers to bound notes and to accept at least 16 signatures.
MAX_SIGNATURES = 64
MAX_NOTE_BYTES = 64 * 1024
_SIG_PREFIX = "\u2014 "
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A parsed tlog checkpoint: the tree head of ``origin`` at ``size`` leaves."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """Return the note text that encodes this checkpoint."""
        return make_checkpoint_body(self.origin, self.size, self.root, extensions=self.extensions)


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line of a note, decoded but not verified."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A parsed verifier key: an Ed25519 public key with the name it signs under."""

    name: str
    key_id: bytes
    public_key: bytes

    def text(self) -> str:
        """Return the vkey text form."""
        return _vkey_text(self.name, self.key_id, self.public_key)


def _valid_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name)
    )


def _check_text(text: str) -> bool:
    # The spec forbids ASCII controls other than newline; lone surrogates are not UTF-8.
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64decode_strict(text: str) -> bytes:
    # validate=True refuses stray characters; the round trip refuses non-zero padding bits,
    # so each byte string has exactly one accepted encoding.
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return raw


def _raw_public_key(public_key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if isinstance(public_key, bytes) and len(public_key) == 32:
        return public_key
    raise NoteFormatError("an Ed25519 public key is 32 bytes")


def key_id_for(name: str, public_key: Ed25519PublicKey | bytes) -> bytes:
    """Compute the 4-byte key ID of an Ed25519 note key.

    Args:
        name: the key name.
        public_key: the public key, as an object or its 32 raw bytes.

    Returns:
        ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``.

    Raises:
        NoteFormatError: an invalid name or key.
    """
    if not _valid_name(name):
        raise NoteFormatError("a key name must be non-empty, without spaces or '+'")
    raw = _raw_public_key(public_key)
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + raw).digest()[:4]


def _vkey_text(name: str, key_id: bytes, raw: bytes) -> str:
    encoded = base64.b64encode(bytes([ED25519_TYPE]) + raw).decode("ascii")
    return f"{name}+{key_id.hex()}+{encoded}"


def vkey_for(name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """Write the verifier key text ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

    Args:
        name: the key name (for a log, its origin).
        public_key: the Ed25519 public key.

    Returns:
        The vkey string.

    Raises:
        NoteFormatError: an invalid name or key.
    """
    raw = _raw_public_key(public_key)
    return _vkey_text(name, key_id_for(name, raw), raw)


def parse_vkey(vkey: str) -> VerifierKey:
    """Parse and check a verifier key string.

    Args:
        vkey: ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

    Returns:
        The parsed key.

    Raises:
        AuditVerificationError: a malformed key, another algorithm, or a key ID that does not
            match the name and key.
    """
    if not isinstance(vkey, str):
        raise AuditVerificationError("verifier key must be text")
    # Base64 may itself hold "+": only the first two separate fields (as Go's note package).
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise AuditVerificationError("verifier key must have three '+'-separated parts")
    name, hex_id, encoded = parts
    if not _valid_name(name) or not _HEX_KEY_ID.fullmatch(hex_id):
        raise AuditVerificationError("verifier key has an invalid name or key ID")
    try:
        raw = _b64decode_strict(encoded)
    except (ValueError, UnicodeEncodeError):
        raise AuditVerificationError("verifier key is not valid base64") from None
    if len(raw) != 33 or raw[0] != ED25519_TYPE:
        raise AuditVerificationError("verifier key is not an Ed25519 note key")
    try:
        Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError:
        raise AuditVerificationError("verifier key is not a valid Ed25519 key") from None
    key_id = key_id_for(name, raw[1:])
    if key_id != bytes.fromhex(hex_id):
        raise AuditVerificationError("verifier key ID does not match its name and key")
    return VerifierKey(name=name, key_id=key_id, public_key=raw[1:])


def make_checkpoint_body(
    origin: str, size: int, root: bytes, *, extensions: tuple[str, ...] = ()
) -> str:
    """Write a tlog checkpoint note text.

    Args:
        origin: the log's origin line (non-empty, one line).
        size: the tree size.
        root: the 32-byte root hash at ``size``.
        extensions: optional non-empty extension lines (NOT RECOMMENDED by the spec).

    Returns:
        ``<origin>\\n<size>\\n<base64 root>\\n`` followed by any extension lines.

    Raises:
        NoteFormatError: an empty or multi-line origin, a negative size, a root that is not
            32 bytes, or an empty extension line.
    """
    if not isinstance(origin, str) or origin == "" or "\n" in origin or not _check_text(origin):
        raise NoteFormatError("origin must be one non-empty line of text")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise NoteFormatError("tree size must be a non-negative integer")
    if not isinstance(root, bytes) or len(root) != 32:
        raise NoteFormatError("root hash must be 32 bytes")
    for line in extensions:
        if not isinstance(line, str) or line == "" or "\n" in line or not _check_text(line):
            raise NoteFormatError("extension lines must be non-empty single lines")
    lines = [origin, str(size), base64.b64encode(root).decode("ascii"), *extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint note text strictly.

    Args:
        body: the note text (normally returned by ``verify_signed_note``).

    Returns:
        The checkpoint.

    Raises:
        AuditVerificationError: fewer than three lines, an empty line, a size with a sign,
            leading zeros or non-ASCII digits, or a root that is not base64 of 32 bytes.
    """
    if not isinstance(body, str) or not body.endswith("\n") or not _check_text(body):
        raise AuditVerificationError("checkpoint text must be valid lines ending in a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3 or any(line == "" for line in lines):
        raise AuditVerificationError("checkpoint needs at least three non-empty lines")
    origin, size_text, root_text, *extensions = lines
    # C2SP sizes are uint64: the length check keeps int() away from huge digit strings.
    if len(size_text) > 20 or not _DECIMAL.fullmatch(size_text) or int(size_text) >= 2**64:
        raise AuditVerificationError("checkpoint tree size is not a decimal uint64")
    try:
        root = _b64decode_strict(root_text)
    except (ValueError, UnicodeEncodeError):
        raise AuditVerificationError("checkpoint root hash is not valid base64") from None
    if len(root) != 32:
        raise AuditVerificationError("checkpoint root hash is not 32 bytes")
    return Checkpoint(origin=origin, size=int(size_text), root=root, extensions=tuple(extensions))


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign a note text with an Ed25519 key.

    Args:
        body: the note text, ending in a newline (e.g. ``make_checkpoint_body(...)``).
        name: the key name to sign under; for a checkpoint, the log's origin.
        private_key: the signing key.

    Returns:
        The signed note: the text, a blank line and one signature line.

    Raises:
        NoteFormatError: a text that does not end in a newline or holds control characters,
            or an invalid key name.
    """
    if not isinstance(body, str) or not body.endswith("\n") or not _check_text(body):
        raise NoteFormatError("note text must be UTF-8 lines ending in a newline")
    if not _valid_name(name):
        raise NoteFormatError("a key name must be non-empty, without spaces or '+'")
    key_id = key_id_for(name, private_key.public_key())
    signature = private_key.sign(body.encode("utf-8"))
    encoded = base64.b64encode(key_id + signature).decode("ascii")
    return f"{body}\n{_SIG_PREFIX}{name} {encoded}\n"


def open_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and decoded signature lines, verifying nothing.

    Args:
        note: the signed note, as text or UTF-8 bytes.

    Returns:
        The note text (with its final newline) and the signatures in order.

    Raises:
        AuditVerificationError: invalid UTF-8, control characters, no blank line, no or too
            many signatures, or a malformed signature line.
    """
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise AuditVerificationError("note is too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise AuditVerificationError("note is not valid UTF-8") from None
    if not isinstance(note, str):
        raise AuditVerificationError("note must be text")
    if len(note) > MAX_NOTE_BYTES or not _check_text(note):
        raise AuditVerificationError("note is too large or holds control characters")
    if not note.endswith("\n"):
        raise AuditVerificationError("note does not end in a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise AuditVerificationError("note has no blank line before its signatures")
    body, block = note[: split + 1], note[split + 2 :]
    if block == "":
        raise AuditVerificationError("note has no signatures")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise AuditVerificationError("note has too many signatures")
    signatures: list[NoteSignature] = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise AuditVerificationError("malformed signature line")
        parts = line[len(_SIG_PREFIX) :].split(" ")
        if len(parts) != 2 or not _valid_name(parts[0]):
            raise AuditVerificationError("malformed signature line")
        try:
            raw = _b64decode_strict(parts[1])
        except (ValueError, UnicodeEncodeError):
            raise AuditVerificationError("signature is not valid base64") from None
        if len(raw) < 5:
            raise AuditVerificationError("signature is too short")
        signatures.append(NoteSignature(name=parts[0], key_id=raw[:4], signature=raw[4:]))
    return body, signatures


def verify_signed_note(
    note: str | bytes, vkey: str | VerifierKey, *, allow_unknown_signatures: bool = True
) -> str:
    """Verify a signed note against one trusted key and return its text.

    Follows the spec: signatures from other keys are ignored (unless
    ``allow_unknown_signatures`` is False, as the export bundle requires), a signature from the
    trusted key that fails rejects the note, and at least one must verify.

    Args:
        note: the signed note.
        vkey: the trusted verifier key, as text or parsed.
        allow_unknown_signatures: accept lines from other keys (witness cosignatures).

    Returns:
        The verified note text.

    Raises:
        AuditVerificationError: a malformed note or key, a bad signature, an unexpected
            signer, or no signature from the trusted key.
    """
    key = parse_vkey(vkey) if isinstance(vkey, str) else vkey
    body, signatures = open_note(note)
    try:
        public_key = Ed25519PublicKey.from_public_bytes(key.public_key)
    except ValueError:
        raise AuditVerificationError("verifier key is not a valid Ed25519 key") from None
    message = body.encode("utf-8")
    verified = False
    for signature in signatures:
        if signature.name != key.name or signature.key_id != key.key_id:
            if not allow_unknown_signatures:
                raise AuditVerificationError("note carries a signature from an unexpected key")
            continue
        try:
            public_key.verify(signature.signature, message)
        except InvalidSignature:
            raise AuditVerificationError("note signature does not verify") from None
        verified = True
    if not verified:
        raise AuditVerificationError("note has no signature from the trusted key")
    return body


def verify_note(
    note: str | bytes,
    vkey: str | VerifierKey,
    *,
    origin: str | None = None,
    allow_unknown_signatures: bool = True,
) -> Checkpoint:
    """Verify a signed checkpoint and parse it.

    Args:
        note: the signed checkpoint note.
        vkey: the trusted verifier key.
        origin: when given, the origin the checkpoint must carry.
        allow_unknown_signatures: accept lines from other keys (witness cosignatures).

    Returns:
        The verified checkpoint.

    Raises:
        AuditVerificationError: any signature or format problem, or a different origin.
    """
    body = verify_signed_note(note, vkey, allow_unknown_signatures=allow_unknown_signatures)
    checkpoint = parse_checkpoint(body)
    if origin is not None and checkpoint.origin != origin:
        raise AuditVerificationError("checkpoint origin is not the expected log")
    return checkpoint
