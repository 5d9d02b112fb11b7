"""Two witnesses, each a real ``warden witness serve`` process with its own key and state.

They cosign the log's checkpoints; a forked tree (another root for a size they cosigned, or an
extension that is not consistent) gets no cosignature; ``warden audit verify --witnesses 2``
fails on a checkpoint one of them did not cosign.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from governance.audit.cli import app as audit_cli
from governance.audit.models import AuditCheckpoint
from governance.audit.note import make_checkpoint_body, sign_note
from governance.cli.main import app as warden_cli
from governance.cli.server_process import ServerProcess
from governance.config import Settings, WitnessSetting
from governance.witness.client import WitnessClient, WitnessConflict, WitnessRefused
from governance.witness.cosigning import Cosigner, stored_proof
from governance.witness.models import AuditCosignature
from tests.audit.conftest import FilledLog, fill
from tests.conftest import settings_env
from tests.witness.conftest import origin_hash

runner = CliRunner()


class Witness(ServerProcess):
    """``warden witness init``, then ``serve`` in a process of its own on a free port."""

    def __init__(self, folder: Path, name: str, log_vkey: str) -> None:
        made = runner.invoke(
            warden_cli, ["witness", "init", "--name", name, "--state", str(folder)]
        )
        assert made.exit_code == 0, made.output
        self.vkey = made.output.strip()
        self.name = name
        env = settings_env(Settings())
        super().__init__(
            env, folder.parent / f"{folder.name}.log", command=[], ready_path="/healthz"
        )
        self.command = [
            sys.executable, "-m", "governance.witness", "serve",
            "--log-vkey", log_vkey, "--state", str(folder), "--port", str(self.port),
        ]  # fmt: skip

    def setting(self, label: str) -> WitnessSetting:
        return WitnessSetting(name=label, vkey=self.vkey, url=self.url)


@pytest.fixture
def witnesses(audit_db: FilledLog, tmp_path: Path) -> Iterator[tuple[Witness, Witness]]:
    pair = (
        Witness(tmp_path / "w1", "witness-one.test/w", audit_db.vkey),
        Witness(tmp_path / "w2", "witness-two.test/w", audit_db.vkey),
    )
    for witness in pair:
        witness.start()
    yield pair
    for witness in pair:
        witness.stop()


def configured(settings: Settings, pair: tuple[Witness, Witness]) -> Settings:
    return settings.model_copy(
        update={"witnesses": [pair[0].setting("w1"), pair[1].setting("w2")], "witness_quorum": 2}
    )


def audit(cfg: Settings, *args: str) -> tuple[int, str]:
    """``warden audit ...`` with ``cfg``'s witnesses in its environment."""
    env = settings_env(cfg)
    env["WARDEN_WITNESSES"] = json.dumps([w.model_dump() for w in cfg.witnesses])
    env["WARDEN_WITNESS_QUORUM"] = str(cfg.witness_quorum)
    result = runner.invoke(audit_cli, list(args), env=env)
    return result.exit_code, result.output


def verify(cfg: Settings, *args: str) -> tuple[int, str]:
    return audit(cfg, "verify", *args)


def stored(log: FilledLog, size: int) -> set[str]:
    with log.sessions() as session:
        return set(
            session.scalars(
                select(AuditCosignature.witness).where(AuditCosignature.tree_size == size)
            )
        )


def test_two_witnesses_cosign_and_verify_counts_them(
    settings: Settings, audit_db: FilledLog, witnesses: tuple[Witness, Witness]
) -> None:
    cfg = configured(settings, witnesses)
    cosigner = Cosigner.from_settings(cfg)
    assert cosigner is not None
    fill(audit_db, 20, checkpoint_every=8)
    latest = audit_db.checkpoint_sizes[-1]
    result = cosigner.cosign_latest(audit_db.sessions)
    assert (result.size, sorted(result.cosigned), result.refused) == (latest, ["w1", "w2"], {})
    assert stored(audit_db, latest) == {"witness-one.test/w", "witness-two.test/w"}
    code, out = verify(cfg, "--witnesses", "2")
    assert code == 0, out
    assert f"checkpoint {latest} cosigned by w1, w2 (2 required)" in out

    # Witness two goes down; the log grows and signs; only witness one cosigns the new head.
    witnesses[1].stop()
    fill(audit_db, 15, checkpoint_every=8)
    newer = audit_db.checkpoint_sizes[-1]
    result = cosigner.cosign_latest(audit_db.sessions)
    assert result.cosigned == ["w1"] and "unreachable" in result.refused["w2"]
    code, out = verify(cfg, "--witnesses", "2")
    assert code == 4  # verification failed
    assert f"checkpoint {newer} is cosigned by 1 of the 2 witnesses required (not by w2)" in out
    assert verify(cfg, "--witnesses", "1")[0] == 0

    # Back with its own state: it is asked from the size it cosigned last, and cosigns.
    witnesses[1].start()
    fresh = Cosigner.from_settings(cfg)
    assert fresh is not None
    assert fresh.cosign_latest(audit_db.sessions).cosigned == ["w2"]
    assert verify(cfg, "--witnesses", "2")[0] == 0


