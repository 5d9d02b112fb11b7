"""Records and keys written before format 2 (migration 0012) still open, and a KEK rotation
rewraps their keys as format 2, bound to their subject and version."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import update

from governance.records.models import Record
from governance.runtime import Runtime
from governance.vault.envelope import DekBinding, dek_aad
from governance.vault.keys import data_keys
from governance.vault.models import DataKey
from governance.vault.record_format import record_aad
from tests.conftest import auth
from tests.records.conftest import Setup


def test_format_1_records_and_keys_open_and_are_upgraded_by_a_kek_rotation(
    served: Setup, runtime_of: Runtime
) -> None:
    made = served.predict(subject_id="old-timer")
    assert made.status_code == 200
    record_id = made.json()["record_id"]
    keys = runtime_of.keys
    # Rewrite both as the code before format 2 wrote them (which needs the key file).
    with runtime_of.sessions.begin() as session:
        record = session.get(Record, record_id)
        key_row = session.get(DataKey, record.dek_id) if record else None
        assert record is not None and key_row is not None
        dek_id = key_row.id
        dek = data_keys.unwrap(keys, key_row)
        plaintext = AESGCM(dek).decrypt(
            record.blob[1:13], record.blob[13:], record_aad(record.sealed_fields())
        )
        nonce = os.urandom(12)
        old_blob = (
            b"\x01"
            + nonce
            + AESGCM(dek).encrypt(nonce, plaintext, record_aad(record.sealed_fields(), version=1))
        )
        legacy = DekBinding(key_row.id, key_row.subject_ref, key_row.version, wrap_format=1)
        old_wrap = keys.wrap(dek, aad=dek_aad(legacy))
        session.execute(
            update(Record).where(Record.id == record_id).values(blob=old_blob, format_version=1)
        )
        session.execute(
            update(DataKey)
            .where(DataKey.id == key_row.id)
            .values(wrapped=old_wrap.blob, kek_id=old_wrap.kek_id, wrap_format=1)
        )
    opened = served.decrypt(record_id)
    assert opened.status_code == 200, opened.text
    assert opened.json()["record"]["format_version"] == 1

    r = served.http.post(
        "/v1/vault/kek/rotate", json={"reason": "upgrade old wraps"}, headers=auth(served.admin)
    )
    assert r.status_code == 200, r.text
    with runtime_of.sessions() as session:
        upgraded = session.get(DataKey, dek_id)
        assert upgraded is not None and upgraded.wrap_format == 2 and upgraded.kek_id == "kek-2"
    assert served.decrypt(record_id).status_code == 200
