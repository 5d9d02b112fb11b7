"""A person's password: the rule it must meet and its argon2id hash (the only form stored)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from governance.identity.errors import WeakPassword

MIN_LENGTH = 12
# Bounded so that a megabyte "password" cannot make argon2 a denial of service.
MAX_LENGTH = 256

# argon2-cffi's defaults are argon2id with RFC 9106's second recommended parameter set.
_hasher = PasswordHasher()
# Verified against when the name is unknown, so that an unknown name costs the same time.
_DECOY = _hasher.hash("warden-decoy-password-not-used")


def check_rule(name: str, password: str) -> None:
    """Raises WeakPassword: shorter than 12 characters, too long, or containing the name."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password has at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    if name.casefold() in password.casefold():
        raise WeakPassword("a password must not contain the person's name")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: no password; a decoy is checked)."""
    try:
        return _hasher.verify(stored or _DECOY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
