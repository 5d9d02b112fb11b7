"""The text form of a witness's cosigner verifier key (c2sp.org/tlog-cosignature).

``<name>+<hex key ID>+<base64(0x04 || Ed25519 public key)>``, where the key ID is
``SHA-256(name || 0x0A || 0x04 || public key)[:4]``. Read here, below the settings, so that a
wrong key in ``WARDEN_WITNESSES`` stops the process when the settings are loaded.
"""

from __future__ import annotations

import base64
import hashlib
import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

COSIGNATURE_TYPE = 0x04


class CosignerKeyError(ValueError):
    """A cosigner verifier key that does not parse; the message names the defect only."""


def valid_key_name(name: str) -> bool:
    # A note key name: non-empty, no spaces or controls, no "+" (the vkey separator).
    return (
        name != ""
        and "+" not in name
        and not any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name)
    )


def key_id(name: str, raw: bytes) -> bytes:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([COSIGNATURE_TYPE]) + raw)
    return digest.digest()[:4]


def parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    """The name, key ID and raw public key of a cosigner verifier key.

    Raises:
        CosignerKeyError: a malformed key, another signature type, or a key ID that does not
            match the name and key.
    """
    if not isinstance(vkey, str):
        raise CosignerKeyError("cosigner key must be text")
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise CosignerKeyError("cosigner key must have three '+'-separated parts")
    name, hex_id, encoded = parts
    if not valid_key_name(name) or not re.fullmatch(r"[0-9a-f]{8}", hex_id):
        raise CosignerKeyError("cosigner key has an invalid name or key ID")
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise CosignerKeyError("cosigner key is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != encoded:
        raise CosignerKeyError("cosigner key is not canonical base64")
    if len(raw) != 33 or raw[0] != COSIGNATURE_TYPE:
        raise CosignerKeyError("cosigner key is not an Ed25519 cosignature/v1 key")
    try:
        Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError:
        raise CosignerKeyError("cosigner key is not a valid Ed25519 key") from None
    if key_id(name, raw[1:]).hex() != hex_id:
        raise CosignerKeyError("cosigner key ID does not match its name and key")
    return name, key_id(name, raw[1:]), raw[1:]
