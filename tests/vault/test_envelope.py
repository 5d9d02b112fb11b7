"""Envelope encryption: DEKs wrapped under the KEK, bound to their row; rewrap on rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from governance.vault.envelope import (
    DEK_BYTES,
    DekBinding,
    WrappedKey,
    dek_aad,
    new_dek,
    rewrap,
    unwrap_dek,
    wrap_dek,
)
from governance.vault.errors import DecryptionError, KeyProviderError
from governance.vault.providers import LocalKeyFileProvider
from governance.vault.record_format import RecordFields, open_sealed, seal

REF = "5" * 64


def _b(dek_id: str, *, subject_ref: str = REF, version: int = 1, fmt: int = 2) -> DekBinding:
    return DekBinding(dek_id=dek_id, subject_ref=subject_ref, version=version, wrap_format=fmt)


@pytest.fixture
def provider(tmp_path: Path) -> LocalKeyFileProvider:
    return LocalKeyFileProvider.create(tmp_path / "keys.json")


def test_new_dek_is_32_fresh_random_bytes() -> None:
    deks = {new_dek() for _ in range(64)}
    assert len(deks) == 64
    assert all(isinstance(dek, bytes) and len(dek) == DEK_BYTES == 32 for dek in deks)


def test_wrap_unwrap_round_trip(provider: LocalKeyFileProvider) -> None:
    dek = new_dek()
    wrapped = wrap_dek(provider, dek, binding=_b("dek-1"))
    assert wrapped.kek_id == provider.key_id
    assert dek not in wrapped.blob
    assert unwrap_dek(provider, wrapped, binding=_b("dek-1")) == dek


def test_wrapped_key_moved_to_another_id_fails(provider: LocalKeyFileProvider) -> None:
    wrapped = wrap_dek(provider, new_dek(), binding=_b("dek-1"))
    for other in ("dek-2", "dek-1 ", "DEK-1", ""):
        with pytest.raises(DecryptionError):
            unwrap_dek(provider, wrapped, binding=_b(other))


def test_tampered_wrapped_key_fails(provider: LocalKeyFileProvider) -> None:
    wrapped = wrap_dek(provider, new_dek(), binding=_b("dek-1"))
    for position in range(len(wrapped.blob)):
        blob = bytearray(wrapped.blob)
        blob[position] ^= 0x80
        with pytest.raises(DecryptionError):
            unwrap_dek(provider, WrappedKey(wrapped.kek_id, bytes(blob)), binding=_b("dek-1"))


def test_dek_must_be_32_bytes(provider: LocalKeyFileProvider) -> None:
    for bad in (b"", b"k" * 16, b"k" * 33):
        with pytest.raises(ValueError, match="32 bytes"):
            wrap_dek(provider, bad, binding=_b("dek-1"))


def test_authentic_key_of_the_wrong_size_is_refused(provider: LocalKeyFileProvider) -> None:
    # Wrapped with the right AAD but not a DEK: must not be handed out as one.
    wrapped = provider.wrap(b"k" * 16, aad=dek_aad(_b("dek-1")))
    with pytest.raises(DecryptionError):
        unwrap_dek(provider, wrapped, binding=_b("dek-1"))


def test_rewrap_after_rotation(provider: LocalKeyFileProvider) -> None:
    dek = new_dek()
    old = wrap_dek(provider, dek, binding=_b("dek-1"))
    fields = RecordFields(
        record_id="rec-1",
        subject_ref="s",
        model="m",
        model_version="m@1",
        principal="p",
        request_id="r",
        dek_id="dek-1",
        dek_version=1,
    )
    record = seal(dek, b'{"x": [1, 2]}', fields)
    assert provider.rotate() == "kek-2"

    assert unwrap_dek(provider, old, binding=_b("dek-1")) == dek  # old wrapped keys still work
    new = rewrap(provider, old, binding=_b("dek-1"))
    assert old.kek_id == "kek-1"
    assert new.kek_id == "kek-2"
    assert new.blob != old.blob
    assert unwrap_dek(provider, new, binding=_b("dek-1")) == dek
    # The record was not re-encrypted and still opens with the rewrapped key.
    opened = open_sealed(unwrap_dek(provider, new, binding=_b("dek-1")), record, fields)
    assert opened == b'{"x": [1, 2]}'

    # Once every key is rewrapped the old KEK can go; keys left on it fail closed.
    provider.retire("kek-1")
    assert unwrap_dek(provider, new, binding=_b("dek-1")) == dek
    with pytest.raises(KeyProviderError):
        unwrap_dek(provider, old, binding=_b("dek-1"))


def test_rewrap_is_idempotent(provider: LocalKeyFileProvider) -> None:
    wrapped = wrap_dek(provider, new_dek(), binding=_b("dek-1"))
    assert rewrap(provider, wrapped, binding=_b("dek-1")) is wrapped


def test_rewrap_keeps_the_id_binding(provider: LocalKeyFileProvider) -> None:
    old = wrap_dek(provider, new_dek(), binding=_b("dek-1"))
    provider.rotate()
    with pytest.raises(DecryptionError):
        rewrap(provider, old, binding=_b("dek-2"))
    new = rewrap(provider, old, binding=_b("dek-1"))
    with pytest.raises(DecryptionError):
        unwrap_dek(provider, new, binding=_b("dek-2"))


def test_a_relabelled_subject_or_version_fails(provider: LocalKeyFileProvider) -> None:
    wrapped = wrap_dek(provider, new_dek(), binding=_b("dek-1"))
    for other in (_b("dek-1", subject_ref="6" * 64), _b("dek-1", version=2), _b("dek-1", fmt=1)):
        with pytest.raises(DecryptionError):
            unwrap_dek(provider, wrapped, binding=other)


def test_a_format_1_key_unwraps_and_is_rewrapped_as_format_2(
    provider: LocalKeyFileProvider,
) -> None:
    """Keys wrapped before format 2 bound only their id: they still open (under any label,
    as before), and a rewrap, even under the same KEK, binds their subject and version."""
    dek = new_dek()
    legacy = provider.wrap(dek, aad=dek_aad(_b("dek-1", fmt=1)))
    assert unwrap_dek(provider, legacy, binding=_b("dek-1", fmt=1)) == dek
    assert unwrap_dek(provider, legacy, binding=_b("dek-1", subject_ref="7" * 64, fmt=1)) == dek
    moved = rewrap(provider, legacy, binding=_b("dek-1", fmt=1))
    assert moved.kek_id == legacy.kek_id and moved.blob != legacy.blob
    assert unwrap_dek(provider, moved, binding=_b("dek-1")) == dek
    with pytest.raises(DecryptionError):
        unwrap_dek(provider, moved, binding=_b("dek-1", subject_ref="7" * 64))
    with pytest.raises(DecryptionError):
        unwrap_dek(provider, legacy, binding=_b("dek-1", fmt=9))


class _UnreachableKms:
    """A remote provider during an outage: every call fails with a transport error."""

    key_id = "kms-1"

    def wrap(self, dek: bytes, *, aad: bytes) -> WrappedKey:
        raise ConnectionError("kms.example: connection refused")

    def unwrap(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        raise TimeoutError("kms.example: timed out")

    def available_kek_ids(self) -> tuple[str, ...]:
        return ("kms-1",)

    def rotate(self) -> str:
        raise ConnectionError("kms.example: connection refused")


def test_provider_outage_fails_closed() -> None:
    kms = _UnreachableKms()
    with pytest.raises(KeyProviderError, match="ConnectionError") as caught:
        wrap_dek(kms, os.urandom(32), binding=_b("dek-1"))
    assert caught.value.status_code == 503
    with pytest.raises(KeyProviderError, match="TimeoutError"):
        unwrap_dek(kms, WrappedKey("kms-1", b"x" * 60), binding=_b("dek-1"))
    with pytest.raises(KeyProviderError):
        rewrap(kms, WrappedKey("kms-0", b"x" * 60), binding=_b("dek-1"))
