"""Key providers: where key-encryption keys (KEKs) live, and the only code that touches them.

A :class:`KeyProvider` wraps and unwraps data keys under versioned KEKs. ``key_id`` is the
current version, which wraps new keys. Older versions stay available for unwrap until retired,
so rotation never re-encrypts a record: data keys are rewrapped instead
(:func:`governance.vault.envelope.rewrap`). A KMS- or Vault-style provider implements the
same Protocol and registers a factory with :func:`register_provider`.

Two providers are built in. Both read the ``warden.keys/1`` document described in
:mod:`governance.vault._keyring`, which also holds the service's two HMAC secrets (blind index
and audit digest, see :class:`ServiceKeyProvider`):

- :class:`LocalKeyFileProvider` (``"file"``): a 0600 JSON key file; it can rotate.
- :class:`EnvKeyProvider` (``"env"``): base64 of the document in ``WARDEN_KEYS_JSON``; it is
  read-only, and rotation happens in the secret store that sets the variable.

Every provider fails closed: an unavailable KEK is a :class:`KeyProviderError` (503), never a
fallback to another key.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from governance.vault import _keyfile
from governance.vault._keyring import (
    KEY_DOCUMENT_FORMAT,
    Keyring,
    WrappedKey,
    b64decode_strict,
    parse_key_document,
)
from governance.vault.errors import (
    KeyFileError,
    KeyLifecycleError,
    KeyProviderError,
    VaultConfigError,
)

__all__ = [
    "KEYS_ENV_VAR",
    "KEY_DOCUMENT_FORMAT",
    "DatedKeks",
    "EnvKeyProvider",
    "KeyProvider",
    "LocalKeyFileProvider",
    "ProviderFactory",
    "ServiceKeyProvider",
    "WrappedKey",
    "load_provider",
    "provider_kinds",
    "register_provider",
]

KEYS_ENV_VAR = "WARDEN_KEYS_JSON"


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps data keys under versioned KEKs. Implementations must be thread-safe."""

    @property
    def key_id(self) -> str:
        """The current KEK version id; :meth:`wrap` uses it."""
        ...

    def wrap(self, dek: bytes, *, aad: bytes) -> WrappedKey:
        """Encrypt ``dek`` under the current KEK, bound to ``aad``.

        Raises:
            KeyProviderError: the KEK is unavailable.
        """
        ...

    def unwrap(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        """Decrypt a wrapped key with the KEK version named in it.

        Raises:
            KeyProviderError: that KEK version is unavailable (retired, unknown, provider down).
            DecryptionError: the blob or ``aad`` was altered.
        """
        ...

    def available_kek_ids(self) -> tuple[str, ...]:
        """Every KEK version that can still unwrap, oldest first."""
        ...

    def rotate(self) -> str:
        """Create a new KEK version, make it current and return its id.

        Raises:
            KeyLifecycleError: this provider cannot rotate (keys managed elsewhere).
        """
        ...


@runtime_checkable
class ServiceKeyProvider(KeyProvider, Protocol):
    """A key provider that also supplies the service's two independent HMAC secrets."""

    def blind_index_key(self) -> bytes:
        """The HMAC key for subject blind indexes (``blind_index.blind_index``)."""
        ...

    def digest_key(self) -> bytes:
        """The HMAC key for audit input/output digests (``blind_index.digest``)."""
        ...


@runtime_checkable
class DatedKeks(Protocol):
    """A key provider that knows when each of its KEK versions was created (the KEK rotation
    schedule, :mod:`governance.vault.kek_schedule`, reads it)."""

    def kek_created(self, kek_id: str) -> datetime | None:
        """When ``kek_id`` was created; None when unknown."""
        ...


class _KeyringProvider:
    """Wrap/unwrap over an immutable :class:`Keyring` that is swapped whole on change."""

    _keyring: Keyring

    @property
    def key_id(self) -> str:
        return self._keyring.current

    def wrap(self, dek: bytes, *, aad: bytes) -> WrappedKey:
        """Encrypt ``dek`` under the current KEK with a fresh nonce (see :class:`KeyProvider`)."""
        return self._keyring.wrap(bytes(dek), aad=bytes(aad))

    def unwrap(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        """Decrypt with the KEK version in ``wrapped`` (see :class:`KeyProvider`).

        Raises:
            KeyProviderError: that KEK version is not in the keyring.
            DecryptionError: the blob or ``aad`` was altered.
        """
        keyring = self._keyring_with(wrapped.kek_id)
        if keyring is None:
            raise KeyProviderError(
                f"KEK {wrapped.kek_id[:64]!r} is not available from this key provider "
                "(retired, or never issued by it)"
            )
        return keyring.unwrap(wrapped, aad=bytes(aad))

    def available_kek_ids(self) -> tuple[str, ...]:
        return self._keyring.kek_ids()

    def blind_index_key(self) -> bytes:
        return self._keyring.blind_index_key

    def kek_created(self, kek_id: str) -> datetime | None:
        for kek in self._keyring.keks:
            if kek.id == kek_id:
                return kek.created
        return None

    def digest_key(self) -> bytes:
        return self._keyring.digest_key

    def _keyring_with(self, kek_id: str) -> Keyring | None:
        keyring = self._keyring
        return keyring if keyring.has(kek_id) else None


class LocalKeyFileProvider(_KeyringProvider):
    """KEKs and HMAC secrets in a local JSON key file that only its owner may access (0600).

    Loading refuses an unsafe or invalid file with a :class:`KeyFileError` naming the path.
    Several processes may share one file: rotation and retirement take a file lock and start
    from the file's current content; a process re-reads the file when it changed before it
    names or uses the current KEK (one ``stat``), so a rotation made by another process is
    followed by the next key it wraps; and one that meets a KEK id it does not know yet
    re-reads the file once before failing.

    Args:
        path: the key file, created by :meth:`create`.

    Raises:
        KeyFileError: the file is missing, unreadable, not a regular file, accessible by group
            or others, or not a valid ``warden.keys/1`` document.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._stamp = _file_stamp(self._path)  # before reading: a later change is noticed
        self._keyring = _load_file(self._path)

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> LocalKeyFileProvider:
        """Create a new key file (mode 0600, atomically) with one KEK and two HMAC secrets.

        Args:
            path: where to create it; its folder must exist.

        Returns:
            A provider over the new file.

        Raises:
            KeyFileError: a file already exists there (never overwritten), or writing failed.
        """
        target = Path(path)
        _keyfile.write_key_file(target, Keyring.generate().to_json_bytes(), replace=False)
        return cls(target)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def key_id(self) -> str:
        """The current KEK version id, as the key file says now (see the class docstring).

        Raises:
            KeyProviderError: the file changed and is no longer safe or valid.
        """
        return self._followed().current

    def wrap(self, dek: bytes, *, aad: bytes) -> WrappedKey:
        """Encrypt ``dek`` under the file's current KEK (see :class:`KeyProvider`).

        Raises:
            KeyProviderError: the file changed and is no longer safe or valid.
        """
        return self._followed().wrap(bytes(dek), aad=bytes(aad))

    def rotate(self, *, now: datetime | None = None) -> str:
        """Add a new KEK version to the file and make it current; older versions stay.

        Args:
            now: the new version's creation time (the schedule's clock); the current time
                by default.

        Returns:
            The new KEK id.

        Raises:
            KeyFileError: the file became unsafe or invalid since start-up.
            KeyProviderError: the new file could not be written; the old one is unchanged.
        """
        with self._lock, _keyfile.locked(self._path):
            rotated = _load_file(self._path).with_new_kek(now=now)
            self._store(rotated)
        return rotated.current

    def retire(self, kek_id: str) -> None:
        """Remove a KEK version for good, once no wrapped key uses it any more (after rewrap).

        Data keys still wrapped under it become unrecoverable, so the caller must check first.

        Raises:
            KeyLifecycleError: ``kek_id`` is the current version or unknown.
            KeyProviderError: the new file could not be written; the old one is unchanged.
        """
        with self._lock, _keyfile.locked(self._path):
            keyring = _load_file(self._path)
            if not keyring.has(kek_id):
                raise KeyLifecycleError(f"cannot retire KEK {kek_id[:64]!r}: no such KEK")
            if kek_id == keyring.current:
                raise KeyLifecycleError(
                    f"cannot retire KEK {kek_id!r}: it is the current KEK; rotate first"
                )
            self._store(keyring.without(kek_id))

    def reload(self) -> None:
        """Re-read the key file, picking up a rotation made by another process.

        Raises:
            KeyFileError: the file became unsafe or invalid.
        """
        with self._lock:
            stamp = _file_stamp(self._path)
            self._keyring = _load_file(self._path)
            self._stamp = stamp

    def _followed(self) -> Keyring:
        """The keyring, re-read first when the file changed since it was read (fail closed:
        a file that became unsafe or invalid refuses the caller)."""
        if _file_stamp(self._path) != self._stamp:
            try:
                self.reload()
            except KeyFileError as exc:
                raise KeyProviderError(f"key file unavailable: {exc.message}") from None
        return self._keyring

    def _store(self, keyring: Keyring) -> None:
        # Called under the file lock: nobody else can change the file between write and stat.
        try:
            _keyfile.write_key_file(self._path, keyring.to_json_bytes(), replace=True)
        except KeyFileError as exc:
            message = exc.message
        else:
            self._keyring = keyring
            self._stamp = _file_stamp(self._path)
            return
        raise KeyProviderError(f"key file update failed, file unchanged: {message}")

    def _keyring_with(self, kek_id: str) -> Keyring | None:
        keyring = self._keyring
        if keyring.has(kek_id):
            return keyring
        # Another process may have rotated since this one loaded the file.
        try:
            self.reload()
        except KeyFileError as exc:
            message = exc.message
        else:
            keyring = self._keyring
            return keyring if keyring.has(kek_id) else None
        raise KeyProviderError(f"key file unavailable: {message}")

    def __repr__(self) -> str:
        keyring = self._keyring
        return (
            f"LocalKeyFileProvider(path={str(self._path)!r}, current={keyring.current!r}, "
            f"keks={len(keyring.keks)})"
        )


class EnvKeyProvider(_KeyringProvider):
    """KEKs and HMAC secrets from an environment variable holding base64 of the key document.

    Read-only: the variable is set by a secret store (Kubernetes secret, systemd credential),
    so rotation happens there, followed by a restart with old KEKs kept in the document.

    Args:
        env: the environment to read; ``os.environ`` when None.
        var: the variable name.

    Raises:
        VaultConfigError: the variable is missing, not base64, or not a valid key document.
    """

    def __init__(self, *, env: Mapping[str, str] | None = None, var: str = KEYS_ENV_VAR) -> None:
        source = os.environ if env is None else env
        self._var = var
        value = source.get(var)
        if value is None or not value.strip():
            raise VaultConfigError(
                f"environment variable {var} is not set; it must hold the base64 of a "
                f"{KEY_DOCUMENT_FORMAT} key document"
            )
        raw = b64decode_strict(value)
        if raw is None:
            raise VaultConfigError(f"environment variable {var} is not valid base64")
        keyring, problems = parse_key_document(raw)
        if keyring is None:
            raise VaultConfigError(
                f"key document in environment variable {var} is invalid: {'; '.join(problems)}"
            )
        self._keyring = keyring

    def rotate(self) -> str:
        """Always refused.

        Raises:
            KeyLifecycleError: keys from the environment are read-only.
        """
        raise KeyLifecycleError(
            f"keys come from environment variable {self._var} and are read-only here: rotation "
            "must happen in the secret store that sets it (add a new KEK, make it current, keep "
            "the old ones), then restart"
        )

    def __repr__(self) -> str:
        keyring = self._keyring
        return (
            f"EnvKeyProvider(var={self._var!r}, current={keyring.current!r}, "
            f"keks={len(keyring.keks)})"
        )


def _file_stamp(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when the key file is replaced (atomically, so a new inode) or edited."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def _load_file(path: Path) -> Keyring:
    keyring, problems = parse_key_document(_keyfile.read_key_file(path))
    if keyring is None:
        raise KeyFileError(f"key file {path} is invalid: {'; '.join(problems)}")
    return keyring


class ProviderFactory(Protocol):
    """Builds a provider from start-up settings; registered under a kind name."""

    def __call__(
        self, *, path: Path | None, env: Mapping[str, str] | None
    ) -> ServiceKeyProvider: ...


def _file_factory(*, path: Path | None, env: Mapping[str, str] | None) -> ServiceKeyProvider:
    if path is None:
        raise VaultConfigError("the 'file' key provider needs the key file's path")
    return LocalKeyFileProvider(path)


def _env_factory(*, path: Path | None, env: Mapping[str, str] | None) -> ServiceKeyProvider:
    return EnvKeyProvider(env=env)


_REGISTRY: dict[str, ProviderFactory] = {"file": _file_factory, "env": _env_factory}
_REGISTRY_LOCK = threading.Lock()


def register_provider(kind: str, factory: ProviderFactory, *, replace: bool = False) -> None:
    """Make a provider kind available to :func:`load_provider`.

    Args:
        kind: the name used in configuration, e.g. ``"aws-kms"``.
        factory: called with ``path`` and ``env`` keywords.
        replace: allow replacing an existing kind.

    Raises:
        ValueError: ``kind`` is already registered and ``replace`` is False.
    """
    with _REGISTRY_LOCK:
        if kind in _REGISTRY and not replace:
            raise ValueError(f"key provider kind {kind!r} is already registered")
        _REGISTRY[kind] = factory


def provider_kinds() -> tuple[str, ...]:
    """The registered provider kinds, sorted."""
    return tuple(sorted(_REGISTRY))


def load_provider(
    kind: str,
    *,
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> ServiceKeyProvider:
    """Build the configured key provider at start-up.

    Args:
        kind: a registered kind: ``"file"`` or ``"env"`` built in.
        path: the key file, for ``"file"``.
        env: the environment, for ``"env"``; ``os.environ`` when None.

    Returns:
        The provider.

    Raises:
        VaultConfigError: unknown kind, missing setting, or an unsafe or invalid key source
            (:class:`KeyFileError` for key files).
    """
    factory: Callable[..., ServiceKeyProvider] | None = _REGISTRY.get(kind)
    if factory is None:
        raise VaultConfigError(
            f"unknown key provider kind {kind[:40]!r}; known kinds: {', '.join(provider_kinds())}"
        )
    return factory(path=None if path is None else Path(path), env=env)
