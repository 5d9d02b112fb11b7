"""The witness's add-checkpoint endpoint, answer by answer as c2sp.org/tlog-witness requires."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from governance.audit.merkle import EMPTY_ROOT
from governance.audit.note import make_checkpoint_body, parse_vkey, sign_note
from governance.errors import ConfigurationError
from governance.witness.cosignature import cosignatures_of
from governance.witness.identity import WitnessIdentity, load_witness
from governance.witness.server import SIZE_CONTENT_TYPE, create_witness_app
from governance.witness.state import WitnessState
from tests.witness.conftest import ORIGIN, SampleLog, origin_hash, request_body


@pytest.fixture
def client(test_log: SampleLog, witness_identity: WitnessIdentity, tmp_path: Path) -> TestClient:
    state = WitnessState(tmp_path / "witness")
    app = create_witness_app(witness_identity, [parse_vkey(test_log.vkey)], state)
    return TestClient(app)


def add(client: TestClient, old: int, proof: list[bytes], note: str) -> tuple[int, str, str]:
    response = client.post("/add-checkpoint", content=request_body(old, proof, note))
    return response.status_code, response.text, response.headers.get("content-type", "")


def test_first_checkpoint_is_cosigned_and_remembered(
    client: TestClient, test_log: SampleLog, witness_identity: WitnessIdentity
) -> None:
    note = test_log.note()
    status, text, _ = add(client, 0, [], note)
    assert status == 200, text
    assert cosignatures_of(note + text, [witness_identity.key]).keys() == {witness_identity.vkey}
    # The monitoring read serves the note with the log's signature and the cosignature.
    served = client.get(f"/{origin_hash()}/checkpoint")
    assert served.status_code == 200 and served.text == note + text


def test_a_consistent_extension_is_cosigned(client: TestClient, test_log: SampleLog) -> None:
    assert add(client, 0, [], test_log.note())[0] == 200
    test_log.grow(7)
    status, text, _ = add(client, 10, test_log.proof(10), test_log.note())
    assert status == 200, text
    # Resubmitting the same tree head is consistent too (same size, same root, no proof).
    assert add(client, 17, [], test_log.note())[0] == 200


def test_a_stale_old_size_gets_409_with_the_witness_size(
    client: TestClient, test_log: SampleLog
) -> None:
    assert add(client, 0, [], test_log.note())[0] == 200
    test_log.grow(3)
    assert add(client, 0, [], test_log.note()) == (409, "10\n", SIZE_CONTENT_TYPE)
    assert add(client, 5, test_log.proof(5), test_log.note())[:2] == (409, "10\n")


def test_a_fork_at_a_cosigned_size_gets_no_cosignature(
    client: TestClient, test_log: SampleLog
) -> None:
    assert add(client, 0, [], test_log.note())[0] == 200
    forked = test_log.note(10, bytes(32))
    status, _, _ = add(client, 10, [], forked)
    assert status == 422
    # Nothing moved: the witness still holds the original head.
    assert client.get(f"/{origin_hash()}/checkpoint").text.startswith(test_log.note())


def test_an_inconsistent_extension_gets_no_cosignature(
    client: TestClient, test_log: SampleLog
) -> None:
    assert add(client, 0, [], test_log.note())[0] == 200
    other = SampleLog(key=test_log.key, history="forked")  # same key, another history
    other.grow(20)
    assert add(client, 10, other.proof(10), other.note())[0] == 422
    # A proof from the right tree does not rescue a root that is not that tree's.
    test_log.grow(10)
    assert add(client, 10, test_log.proof(10), test_log.note(20, bytes(32)))[0] == 422
    assert add(client, 10, test_log.proof(10), test_log.note())[0] == 200


def test_unknown_origin_is_404_and_a_bad_signature_403(
    client: TestClient, test_log: SampleLog
) -> None:
    body = make_checkpoint_body("other.test/log", 10, test_log.tree.root(10))
    stranger = Ed25519PrivateKey.generate()
    assert add(client, 0, [], sign_note(body, "other.test/log", stranger))[0] == 404
    # The right origin signed by another key: no trusted signature.
    forged = sign_note(make_checkpoint_body(ORIGIN, 10, test_log.tree.root(10)), ORIGIN, stranger)
    assert add(client, 0, [], forged)[0] == 403


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 01\n\n",
        b"old -1\n\n",
        b"new 0\n\n",
        b"old 0\nnot base64!\n\n",
        b"old 0\nAAAA\n\n",
        b"\xff\xfe",
        b"old 0\n" + b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * 64 + b"\n",
    ],
)
def test_malformed_requests_are_400(client: TestClient, body: bytes) -> None:
    assert client.post("/add-checkpoint", content=body).status_code == 400


def test_huge_sizes_are_400_not_500(client: TestClient, test_log: SampleLog) -> None:
    note = test_log.note()
    assert client.post("/add-checkpoint", content=f"old {'9' * 5000}\n\n{note}").status_code == 400
    huge = note.replace("\n10\n", "\n" + "9" * 5000 + "\n", 1)
    assert client.post("/add-checkpoint", content=request_body(0, [], huge)).status_code == 400


def test_old_size_above_the_checkpoint_is_400(client: TestClient, test_log: SampleLog) -> None:
    assert add(client, 11, [], test_log.note())[0] == 400


def test_a_proof_from_zero_must_be_empty(client: TestClient, test_log: SampleLog) -> None:
    assert add(client, 0, [bytes(32)], test_log.note())[0] == 422


def test_an_empty_tree_must_have_the_empty_root(client: TestClient, test_log: SampleLog) -> None:
    assert add(client, 0, [], test_log.note(0, bytes(32)))[0] == 422
    assert add(client, 0, [], test_log.note(0, EMPTY_ROOT))[0] == 200


def test_state_survives_a_restart_and_is_private(
    test_log: SampleLog, witness_identity: WitnessIdentity, tmp_path: Path
) -> None:
    folder = tmp_path / "witness"
    first = TestClient(
        create_witness_app(witness_identity, [parse_vkey(test_log.vkey)], WitnessState(folder))
    )
    assert add(first, 0, [], test_log.note())[0] == 200
    assert stat.S_IMODE(os.stat(folder / "state.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder / "witness.key").st_mode) == 0o600
    again = TestClient(
        create_witness_app(load_witness(folder), [parse_vkey(test_log.vkey)], WitnessState(folder))
    )
    assert add(again, 0, [], test_log.note())[:2] == (409, "10\n")


def test_an_unreadable_state_fails_closed(
    client: TestClient, test_log: SampleLog, tmp_path: Path
) -> None:
    assert add(client, 0, [], test_log.note())[0] == 200
    (tmp_path / "witness" / "state.json").write_text("{")
    with pytest.raises(ConfigurationError, match="unreadable"):
        WitnessState(tmp_path / "witness").latest(ORIGIN)
