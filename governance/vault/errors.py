"""Vault errors. Every message is safe to show and log: none ever contains key material.

The status codes follow the fail-closed rule. Keys that cannot be had are a 503. A record that
fails authentication is a 422. An unsafe key source is a configuration error, found at start-up.
"""

from __future__ import annotations

from typing import Any, ClassVar

from governance.errors import ConfigurationError, WardenError

DECRYPTION_FAILED_MESSAGE = (
    "record failed authentication: ciphertext, nonce or associated data altered, or record moved"
)


class VaultError(WardenError):
    """Base of every vault error."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Vault error"
    type_slug: ClassVar[str] = "vault"


class KeyProviderError(VaultError):
    """Keys are unavailable (provider down, KEK retired or unknown): deny, never serve plaintext."""

    status_code = 503
    title = "Key provider unavailable"
    type_slug = "key-provider-unavailable"


class DecryptionError(VaultError):
    """A sealed record or wrapped key failed AES-GCM authentication, or is malformed.

    The message is fixed, so it cannot carry key material or plaintext, and it does not tell an
    attacker which check failed.
    """

    status_code = 422
    title = "Decryption failed"
    type_slug = "decryption-failed"

    def __init__(
        self,
        message: str = DECRYPTION_FAILED_MESSAGE,
        *,
        status_code: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, extra=extra)


class KeyLifecycleError(VaultError):
    """A refused key operation: rotating a read-only provider, retiring the current KEK."""

    status_code = 409
    title = "Key operation refused"
    type_slug = "key-operation-refused"


class VaultConfigError(VaultError, ConfigurationError):
    """An unsafe or invalid key configuration, raised at start-up, never at request time."""

    status_code = 500
    title = "Key configuration error"
    type_slug = "key-configuration"


class KeyFileError(VaultConfigError):
    """A key file that is unsafe (permissions, not a regular file) or unreadable or invalid."""

    title = "Key file error"
    type_slug = "key-file"


class KeyDestroyed(VaultError):
    """The data key was destroyed (erasure): what it sealed is gone for good."""

    status_code = 410
    title = "Data erased"
    type_slug = "data-erased"
