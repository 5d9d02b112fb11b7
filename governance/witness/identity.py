"""A witness's identity: its name and Ed25519 key, kept in its own state folder.

``warden witness init`` writes ``witness.key`` (PKCS#8 PEM, 0600) and ``witness.name`` into a
0700 folder; nothing of the log's (database, signing key) is read or needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.audit.errors import NoteFormatError
from governance.audit.signing import create_signing_key
from governance.errors import ConfigurationError
from governance.private_files import check_private_file, private_dir
from governance.witness.cosignature import CosignerKey, cosigner_key

__all__ = ["KEY_FILE", "NAME_FILE", "WitnessIdentity", "init_witness", "load_witness"]

KEY_FILE = "witness.key"
NAME_FILE = "witness.name"


@dataclass(frozen=True)
class WitnessIdentity:
    """The witness's cosigning key and the name it signs under."""

    name: str
    private_key: Ed25519PrivateKey

    @property
    def key(self) -> CosignerKey:
        return cosigner_key(self.name, self.private_key.public_key())

    @property
    def vkey(self) -> str:
        """The verifier key a log operator configures (``WARDEN_WITNESSES``)."""
        return self.key.vkey()


def init_witness(state_dir: Path, name: str) -> WitnessIdentity:
    """Create a witness's key and name in ``state_dir``; refuse to replace an existing key.

    Args:
        state_dir: the witness's own folder (created 0700).
        name: the cosigner name, a schema-less URL such as ``witness.example.org/w1``.

    Raises:
        ConfigurationError: an invalid name, or a key already there.
    """
    try:
        cosigner_key(name, Ed25519PrivateKey.generate().public_key())
    except NoteFormatError as exc:
        raise ConfigurationError(f"invalid witness name: {exc.message}") from None
    private_dir(state_dir)
    create_signing_key(state_dir / KEY_FILE)
    (state_dir / NAME_FILE).write_text(name + "\n", encoding="utf-8")
    return load_witness(state_dir)


def load_witness(state_dir: Path) -> WitnessIdentity:
    """Load the witness of ``state_dir``, refusing a key others can read.

    Raises:
        ConfigurationError: a missing, unsafe or malformed key or name.
    """
    key_path, name_path = state_dir / KEY_FILE, state_dir / NAME_FILE
    if not key_path.exists() or not name_path.exists():
        raise ConfigurationError(
            f"no witness in {state_dir}: run `warden witness init --state {state_dir}` first"
        )
    check_private_file(key_path, "witness key")
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(f"witness key {key_path} is not a valid PEM key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"witness key {key_path} is not an Ed25519 key")
    name = name_path.read_text(encoding="utf-8").strip()
    try:
        cosigner_key(name, key.public_key())
    except NoteFormatError:
        raise ConfigurationError(f"witness name in {name_path} is invalid") from None
    return WitnessIdentity(name=name, private_key=key)
