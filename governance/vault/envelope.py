"""Envelope encryption: per-subject data keys (DEKs) wrapped by the provider's KEK.

A DEK is 32 random bytes (AES-256). It is stored only wrapped, as a :class:`WrappedKey` row.
The wrap binds the row's identity through the associated data, so a wrapped key copied onto
another row, or relabelled with another subject or version, fails to unwrap instead of
silently decrypting another subject's records. Destroying every wrapped copy of a DEK erases
its records (crypto-shredding).

The wrap AAD is the canonical encoding (see :mod:`governance.vault._canonical`) of a
:class:`DekBinding`, in one of two formats:

- format 2: ``("warden.dek/2", dek_id, subject_ref, version as u64)``, every key made now;
- format 1: ``("warden.dek/1", dek_id)``, keys made before migration 0012, until a KEK
  rotation rewraps them as format 2.

The label differs, so a format 2 wrap never opens as format 1: the stored format number is
not a way to downgrade a key. The provider adds its own label and the KEK id on top.

KEK rotation is :func:`rewrap`: unwrap with the old KEK, wrap with the current one (as format
2). Records are never re-encrypted, because their DEK does not change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from governance.vault._canonical import text_field, u64_field
from governance.vault._keyring import KEY_BYTES, WrappedKey
from governance.vault.errors import DecryptionError, KeyProviderError, VaultError
from governance.vault.providers import KeyProvider

__all__ = [
    "DEK_BYTES",
    "WRAP_FORMAT",
    "DekBinding",
    "WrappedKey",
    "dek_aad",
    "new_dek",
    "rewrap",
    "unwrap_dek",
    "wrap_dek",
]

DEK_BYTES = KEY_BYTES
WRAP_FORMAT = 2
_LABELS = {
    1: text_field("warden.dek/1", name="label"),
    2: text_field("warden.dek/2", name="label"),
}


@dataclass(frozen=True, slots=True)
class DekBinding:
    """What a wrapped DEK is bound to: the row it is stored in.

    Attributes:
        dek_id: the row's id.
        subject_ref: the subject reference (blind index) the key serves.
        version: the key's version for that subject.
        wrap_format: 2 for every key wrapped now; 1 for keys wrapped before migration 0012
            (bound to ``dek_id`` only).
    """

    dek_id: str
    subject_ref: str
    version: int
    wrap_format: int = WRAP_FORMAT


def new_dek() -> bytes:
    """A fresh data key.

    Returns:
        32 bytes from the operating system's CSPRNG.
    """
    return os.urandom(DEK_BYTES)


def dek_aad(binding: DekBinding) -> bytes:
    """The associated data that binds a wrapped DEK to its row (module docstring).

    Raises:
        TypeError, ValueError: a field has the wrong type or is not valid Unicode, or the
            format is unknown.
    """
    label = _LABELS.get(binding.wrap_format)
    if label is None:
        raise ValueError(f"unknown wrap format {binding.wrap_format!r}")
    aad = label + text_field(binding.dek_id, name="dek_id")
    if binding.wrap_format == 1:
        return aad
    return (
        aad
        + text_field(binding.subject_ref, name="subject_ref")
        + u64_field(binding.version, name="version")
    )


def wrap_dek(provider: KeyProvider, dek: bytes, *, binding: DekBinding) -> WrappedKey:
    """Wrap a DEK under the provider's current KEK, bound to the row that will store it.

    Args:
        provider: the key provider.
        dek: a 32-byte data key from :func:`new_dek`.
        binding: the row's id, subject and version; always wrapped as format 2.

    Returns:
        The wrapped key; store ``kek_id`` and ``blob``.

    Raises:
        ValueError: ``dek`` is not 32 bytes.
        KeyProviderError: the provider failed (fail closed: do not store records without a key).
    """
    _check_dek(dek)
    aad = dek_aad(replace(binding, wrap_format=WRAP_FORMAT))
    try:
        return provider.wrap(dek, aad=aad)
    except VaultError:
        raise
    except Exception as exc:
        # A remote provider (KMS) fails in its own ways; callers see one fail-closed error.
        raise KeyProviderError(
            f"key provider failed to wrap a data key: {type(exc).__name__}"
        ) from exc


def unwrap_dek(provider: KeyProvider, wrapped: WrappedKey, *, binding: DekBinding) -> bytes:
    """Recover a DEK from its wrapped form.

    Args:
        provider: the key provider holding ``wrapped.kek_id``.
        wrapped: the stored wrapped key.
        binding: the id, subject, version and wrap format of the row it was read from.

    Returns:
        The 32-byte DEK.

    Raises:
        DecryptionError: the wrapped key was altered, or belongs to another row, subject or
            version.
        KeyProviderError: its KEK is unavailable or the provider failed.
    """
    try:
        aad = dek_aad(binding)
    except (TypeError, ValueError):
        raise DecryptionError("wrapped data key has an unknown format or invalid fields") from None
    try:
        dek = provider.unwrap(wrapped, aad=aad)
    except VaultError:
        raise
    except Exception as exc:
        raise KeyProviderError(
            f"key provider failed to unwrap a data key: {type(exc).__name__}"
        ) from exc
    if len(dek) != DEK_BYTES:
        # Authentic but not a DEK: another kind of key was wrapped with this AAD. Refuse it.
        raise DecryptionError("wrapped data key is not a 32-byte data key")
    return dek


def rewrap(provider: KeyProvider, wrapped: WrappedKey, *, binding: DekBinding) -> WrappedKey:
    """Move a wrapped DEK onto the provider's current KEK as format 2, for KEK rotation.

    The DEK itself is unchanged, so records sealed under it stay readable without
    re-encryption. A format 2 key already under the current KEK is returned as is, so a
    rewrap pass can be re-run after an interruption.

    Args:
        provider: the key provider; its current KEK wraps the result.
        wrapped: the stored wrapped key, under any available KEK version.
        binding: its row's id, subject, version and current wrap format.

    Returns:
        The wrapped key under ``provider.key_id``, format :data:`WRAP_FORMAT`; store both in
        place of ``wrapped``.

    Raises:
        DecryptionError: the wrapped key was altered or belongs to another row.
        KeyProviderError: its KEK is unavailable or the provider failed.
    """
    if wrapped.kek_id == provider.key_id and binding.wrap_format == WRAP_FORMAT:
        return wrapped
    dek = unwrap_dek(provider, wrapped, binding=binding)
    return wrap_dek(provider, dek, binding=binding)


def _check_dek(dek: bytes) -> None:
    if not isinstance(dek, bytes | bytearray | memoryview) or len(dek) != DEK_BYTES:
        raise ValueError(f"a data key must be {DEK_BYTES} bytes")
