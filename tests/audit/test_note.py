"""C2SP signed notes and checkpoints: round trips, the spec's key ID, and every rejection."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from governance.audit.errors import AuditVerificationError, NoteFormatError
from governance.audit.note import (
    Checkpoint,
    key_id_for,
    make_checkpoint_body,
    open_note,
    parse_checkpoint,
    parse_vkey,
    sign_note,
    verify_note,
    verify_signed_note,
    vkey_for,
)

ORIGIN = "warden.example/audit"
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture(scope="module")
def vkey(key: Ed25519PrivateKey) -> str:
    return vkey_for(ORIGIN, key.public_key())


@pytest.fixture(scope="module")
def note(key: Ed25519PrivateKey) -> str:
    return sign_note(make_checkpoint_body(ORIGIN, 20852163, ROOT), ORIGIN, key)


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_key_id_and_vkey_follow_the_spec(key: Ed25519PrivateKey, vkey: str) -> None:
    raw = _raw(key)
    expected_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    assert key_id_for(ORIGIN, raw) == expected_id
    encoded_key = base64.b64encode(b"\x01" + raw).decode()
    assert vkey == f"{ORIGIN}+{expected_id.hex()}+{encoded_key}"
    parsed = parse_vkey(vkey)
    assert (parsed.name, parsed.key_id, parsed.public_key) == (ORIGIN, expected_id, raw)
    assert parsed.text() == vkey


def test_checkpoint_body_and_signature_line_format(key: Ed25519PrivateKey, note: str) -> None:
    body = make_checkpoint_body(ORIGIN, 20852163, ROOT)
    assert body == f"{ORIGIN}\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    assert note.startswith(body + "\n\u2014 " + ORIGIN + " ")
    assert note.endswith("\n") and note.count("\n") == 5
    signature = base64.b64decode(note.rsplit(" ", 1)[1])
    assert len(signature) == 68 and signature[:4] == key_id_for(ORIGIN, _raw(key))
    key.public_key().verify(signature[4:], body.encode())  # raises if not Ed25519 over the text


def test_round_trip(note: str, vkey: str) -> None:
    checkpoint = verify_note(note, vkey, origin=ORIGIN)
    assert checkpoint == Checkpoint(ORIGIN, 20852163, ROOT)
    assert checkpoint.body() == make_checkpoint_body(ORIGIN, 20852163, ROOT)
    assert verify_note(note.encode("utf-8"), parse_vkey(vkey)) == checkpoint


def test_wrong_key_or_wrong_origin(note: str, vkey: str) -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    # Same name, other key: unknown (name, ID) pair, so no trusted signature.
    with pytest.raises(AuditVerificationError, match="no signature from the trusted key"):
        verify_note(note, vkey_for(ORIGIN, other.public_key()))
    with pytest.raises(AuditVerificationError):
        verify_note(note, vkey_for("other.example/log", other.public_key()))
    with pytest.raises(AuditVerificationError, match="origin"):
        verify_note(note, vkey, origin="x.example")


def test_forged_key_id_collision_still_fails(key: Ed25519PrivateKey, note: str) -> None:
    # A key claiming the right name and ID but a different public key must not verify.
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    forged = parse_vkey(vkey_for(ORIGIN, key.public_key()))
    forged = type(forged)(name=forged.name, key_id=forged.key_id, public_key=_raw(other))
    with pytest.raises(AuditVerificationError, match="does not verify"):
        verify_note(note, forged)


def test_altered_body_is_rejected(note: str, vkey: str) -> None:
    altered = note.replace("20852163", "20852164")
    with pytest.raises(AuditVerificationError, match="does not verify"):
        verify_note(altered, vkey)


def test_every_single_character_change_is_rejected(note: str, vkey: str) -> None:
    for position in range(len(note)):
        original = note[position]
        for replacement in {"A", "0", "\n", " ", "\u2014", "+"} - {original}:
            altered = note[:position] + replacement + note[position + 1 :]
            with pytest.raises(AuditVerificationError):
                verify_note(altered, vkey, origin=ORIGIN, allow_unknown_signatures=False)


def test_unknown_signatures_are_ignored_unless_strict(
    key: Ed25519PrivateKey, note: str, vkey: str
) -> None:
    witness = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
    body = make_checkpoint_body(ORIGIN, 20852163, ROOT)
    cosigned = note + sign_note(body, "witness.example", witness).split("\n\n", 1)[1]
    assert verify_note(cosigned, vkey).size == 20852163
    with pytest.raises(AuditVerificationError, match="unexpected key"):
        verify_note(cosigned, vkey, allow_unknown_signatures=False)
    witness_only = sign_note(body, "witness.example", witness)
    with pytest.raises(AuditVerificationError, match="no signature from the trusted key"):
        verify_note(witness_only, vkey)


def test_note_text_may_hold_blank_lines(key: Ed25519PrivateKey) -> None:
    text = "Ognuno sta solo sul cuor della terra\n\ned è subito sera.\n"
    signed = sign_note(text, "quasimodo.example/salvatore", key)
    verifier = vkey_for("quasimodo.example/salvatore", key.public_key())
    assert verify_signed_note(signed, verifier) == text
    with pytest.raises(AuditVerificationError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "no newline at all",
        "origin\n1\nAAAA\n",  # no blank line
        "origin\n1\nAAAA\n\n",  # no signatures
        "origin\n1\nAAAA\n\n- name AAAAAAA=\n",  # hyphen, not em dash
        "origin\n1\nAAAA\n\n\u2014 name\n",  # no signature field
        "origin\n1\nAAAA\n\n\u2014 name AAAA AAAA\n",  # extra field
        "origin\n1\nAAAA\n\n\u2014 na+me AAAAAAA=\n",  # '+' in name
        "origin\n1\nAAAA\n\n\u2014 name !!!!\n",  # not base64
        "origin\n1\nAAAA\n\n\u2014 name AAAA\n",  # shorter than key ID + 1 byte
        "origin\n1\nAAAA\n\n\u2014 name AAAAAAB=\n",  # non-canonical padding bits
        "origin\n1\nAAAA\n\n\u2014 name AAAAAAA=",  # no final newline
        "origin\r\n1\nAAAA\n\n\u2014 name AAAAAAA=\n",  # control character
        "origin\n1\n\ud800\n\n\u2014 name AAAAAAA=\n",  # lone surrogate
    ],
)
def test_malformed_notes_raise_the_domain_error(malformed: str, vkey: str) -> None:
    with pytest.raises(AuditVerificationError):
        verify_note(malformed, vkey)


def test_invalid_utf8_and_oversized_notes(vkey: str) -> None:
    with pytest.raises(AuditVerificationError):
        open_note(b"origin\n\xff\n\n\xe2\x80\x94 name AAAAAAA=\n")
    with pytest.raises(AuditVerificationError, match="too large"):
        open_note(b"a" * 70_000)


@pytest.mark.parametrize(
    "body",
    [
        "origin\n1\n",  # two lines
        "origin\n01\n{root}\n",  # leading zero
        "origin\n+1\n{root}\n",
        "origin\n-1\n{root}\n",
        "origin\n\u0661\n{root}\n",  # Arabic-Indic digit, which int() would accept
        "origin\n1_0\n{root}\n",
        "origin\n 1\n{root}\n",
        "origin\n1\nAAAA\n",  # 3-byte root
        "origin\n1\n{root}\n\n",  # empty extension line
        "\n1\n{root}\n",  # empty origin
        "origin\n1\n{root}",  # no final newline
        "origin\n18446744073709551616\n{root}\n",  # 2**64: sizes are uint64
        "origin\n" + "9" * 5000 + "\n{root}\n",  # past int()'s digit limit
    ],
)
def test_parse_checkpoint_is_strict(body: str) -> None:
    with pytest.raises(AuditVerificationError):
        parse_checkpoint(body.replace("{root}", base64.b64encode(ROOT).decode()))


def test_checkpoint_extensions_and_size_zero() -> None:
    root = base64.b64encode(ROOT).decode()
    parsed = parse_checkpoint(f"o\n0\n{root}\next one\n")
    assert parsed == Checkpoint("o", 0, ROOT, ("ext one",))
    assert parsed.body() == f"o\n0\n{root}\next one\n"


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "name+deadbeef",
        "name+deadbeef+AAAA+x",  # base64 with a stray "+": not a 33-byte key
        "na me+deadbeef+AQ==",
        "name+deadbee+" + base64.b64encode(b"\x01" + bytes(32)).decode(),
        "name+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode(),  # wrong key ID
        "name+00000000+" + base64.b64encode(b"\x02" + bytes(32)).decode(),  # not Ed25519
        "name+00000000+%%%%",
    ],
)
def test_malformed_vkeys(vkey: str) -> None:
    with pytest.raises(AuditVerificationError):
        parse_vkey(vkey)


@pytest.mark.parametrize(
    ("body", "name"),
    [("no newline", "n"), ("ok\n", ""), ("ok\n", "a b"), ("ok\n", "a+b"), ("a\x00\n", "n")],
)
def test_sign_refuses_bad_input(key: Ed25519PrivateKey, body: str, name: str) -> None:
    with pytest.raises(NoteFormatError):
        sign_note(body, name, key)


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [("", 1, ROOT), ("a\nb", 1, ROOT), ("o", -1, ROOT), ("o", True, ROOT), ("o", 1, b"x")],
)
def test_make_checkpoint_body_refuses_bad_input(origin: str, size: int, root: bytes) -> None:
    with pytest.raises(NoteFormatError):
        make_checkpoint_body(origin, size, root)
