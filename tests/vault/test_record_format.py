"""The sealed-record format: layout, AAD binding, and refusal of every kind of tampering."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.vault.errors import DecryptionError
from governance.vault.record_format import (
    FORMAT_VERSION,
    RecordFields,
    SealedRecord,
    open_sealed,
    record_aad,
    seal,
)

DEK = bytes(range(32))
FIELDS: dict[str, Any] = {
    "record_id": "rec-0001",
    "subject_ref": "3f1c9a",
    "model": "credit-risk",
    "model_version": "credit-risk@3",
    "principal": "loan-app",
    "request_id": "req-77",
    "dek_id": "dek-42",
    "dek_version": 7,
}
PLAINTEXT = b'{"request": {"age": 41, "income": 52000}, "response": {"label": "approve"}}'
DECRYPTION_MESSAGE = (
    "record failed authentication: ciphertext, nonce or associated data altered, or record moved"
)


def _open(sealed: SealedRecord, dek: bytes = DEK, **changes: Any) -> bytes:
    return open_sealed(dek, sealed, RecordFields(**{**FIELDS, **changes}))


@pytest.fixture
def sealed() -> SealedRecord:
    return seal(DEK, PLAINTEXT, RecordFields(**FIELDS))


def test_round_trip(sealed: SealedRecord) -> None:
    assert _open(sealed) == PLAINTEXT


def test_sealing_with_the_keys_aes_gcm_context_is_sealing_with_the_key() -> None:
    # The key cache seals with an AESGCM made once per key; the record opens with the key.
    sealed = seal(AESGCM(DEK), PLAINTEXT, RecordFields(**FIELDS))
    assert _open(sealed) == PLAINTEXT
    with pytest.raises(DecryptionError):
        _open(seal(AESGCM(bytes(32)), PLAINTEXT, RecordFields(**FIELDS)))


def test_blob_from_a_driver_as_memoryview_opens(sealed: SealedRecord) -> None:
    assert _open(SealedRecord(memoryview(sealed.blob))) == PLAINTEXT  # type: ignore[arg-type]


def test_blob_layout(sealed: SealedRecord) -> None:
    assert sealed.version == FORMAT_VERSION == 2
    assert sealed.blob[0] == 2
    assert len(sealed.blob) == 1 + 12 + len(PLAINTEXT) + 16
    assert PLAINTEXT not in sealed.blob


def test_every_seal_uses_a_fresh_nonce() -> None:
    nonces = {seal(DEK, PLAINTEXT, RecordFields(**FIELDS)).blob[1:13] for _ in range(256)}
    assert len(nonces) == 256


def test_empty_payload_round_trips() -> None:
    assert _open(seal(DEK, b"", RecordFields(**FIELDS))) == b""


def test_documented_aad_encoding() -> None:
    def lp(text: str) -> bytes:
        raw = text.encode("utf-8")
        return struct.pack(">I", len(raw)) + raw

    expected = (
        lp("warden.record")
        + b"\x02"
        + lp("rec-0001")
        + lp("3f1c9a")
        + lp("credit-risk")
        + lp("credit-risk@3")
        + lp("loan-app")
        + lp("req-77")
        + lp("dek-42")
        + struct.pack(">Q", 7)
    )
    assert record_aad(RecordFields(**FIELDS)) == expected
    legacy = (
        lp("warden.record")
        + b"\x01"
        + lp("rec-0001")
        + lp("3f1c9a")
        + lp("credit-risk@3")
        + lp("dek-42")
        + struct.pack(">Q", 7)
    )
    assert record_aad(RecordFields(**FIELDS), version=1) == legacy


def test_documented_format_opens() -> None:
    # A blob built from the module docstring alone, with AESGCM directly, must open.
    nonce = bytes(12)
    blob = (
        b"\x02" + nonce + AESGCM(DEK).encrypt(nonce, PLAINTEXT, record_aad(RecordFields(**FIELDS)))
    )
    assert _open(SealedRecord(blob)) == PLAINTEXT


def test_a_format_1_record_still_opens_and_a_format_2_one_never_opens_as_format_1() -> None:
    """Records sealed before format 2 open under the fields format 1 bound; a format 2 blob
    whose version byte is rewritten to 1 fails (the byte is inside the AAD)."""
    fields = RecordFields(**FIELDS)
    nonce = os.urandom(12)
    old = b"\x01" + nonce + AESGCM(DEK).encrypt(nonce, PLAINTEXT, record_aad(fields, version=1))
    assert _open(SealedRecord(old)) == PLAINTEXT
    # Format 1 did not bind these: a legacy record is only as bound as it was sealed.
    assert _open(SealedRecord(old), principal="someone-else") == PLAINTEXT
    current = seal(DEK, PLAINTEXT, fields).blob
    with pytest.raises(DecryptionError):
        _open(SealedRecord(b"\x01" + current[1:]))


def test_aad_is_injective_across_field_boundaries() -> None:
    first = record_aad(RecordFields(**{**FIELDS, "record_id": "ab", "subject_ref": "c"}))
    second = record_aad(RecordFields(**{**FIELDS, "record_id": "a", "subject_ref": "bc"}))
    assert first != second


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("record_id", "rec-0002"),
        ("record_id", "rec-000"),
        ("subject_ref", "3f1c9b"),
        ("model", "credit-risk-2"),
        ("model_version", "credit-risk@4"),
        ("principal", "loan-app-2"),
        ("request_id", "req-78"),
        ("dek_id", "dek-43"),
        ("dek_version", 8),
        ("dek_version", 0),
    ],
)
def test_each_aad_field_is_bound(sealed: SealedRecord, field: str, value: Any) -> None:
    with pytest.raises(DecryptionError):
        _open(sealed, **{field: value})


def test_record_moved_to_another_id_fails(sealed: SealedRecord) -> None:
    other = seal(DEK, b"other", RecordFields(**{**FIELDS, "record_id": "rec-0002"}))
    # Swap the two rows' blobs: each now sits under the other's id.
    with pytest.raises(DecryptionError):
        _open(other)
    with pytest.raises(DecryptionError):
        _open(sealed, record_id="rec-0002")


@pytest.mark.parametrize(
    "position",
    [1, 12, 13, 13 + len(PLAINTEXT) - 1, 13 + len(PLAINTEXT), -1],
    ids=[
        "nonce-first",
        "nonce-last",
        "ciphertext-first",
        "ciphertext-last",
        "tag-first",
        "tag-last",
    ],
)
def test_tampered_blob_fails(sealed: SealedRecord, position: int) -> None:
    blob = bytearray(sealed.blob)
    blob[position] ^= 0x01
    with pytest.raises(DecryptionError) as caught:
        _open(SealedRecord(bytes(blob)))
    assert str(caught.value) == DECRYPTION_MESSAGE
    assert caught.value.status_code == 422
    assert caught.value.__context__ is None


@pytest.mark.parametrize("version", [0, 1, 3, 0xFF])
def test_wrong_version_byte_fails(sealed: SealedRecord, version: int) -> None:
    with pytest.raises(DecryptionError):
        _open(SealedRecord(bytes([version]) + sealed.blob[1:]))


@pytest.mark.parametrize("length", [0, 1, 13, 28, -1])
def test_truncated_blob_fails(sealed: SealedRecord, length: int) -> None:
    with pytest.raises(DecryptionError):
        _open(SealedRecord(sealed.blob[:length]))


def test_extended_blob_fails(sealed: SealedRecord) -> None:
    with pytest.raises(DecryptionError):
        _open(SealedRecord(sealed.blob + b"\x00"))


def test_wrong_dek_fails(sealed: SealedRecord) -> None:
    with pytest.raises(DecryptionError) as caught:
        _open(sealed, dek=os.urandom(32))
    for secret in (DEK.hex(), repr(DEK), PLAINTEXT.decode()):
        assert secret not in str(caught.value)


def test_invalid_arguments_are_programming_errors(sealed: SealedRecord) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal(DEK[:16], PLAINTEXT, RecordFields(**FIELDS))
    with pytest.raises(ValueError, match="32 bytes"):
        _open(sealed, dek=DEK[:31])
    with pytest.raises(ValueError, match="dek_version"):
        seal(DEK, PLAINTEXT, RecordFields(**{**FIELDS, "dek_version": -1}))
    with pytest.raises(ValueError, match="dek_version"):
        seal(DEK, PLAINTEXT, RecordFields(**{**FIELDS, "dek_version": 2**64}))
    with pytest.raises(TypeError, match="dek_version"):
        seal(DEK, PLAINTEXT, RecordFields(**{**FIELDS, "dek_version": True}))
    with pytest.raises(TypeError, match="record_id"):
        seal(DEK, PLAINTEXT, RecordFields(**{**FIELDS, "record_id": 5}))
    with pytest.raises(ValueError, match="not valid Unicode") as caught:
        seal(DEK, PLAINTEXT, RecordFields(**{**FIELDS, "subject_ref": "secret-\udc80"}))
    assert "secret" not in str(caught.value)


def test_repr_hides_the_blob(sealed: SealedRecord) -> None:
    assert repr(sealed) == f"SealedRecord(blob=<{len(sealed.blob)} bytes>)"


text_fields = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    payload=st.binary(max_size=4096),
    record_id=text_fields,
    subject_ref=text_fields,
    model_version=text_fields,
    dek_id=text_fields,
    dek_version=st.integers(min_value=0, max_value=2**64 - 1),
)
def test_any_payload_and_fields_round_trip(
    payload: bytes,
    record_id: str,
    subject_ref: str,
    model_version: str,
    dek_id: str,
    dek_version: int,
) -> None:
    fields = RecordFields(
        record_id=record_id,
        subject_ref=subject_ref,
        model=model_version[:3],
        model_version=model_version,
        principal=dek_id[::-1],
        request_id=record_id + "-r",
        dek_id=dek_id,
        dek_version=dek_version,
    )
    assert open_sealed(DEK, seal(DEK, payload, fields), fields) == payload


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=1024), data=st.data())
def test_any_single_byte_flip_fails(payload: bytes, data: st.DataObject) -> None:
    blob = bytearray(seal(DEK, payload, RecordFields(**FIELDS)).blob)
    position = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="position")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
    blob[position] ^= mask
    with pytest.raises(DecryptionError):
        _open(SealedRecord(bytes(blob)))


@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=256), cut=st.integers(min_value=1, max_value=300))
def test_any_truncation_fails(payload: bytes, cut: int) -> None:
    blob = seal(DEK, payload, RecordFields(**FIELDS)).blob
    with pytest.raises(DecryptionError):
        _open(SealedRecord(blob[: max(0, len(blob) - cut)]))


@settings(max_examples=150, deadline=None)
@given(record_id=text_fields)
def test_any_other_record_id_fails(record_id: str) -> None:
    sealed = seal(DEK, PLAINTEXT, RecordFields(**FIELDS))
    if record_id == FIELDS["record_id"]:
        assert _open(sealed, record_id=record_id) == PLAINTEXT
    else:
        with pytest.raises(DecryptionError):
            _open(sealed, record_id=record_id)
