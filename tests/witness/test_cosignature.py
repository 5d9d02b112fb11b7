"""cosignature/v1 (c2sp.org/tlog-cosignature): the spec's example, round trips, refusals."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from governance.audit.errors import AuditVerificationError, NoteFormatError
from governance.audit.note import open_note, sign_note
from governance.witness.cosignature import (
    cosign,
    cosignature_message,
    cosignatures_of,
    cosigner_key,
    cosigner_vkey,
    parse_cosigner_vkey,
    verify_cosignature,
)

# The checkpoint and cosigned message of the spec's "Ed25519 signed message" section.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_MESSAGE = (
    "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
# The spec's example cosignature line (its key is not published, so only its layout is checked).
SPEC_LINE = (
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
    "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
NAME = "witness.example.com/w1"


def test_the_signed_message_is_the_specs() -> None:
    assert cosignature_message(SPEC_BODY, 1679315147) == SPEC_MESSAGE.encode()


def test_the_specs_example_line_is_key_id_timestamp_signature() -> None:
    _, (signature,) = open_note(SPEC_BODY + "\n" + SPEC_LINE)
    assert signature.name == NAME
    # timestamped_signature: a big-endian u64 of the spec's time, then 64 bytes of Ed25519.
    assert len(signature.signature) == 8 + 64
    assert int.from_bytes(signature.signature[:8], "big") == 1679315147


def test_key_id_and_vkey_follow_the_spec() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    expected = hashlib.sha256(NAME.encode() + b"\n" + b"\x04" + raw).digest()[:4]
    vkey = cosigner_vkey(NAME, key.public_key())
    material = base64.b64encode(b"\x04" + raw).decode()
    assert vkey == f"{NAME}+{expected.hex()}+{material}"
    parsed = parse_cosigner_vkey(vkey)
    assert (parsed.name, parsed.key_id, parsed.public_key) == (NAME, expected, raw)


def test_a_cosignature_verifies_and_carries_its_time() -> None:
    key = Ed25519PrivateKey.generate()
    line = cosign(SPEC_BODY, NAME, key, 1679315147)
    assert line.startswith(f"\u2014 {NAME} ") and line.endswith("\n")
    _, (signature,) = open_note(SPEC_BODY + "\n" + line)
    trusted = cosigner_key(NAME, key.public_key())
    assert verify_cosignature(SPEC_BODY, signature, trusted) == 1679315147
    # The same Ed25519 signature over the spec's message, checked without Warden's code.
    key.public_key().verify(signature.signature[8:], SPEC_MESSAGE.encode())


def test_a_cosignature_does_not_verify_for_another_tree_or_key() -> None:
    key = Ed25519PrivateKey.generate()
    line = cosign(SPEC_BODY, NAME, key, 1679315147)
    _, (signature,) = open_note(SPEC_BODY + "\n" + line)
    trusted = cosigner_key(NAME, key.public_key())
    other_root = SPEC_BODY.replace("CsUY", "DsUY")
    with pytest.raises(AuditVerificationError, match="does not verify"):
        verify_cosignature(other_root, signature, trusted)
    stranger = cosigner_key(NAME, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(AuditVerificationError, match="not from this cosigner"):
        verify_cosignature(SPEC_BODY, signature, stranger)


def test_a_log_signature_is_not_a_cosignature() -> None:
    # The same key and name as a log (type 0x01) signs a note: the key IDs differ, so a
    # cosignature verifier never mistakes one for the other.
    key = Ed25519PrivateKey.generate()
    note = sign_note(SPEC_BODY, NAME, key)
    trusted = cosigner_key(NAME, key.public_key())
    assert cosignatures_of(note, [trusted]) == {}
    cosigned = note + cosign(SPEC_BODY, NAME, key, 1700000000)
    assert cosignatures_of(cosigned, [trusted]) == {trusted.vkey(): 1700000000}


def test_a_bad_line_from_a_trusted_cosigner_fails_the_note() -> None:
    key = Ed25519PrivateKey.generate()
    line = cosign(SPEC_BODY, NAME, key, 1700000000)
    # Same name, key ID and timestamp; one bit of the signature flipped.
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[-1] ^= 1
    forged = f"\u2014 {NAME} {base64.b64encode(bytes(raw)).decode()}\n"
    note = sign_note(SPEC_BODY, "example.com/behind-the-sofa", Ed25519PrivateKey.generate())
    with pytest.raises(AuditVerificationError, match="does not verify"):
        cosignatures_of(note + forged, [cosigner_key(NAME, key.public_key())])


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "name+0000+AQ==",
        "name+zzzzzzzz+" + base64.b64encode(b"\x04" + b"\x01" * 32).decode(),
        # A log key (type 0x01) is not a cosigner key.
        "name+00000000+" + base64.b64encode(b"\x01" + b"\x01" * 32).decode(),
        "na me+00000000+" + base64.b64encode(b"\x04" + b"\x01" * 32).decode(),
    ],
)
def test_malformed_cosigner_keys_are_refused(vkey: str) -> None:
    with pytest.raises(AuditVerificationError):
        parse_cosigner_vkey(vkey)


def test_a_key_id_that_does_not_match_is_refused() -> None:
    vkey = cosigner_vkey(NAME, Ed25519PrivateKey.generate().public_key())
    name, key_id, material = vkey.split("+", 2)
    wrong = f"{name}+{(int(key_id, 16) ^ 1):08x}+{material}"
    with pytest.raises(AuditVerificationError, match="key ID"):
        parse_cosigner_vkey(wrong)


@pytest.mark.parametrize("timestamp", [-1, 1 << 63])
def test_timestamps_outside_the_spec_range_are_refused(timestamp: int) -> None:
    with pytest.raises(NoteFormatError):
        cosign(SPEC_BODY, NAME, Ed25519PrivateKey.generate(), timestamp)