def test_a_forked_tree_gets_no_cosignature(
    settings: Settings, audit_db: FilledLog, witnesses: tuple[Witness, Witness]
) -> None:
    # Whoever holds the log's signing key but not the witnesses' can sign a fork; they refuse.
    cfg = configured(settings, witnesses)
    cosigner = Cosigner.from_settings(cfg)
    assert cosigner is not None
    fill(audit_db, 20, checkpoint_every=8)
    cosigned = audit_db.checkpoint_sizes[-1]
    assert len(cosigner.cosign_latest(audit_db.sessions).cosigned) == 2
    origin, key = audit_db.checkpointer.origin, audit_db.checkpointer.key

    def signed(size: int, root: bytes) -> str:
        return sign_note(make_checkpoint_body(origin, size, root), origin, key)

    for witness in witnesses:
        client = WitnessClient(witness.setting("w"), timeout=5)
        # Another root for the size it cosigned.
        with pytest.raises(WitnessRefused) as refused:
            client.add_checkpoint(cosigned, [], signed(cosigned, bytes(32)))
        assert refused.value.status == 422
        # A larger tree whose root the log's own nodes do not prove consistent.
        fill(audit_db, 5, checkpoint_every=1000)
        proof = stored_proof(audit_db.sessions, cosigned, audit_db.size)
        with pytest.raises(WitnessRefused) as refused:
            client.add_checkpoint(cosigned, proof, signed(audit_db.size, bytes(32)))
        assert refused.value.status == 422
        # An old size it does not hold: 409 with the size it does.
        with pytest.raises(WitnessConflict) as conflict:
            client.add_checkpoint(0, [], signed(audit_db.size, bytes(32)))
        assert conflict.value.size == cosigned
        # It still serves the checkpoint it cosigned, not the forks.
        held = httpx.get(f"{witness.url}/{origin_hash(origin)}/checkpoint", timeout=5)
        assert held.status_code == 200 and held.text.split("\n")[1] == str(cosigned)
    assert stored(audit_db, cosigned) == {"witness-one.test/w", "witness-two.test/w"}


def test_the_server_has_its_checkpoints_cosigned_off_the_request_path(
    settings: Settings,
    admin_token: str,
    audit_db: FilledLog,
    witnesses: tuple[Witness, Witness],
) -> None:
    from fastapi.testclient import TestClient

    from governance.api.app import create_app
    from tests.conftest import auth

    cfg = configured(settings, witnesses)
    with TestClient(create_app(cfg), raise_server_exceptions=False) as client:
        # Each call appends an audit entry; the server signs the quiet tail within a second.
        for _ in range(3):
            assert client.get("/v1/principals", headers=auth(admin_token)).status_code == 200
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with audit_db.sessions() as session:
                latest = session.scalar(select(func.max(AuditCheckpoint.tree_size)))
            if latest is not None and len(stored(audit_db, latest)) == 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the server's checkpoints were not cosigned by both witnesses")
        code, out = verify(cfg, "--witnesses", "2")
        assert code == 0, out


def test_an_export_carries_its_cosignatures(
    settings: Settings,
    audit_db: FilledLog,
    witnesses: tuple[Witness, Witness],
    tmp_path: Path,
) -> None:
    cfg = configured(settings, witnesses)
    fill(audit_db, 20, checkpoint_every=8)
    # The export signs the head and asks both witnesses before writing the bundle.
    code, out = audit(cfg, "export", str(tmp_path / "both"))
    assert code == 0 and "cosigned by 2 of 2 witnesses" in out, out
    code, out = audit(cfg, "verify-bundle", str(tmp_path / "both"), "--witnesses", "2")
    assert code == 0 and "cosigned by w1, w2 (2 required)" in out, out

    witnesses[1].stop()
    fill(audit_db, 10, checkpoint_every=1000)
    code, out = audit(cfg, "export", str(tmp_path / "one"))
    assert code == 0 and "cosigned by 1 of 2 witnesses" in out, out
    code, out = audit(cfg, "verify-bundle", str(tmp_path / "one"), "--witnesses", "2")
    assert code == 4 and "cosigned by 1 of the 2 witnesses required (not by w2)" in out, out
    assert audit(cfg, "verify-bundle", str(tmp_path / "one"), "--witnesses", "1")[0] == 0

    # A cosigned note taken from the other bundle does not vouch for this one's checkpoint.
    (tmp_path / "one" / "cosigned.note").write_bytes(
        (tmp_path / "both" / "cosigned.note").read_bytes()
    )
    code, out = audit(cfg, "verify-bundle", str(tmp_path / "one"), "--witnesses", "1")
    assert code == 4 and "is not the bundle's checkpoint" in out, out
