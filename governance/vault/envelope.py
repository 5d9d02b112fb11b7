"""Envelope encryption: per-subject data keys (DEKs) wrapped by the provider's KEK.

A DEK is 32 random bytes (AES-256). It is stored only wrapped, as a :class:`WrappedKey` row
keyed by ``dek_id``. The wrap binds ``dek_id`` through the associated data, so a wrapped key
copied onto another id's row fails to unwrap instead of silently decrypting another subject's
records. Destroying every wrapped copy of a DEK erases its records (crypto-shredding).

The wrap AAD is the canonical encoding (see :mod:`governance.vault._canonical`) of
``("warden.dek/1", dek_id)``; the provider adds its own label and the KEK id on top.

KEK rotation is :func:`rewrap`: unwrap with the old KEK, wrap with the current one. Records are
never re-encrypted, because their DEK does not change.
"""

from __future__ import annotations

import os

from governance.vault._canonical import text_field
from governance.vault._keyring import KEY_BYTES, WrappedKey
from governance.vault.errors import DecryptionError, KeyProviderError, VaultError
from governance.vault.providers import KeyProvider

__all__ = ["DEK_BYTES", "WrappedKey", "new_dek", "rewrap", "unwrap_dek", "wrap_dek"]

DEK_BYTES = KEY_BYTES
_DEK_LABEL = text_field("warden.dek/1", name="label")


def new_dek() -> bytes:
    """A fresh data key.

    Returns:
        32 bytes from the operating system's CSPRNG.
    """
    return os.urandom(DEK_BYTES)


def dek_aad(dek_id: str) -> bytes:
    """The associated data that binds a wrapped DEK to its id.

    Raises:
        TypeError, ValueError: ``dek_id`` is not a str or not valid Unicode.
    """
    return _DEK_LABEL + text_field(dek_id, name="dek_id")


def wrap_dek(provider: KeyProvider, dek: bytes, *, dek_id: str) -> WrappedKey:
    """Wrap a DEK under the provider's current KEK, bound to ``dek_id``.

    Args:
        provider: the key provider.
        dek: a 32-byte data key from :func:`new_dek`.
        dek_id: the id under which the wrapped key will be stored.

    Returns:
        The wrapped key; store ``kek_id`` and ``blob``.

    Raises:
        ValueError: ``dek`` is not 32 bytes.
        KeyProviderError: the provider failed (fail closed: do not store records without a key).
    """
    _check_dek(dek)
    aad = dek_aad(dek_id)
    try:
        return provider.wrap(dek, aad=aad)
    except VaultError:
        raise
    except Exception as exc:
        # A remote provider (KMS) fails in its own ways; callers see one fail-closed error.
        raise KeyProviderError(
            f"key provider failed to wrap a data key: {type(exc).__name__}"
        ) from exc


def unwrap_dek(provider: KeyProvider, wrapped: WrappedKey, *, dek_id: str) -> bytes:
    """Recover a DEK from its wrapped form.

    Args:
        provider: the key provider holding ``wrapped.kek_id``.
        wrapped: the stored wrapped key.
        dek_id: the id of the row it was read from.

    Returns:
        The 32-byte DEK.

    Raises:
        DecryptionError: the wrapped key was altered or belongs to another ``dek_id``.
        KeyProviderError: its KEK is unavailable or the provider failed.
    """
    aad = dek_aad(dek_id)
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


def rewrap(provider: KeyProvider, wrapped: WrappedKey, *, dek_id: str) -> WrappedKey:
    """Move a wrapped DEK onto the provider's current KEK, for KEK rotation.

    The DEK itself is unchanged, so records sealed under it stay readable without
    re-encryption. A key already under the current KEK is returned as is, so a rewrap pass
    can be re-run after an interruption.

    Args:
        provider: the key provider; its current KEK wraps the result.
        wrapped: the stored wrapped key, under any available KEK version.
        dek_id: the id of its row.

    Returns:
        The wrapped key under ``provider.key_id``; store it in place of ``wrapped``.

    Raises:
        DecryptionError: the wrapped key was altered or belongs to another ``dek_id``.
        KeyProviderError: its KEK is unavailable or the provider failed.
    """
    if wrapped.kek_id == provider.key_id:
        return wrapped
    return wrap_dek(provider, unwrap_dek(provider, wrapped, dek_id=dek_id), dek_id=dek_id)


def _check_dek(dek: bytes) -> None:
    if not isinstance(dek, bytes | bytearray | memoryview) or len(dek) != DEK_BYTES:
        raise ValueError(f"a data key must be {DEK_BYTES} bytes")
