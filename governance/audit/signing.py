"""The audit log's Ed25519 signing key: created by ``warden init``, kept like the other keys.

The private key lives in a 0600 file (PKCS#8 PEM, unencrypted: the file's permissions protect
it, as for the key-encryption key). The public key is exported as a C2SP verifier key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.audit.note import vkey_for
from governance.errors import ConfigurationError
from governance.private_files import check_private_file


def create_signing_key(path: Path) -> None:
    """Create a new signing key file, mode 0600; refuse to overwrite one.

    Raises:
        ConfigurationError: the file exists.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(
            f"signing key {path} already exists; refusing to replace it"
        ) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the signing key, refusing unsafe permissions or a malformed file.

    Raises:
        ConfigurationError: missing, unsafe, unreadable or not an Ed25519 key.
    """
    check_private_file(path, "audit signing key")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(f"audit signing key {path} is not a valid PEM key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"audit signing key {path} is not an Ed25519 key")
    return key


def public_vkey(origin: str, key: Ed25519PrivateKey) -> str:
    """The C2SP verifier key an auditor needs to check checkpoints."""
    return vkey_for(origin, key.public_key())
