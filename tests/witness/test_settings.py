"""WARDEN_WITNESSES and WARDEN_WITNESS_QUORUM: read from the environment, refused when unsafe."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.audit.note import vkey_for
from governance.config import load_settings
from governance.errors import ConfigurationError
from governance.witness.cosignature import cosigner_vkey


def witness(name: str, vkey: str | None = None) -> dict[str, str]:
    key = Ed25519PrivateKey.generate().public_key()
    return {
        "name": name,
        "vkey": vkey or cosigner_vkey(f"{name}.test/w", key),
        "url": f"https://{name}.test",
    }


def test_witnesses_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = [witness("w1"), witness("w2")]
    monkeypatch.setenv("WARDEN_WITNESSES", json.dumps(listed))
    monkeypatch.setenv("WARDEN_WITNESS_QUORUM", "2")
    cfg = load_settings()
    assert [w.model_dump() for w in cfg.witnesses] == listed
    assert cfg.witness_quorum == 2


@pytest.mark.parametrize(
    ("listed", "quorum"),
    [
        # A log key (type 0x01) where a cosigner key belongs.
        ([witness("w1", vkey_for("w1.test/w", Ed25519PrivateKey.generate().public_key()))], 0),
        ([witness("w1") | {"url": "file:///etc/passwd"}], 0),
        ([witness("w1")], 2),
        ([witness("w1"), witness("w1")], 1),
    ],
)
def test_unsafe_witness_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, listed: list[dict[str, str]], quorum: int
) -> None:
    monkeypatch.setenv("WARDEN_WITNESSES", json.dumps(listed))
    monkeypatch.setenv("WARDEN_WITNESS_QUORUM", str(quorum))
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    # The message names the setting, never the keys or URLs it was given.
    assert "witness" in refused.value.message.lower()
    assert listed[0]["vkey"] not in refused.value.message
