"""Stored records through the API: metadata listing, decryption rights, erasure, tampering."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update

from governance.audit.models import AuditEntry
from governance.audit.signing import load_signing_key, public_vkey
from governance.audit.verify import verify_log
from governance.config import Settings
from governance.records.models import Record
from governance.runtime import Runtime
from governance.vault.models import DataKey
from tests.conftest import auth
from tests.records.conftest import Setup

PROBLEM = "application/problem+json"


def _entries(runtime: Runtime, event_type: str) -> list[dict[str, Any]]:
    with runtime.sessions() as session:
        rows = session.scalars(
            select(AuditEntry.canonical).where(AuditEntry.event_type == event_type)
        )
        return [json.loads(r) for r in rows]


def test_listing_shows_metadata_and_decrypting_is_a_separate_audited_right(
    served: Setup, runtime_of: Runtime
) -> None:
    r = served.predict(subject_id="subject-1", i=3)
    assert r.status_code == 200, r.text
    record_id = r.json()["record_id"]

    listed = served.http.get("/v1/records", headers=auth(served.auditor))
    assert listed.status_code == 200, listed.text
    (meta,) = [m for m in listed.json() if m["id"] == record_id]
    assert meta["key_state"] == "active" and meta["model"] == "toy"
    assert meta["audit_seq"] == r.json()["audit_seq"]
    assert not {"blob", "request", "response"} & set(meta)
    assert "subject-1" not in listed.text

    # Listing is not reading: the admin and the client may not decrypt; a purpose is required.
    assert served.decrypt(record_id, token=served.admin).status_code == 403
    assert served.decrypt(record_id, token=served.client).status_code == 403
    assert served.decrypt(record_id, purpose="why").status_code == 422

    opened = served.decrypt(record_id, purpose="chargeback dispute 1234")
    assert opened.status_code == 200, opened.text
    body = opened.json()
    assert body["request"] == {"records": [{"age": 23, "hours": 13, "job": "a", "sex": "Male"}]}
    assert body["response"]["predictions"] == r.json()["predictions"]

    (event,) = _entries(runtime_of, "records.decrypt")
    assert event["actor"]["name"] == "aud"
    assert event["details"]["purpose"] == "chargeback dispute 1234"
    assert event["resource"]["record"] == record_id
    # The prediction's own audit entry names the data key, never the payload.
    (call,) = [e for e in _entries(runtime_of, "api.call") if e["seq"] == r.json()["audit_seq"]]
    assert call["data_key_id"] == meta["dek_id"] and len(call["input_digest"]) == 64
    # The record is created when it is stored: in its audit entry's group commit.
    created = datetime.fromisoformat(meta["created_at"].replace("Z", "+00:00"))
    logged = datetime.fromisoformat(call["time"].replace("Z", "+00:00"))
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    assert abs(created - logged) < timedelta(seconds=2)

    assert (
        served.http.get(f"/v1/records/{record_id}", headers=auth(served.client)).status_code == 403
    )
    missing = served.decrypt("rec_nope")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_erasure_shreds_one_subject_keeps_others_and_the_log_verifies(
    served: Setup, runtime_of: Runtime, settings: Settings
) -> None:
    gone = [served.predict(subject_id="erase-me", i=i).json()["record_id"] for i in range(3)]
    kept = [served.predict(subject_id="keep-me", i=i).json()["record_id"] for i in range(2)]
    with runtime_of.sessions() as session:
        wrapped_before = session.scalars(
            select(DataKey.wrapped)
            .join(Record, Record.dek_id == DataKey.id)
            .where(Record.id == gone[0])
        ).one()
    assert wrapped_before

    r = served.http.delete("/v1/subjects/erase-me", headers=auth(served.client))
    assert r.status_code == 403
    r = served.http.delete("/v1/subjects/erase-me", headers=auth(served.admin))
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["records_affected"] == 3 and len(receipt["dek_ids"]) == 1
    assert receipt["erased_by"] == "admin" and receipt["audit_seq"] is not None
    assert "erase-me" not in r.text

    for record_id in gone:
        r = served.decrypt(record_id)
        assert r.status_code == 410 and r.headers["content-type"] == PROBLEM, r.text
    for record_id in kept:
        assert served.decrypt(record_id).status_code == 200

    meta = {m["id"]: m for m in served.http.get("/v1/records", headers=auth(served.admin)).json()}
    assert {meta[g]["key_state"] for g in gone} == {"destroyed"}

    # The erased subject can come back: new requests get a new key, old records stay erased.
    again = served.predict(subject_id="erase-me")
    assert again.status_code == 200
    assert served.decrypt(again.json()["record_id"]).status_code == 200
    assert served.decrypt(gone[0]).status_code == 410

    # Erasing again gives an empty receipt; both receipts are listed.
    second = served.http.delete("/v1/subjects/erase-me", headers=auth(served.admin)).json()
    assert second["records_affected"] == 1 and len(second["dek_ids"]) == 1
    receipts = served.http.get("/v1/erasures", headers=auth(served.auditor)).json()
    assert {x["receipt_id"] for x in receipts} >= {receipt["receipt_id"], second["receipt_id"]}
    (event, _) = sorted(_entries(runtime_of, "subject.erase"), key=lambda e: e["seq"])
    assert event["details"]["dek_ids"] == receipt["dek_ids"]
    assert event["details"]["records_affected"] == 3

    # The destroyed key row holds no wrapped copy, and the log still verifies end to end.
    with runtime_of.sessions() as session:
        row = session.get(DataKey, receipt["dek_ids"][0])
        assert row is not None and row.state == "destroyed" and row.wrapped is None
        runtime_of.checkpointer.checkpoint(session, force=True)  # type: ignore[union-attr]
        session.commit()
    with runtime_of.sessions() as session:
        vkey = public_vkey(
            settings.log_origin, load_signing_key(settings.resolved_signing_key_file)
        )
        report = verify_log(session, vkey)
        assert report.tree_size > 0 and report.checkpoints_checked >= 1
    if settings.is_sqlite:
        path = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
        on_disk = b"".join(f.read_bytes() for f in path.parent.glob(path.name + "*"))
        assert wrapped_before not in on_disk


def test_tampered_or_moved_records_fail_with_a_clear_error(
    served: Setup, runtime_of: Runtime
) -> None:
    a, b = (served.predict(subject_id="tamper", i=i).json()["record_id"] for i in range(2))
    with runtime_of.sessions() as session:
        blob_a = session.get(Record, a).blob  # type: ignore[union-attr]
        wrapped = session.scalars(
            select(DataKey.wrapped).join(Record, Record.dek_id == DataKey.id).where(Record.id == a)
        ).one()

    def set_blob(record_id: str, blob: bytes) -> None:
        with runtime_of.sessions.begin() as session:
            session.execute(update(Record).where(Record.id == record_id).values(blob=blob))

    def flip(blob: bytes, at: int) -> bytes:
        return blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]

    cases = {
        "nonce": flip(blob_a, 3),
        "ciphertext": flip(blob_a, 20),
        "tag": flip(blob_a, len(blob_a) - 1),
        "format version": b"\x03" + blob_a[1:],
        "truncated": blob_a[:20],
    }
    for name, blob in cases.items():
        set_blob(a, blob)
        r = served.decrypt(a)
        assert r.status_code == 422, (name, r.text)
        assert r.json()["type"].endswith("/decryption-failed"), name
        assert "failed authentication" in r.json()["detail"], name
    set_blob(a, blob_a)
    assert served.decrypt(a).status_code == 200

    # Moved: record a's blob stored under record b's id (same subject, same key).
    set_blob(b, blob_a)
    assert served.decrypt(b).status_code == 422
    # Associated data changed: another model version or key version on the row.
    with runtime_of.sessions.begin() as session:
        session.execute(update(Record).where(Record.id == a).values(model_version="2"))
    assert served.decrypt(a).status_code == 422
    with runtime_of.sessions.begin() as session:
        session.execute(
            update(Record).where(Record.id == a).values(model_version="1", dek_version=2)
        )
    assert served.decrypt(a).status_code == 422
    with runtime_of.sessions.begin() as session:
        session.execute(update(Record).where(Record.id == a).values(dek_version=1))
    assert served.decrypt(a).status_code == 200

    # A wrapped data key that was altered fails too, naming the wrapped key.
    with runtime_of.sessions.begin() as session:
        session.execute(
            text("UPDATE data_keys SET wrapped = :w WHERE wrapped = :old"),
            {"w": flip(wrapped, 15), "old": wrapped},
        )
    r = served.decrypt(a)
    assert r.status_code == 422 and "wrapped data key" in r.json()["detail"]


def test_vault_listing_and_rights(served: Setup) -> None:
    served.predict(subject_id="v-1")
    served.predict()  # the caller's own key
    keys = served.http.get("/v1/vault/keys", headers=auth(served.auditor))
    assert keys.status_code == 200, keys.text
    assert len(keys.json()) == 2 and {k["state"] for k in keys.json()} == {"active"}
    assert not {"wrapped", "key"} & set(keys.json()[0])
    kek = served.http.get("/v1/vault/kek", headers=auth(served.auditor)).json()
    retire_by = datetime.fromisoformat(kek.pop("retire_by"))
    assert kek == {"current": "kek-1", "available": ["kek-1"], "deks_per_kek": {"kek-1": 2}}
    # The key file was made for this test: its KEK is due out in the default 30 days.
    assert timedelta(days=29) < retire_by - datetime.now(UTC) <= timedelta(days=30)
    assert {k["wrap_format"] for k in keys.json()} == {2}
    assert served.http.get("/v1/vault/keys", headers=auth(served.client)).status_code == 403
    body = {"reason": "scheduled"}
    assert (
        served.http.post(
            "/v1/vault/kek/rotate", json=body, headers=auth(served.auditor)
        ).status_code
        == 403
    )
    r = served.http.post(
        "/v1/vault/deks/rotate", json={**body, "subject_id": "v-1"}, headers=auth(served.admin)
    )
    assert r.status_code == 200 and r.json() == {"rotated": 1}
    rotations = served.http.get("/v1/vault/rotations", headers=auth(served.auditor)).json()
    assert rotations[0]["kind"] == "dek" and rotations[0]["keys_affected"] == 1
