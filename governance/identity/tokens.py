"""API key tokens: 32 random bytes behind a recognisable prefix, stored only as a hash.

A token reads ``wdn_<key id>_<secret>``: the key id (8 hex characters) lets an operator name a key
in logs and revocations without the secret; the secret is 32 bytes from ``secrets``, base64url.
SHA-256 is the right hash here (not a password KDF): the secret has 256 bits of entropy, so
there is nothing to brute-force, and the hot path can afford it.
"""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "wdn_"
TOKEN_RE = re.compile(r"^wdn_([0-9a-f]{8})_([A-Za-z0-9_-]{43})\Z")
# An enrolment code has the same shape under its own prefix, so neither is taken for the other.
ENROLMENT_PREFIX = "wen_"
ENROLMENT_RE = re.compile(r"^wen_([0-9a-f]{8})_([A-Za-z0-9_-]{43})\Z")


def new_token(prefix: str = PREFIX) -> tuple[str, str]:
    """A fresh ``(key_id, token)``."""
    key_id = secrets.token_hex(4)
    return key_id, f"{prefix}{key_id}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    return TOKEN_RE.fullmatch(token) is not None


def well_formed_code(code: str) -> bool:
    return ENROLMENT_RE.fullmatch(code) is not None
