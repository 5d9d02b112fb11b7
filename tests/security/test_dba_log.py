"""The database administrator against the audit log (issue 27, items 1 and 2).

The attacker writes the database at will (DDL included) but holds neither the signing key nor
the signer's memory beside it. Each attack below used to verify OK, or get signed:

- rewrite an entry, recompute its leaf and every stored node, delete the checkpoints that cover
  it: ``warden audit verify`` fails against the signer's memory and against a checkpoint the
  auditor kept (``--trusted``), and ``warden audit checkpoint`` refuses to sign the result;
- cut entries off the end (with their nodes and checkpoints): verify fails as a rollback;
- regrow a truncated log to the same size with other entries: no second signed root for that
  size can be had, from the CLI or the signer's own API;
- delete checkpoints alone: verify fails on the missing anchor, or on no checkpoint at all;
- a server started on a rewritten log refuses to serve (/readyz 503, requests 503);
- reports sign the head and chain: each carries the consistency proof from the last one's
  checkpoint, which the signer restores if it was deleted.

On SQLite and PostgreSQL, through the real CLI and a live ``warden serve``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from governance.audit import log as audit_log
from governance.audit import merkle
from governance.audit.canonical import canonical_bytes
from governance.audit.checkpoints import Checkpointer
from governance.audit.cli import app
from governance.audit.errors import AuditIntegrityError
from governance.audit.memory import memory_path
from governance.cli.common import ExitCode
from governance.config import Settings
from governance.kit.http import client as http_client
from tests.audit.conftest import FilledLog, empty_log, fill, sample_event
from tests.audit.test_verify_log import drop_triggers
from tests.conftest import LiveServer, auth, settings_env

runner = CliRunner()


def warden_audit(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=settings_env(settings))
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


@pytest.fixture
def filled(settings: Settings) -> Iterator[FilledLog]:
    """53 entries, checkpoints every 8 or so and at 53, each signed through the signer's
    memory (so it remembers 53)."""
    for log in empty_log(settings):
        fill(log, 53)
        with log.sessions.begin() as session:
            assert log.checkpointer.checkpoint(session, force=True) is not None
        yield log


def _memory(settings: Settings) -> bytes:
    return memory_path(settings.resolved_signing_key_file).read_bytes()


def _checkpoint_sizes(session: Session) -> list[int]:
    rows = session.execute(text("SELECT tree_size FROM audit_checkpoints ORDER BY tree_size"))
    return [int(size) for (size,) in rows]


def _keep(settings: Settings, log: FilledLog, size: int, folder: Path) -> Path:
    """What an auditor keeps: the signed note of the checkpoint at ``size``."""
    with log.sessions() as session:
        note = session.execute(
            text("SELECT note FROM audit_checkpoints WHERE tree_size = :s"), {"s": size}
        ).scalar_one()
    path = folder / f"{size}.note"
    path.write_text(note, encoding="utf-8")
    return path


def _restore_nodes(session: Session) -> None:
    """Recompute every stored node from the stored leaves, as the attacker would."""
    leaves = [
        bytes(leaf)
        for (leaf,) in session.execute(text("SELECT leaf_hash FROM audit_entries ORDER BY seq"))
    ]
    store = merkle.MemoryNodeStore()
    store.extend(leaves)
    session.execute(text("DELETE FROM audit_nodes"))
    rows = [
        {"l": level, "i": index, "h": store.get(level, index)}
        for level in range(len(leaves).bit_length())
        for index in range(len(leaves) >> level)
    ]
    if rows:
        session.execute(
            text("INSERT INTO audit_nodes (level, idx, hash) VALUES (:l, :i, :h)"), rows
        )


def rewrite_and_cover(log: FilledLog, seq: int, *, keep: int | None = None) -> None:
    """Rewrite entry ``seq``'s reason, recompute its leaf and every node, and delete every
    checkpoint that covers it (or only those beyond ``keep``)."""
    with log.sessions.begin() as session:
        drop_triggers(session)
        canonical = session.execute(
            text("SELECT canonical FROM audit_entries WHERE seq = :s"), {"s": seq}
        ).scalar_one()
        doc = json.loads(canonical)
        doc["reason"] = "approved by nobody"
        forged = canonical_bytes(doc).decode()
        session.execute(
            text("UPDATE audit_entries SET canonical = :c, leaf_hash = :l WHERE seq = :s"),
            {"c": forged, "l": merkle.leaf_hash(forged.encode()), "s": seq},
        )
        _restore_nodes(session)
        session.execute(
            text("DELETE FROM audit_checkpoints WHERE tree_size > :s"),
            {"s": seq if keep is None else keep},
        )


def truncate(log: FilledLog, size: int) -> None:
    """Cut the log to ``size`` entries, with the nodes and checkpoints beyond it."""
    with log.sessions.begin() as session:
        drop_triggers(session)
        session.execute(text("DELETE FROM audit_entries WHERE seq >= :s"), {"s": size})
        session.execute(text("UPDATE audit_head SET tree_size = :s"), {"s": size})
        _restore_nodes(session)
        session.execute(text("DELETE FROM audit_checkpoints WHERE tree_size > :s"), {"s": size})


def test_an_honest_log_verifies_against_the_signers_memory(
    settings: Settings, filled: FilledLog, tmp_path: Path
) -> None:
    code, out = warden_audit(settings, "verify")
    assert code == 0, out
    assert "anchor: the signer's last checkpoint" in out and "(tree size 53)" in out
    assert "OK: 53 entries" in out
    kept = _keep(settings, filled, 40, tmp_path)
    code, out = warden_audit(settings, "verify", "--trusted", str(kept))
    assert code == 0 and f"anchor: trusted checkpoint {kept} (tree size 40)" in out, out


def test_a_rewrite_with_every_node_recomputed_and_its_checkpoints_deleted(
    settings: Settings, filled: FilledLog, tmp_path: Path
) -> None:
    kept = _keep(settings, filled, 40, tmp_path)
    remembered = _memory(settings)
    rewrite_and_cover(filled, 30)
    with filled.sessions() as session:
        assert max(_checkpoint_sizes(session)) < 30  # what verified OK before issue 27

    code, out = warden_audit(settings, "verify")
    assert code == ExitCode.VERIFICATION_FAILED, out
    assert "anchor: the signer's last checkpoint" in out
    assert "do not hash to the anchor checkpoint's root at tree size 53" in out

    code, out = warden_audit(settings, "verify", "--trusted", str(kept))
    assert (
        code == ExitCode.VERIFICATION_FAILED and "anchor checkpoint's root at tree size 40" in out
    ), out

    code, out = warden_audit(settings, "checkpoint")
    assert code == 1 and "does not extend the checkpoint signed at size 53" in out, out
    with filled.sessions() as session:
        assert max(_checkpoint_sizes(session)) < 30  # nothing signed
    assert _memory(settings) == remembered

    # Nor does an export sign it: it would end at a signed head of the rewritten tree.
    code, out = warden_audit(settings, "export", str(tmp_path / "bundle"))
    assert code == 1 and not (tmp_path / "bundle").exists(), out


def test_entries_cut_off_the_end_are_a_rollback(
    settings: Settings, filled: FilledLog, tmp_path: Path
) -> None:
    kept = _keep(settings, filled, 53, tmp_path)
    truncate(filled, 45)
    code, out = warden_audit(settings, "verify")
    assert code == ExitCode.VERIFICATION_FAILED and "rollback: the log holds 45 entries" in out, out
    code, out = warden_audit(settings, "verify", "--trusted", str(kept))
    assert code == ExitCode.VERIFICATION_FAILED and "rollback" in out, out
    code, out = warden_audit(settings, "checkpoint")
    assert code == 1 and "entries were removed" in out, out


def test_no_second_signed_root_for_one_tree_size(settings: Settings, filled: FilledLog) -> None:
    remembered = _memory(settings)
    truncate(filled, 45)
    # Regrown to 53 with other entries: a tree of the remembered size with another root.
    with filled.sessions.begin() as session:
        audit_log.append(session, [sample_event(1000 + i) for i in range(8)])
    with filled.sessions() as session:
        assert audit_log.tree_size(session) == 53
    code, out = warden_audit(settings, "checkpoint")
    assert code == 1 and "does not extend" in out, out

    # Nor through the signer's own API, at that size or the next.
    forged = merkle.root_from_leaf_hashes([b"\x07" * 32] * 53)
    with filled.sessions.begin() as session, pytest.raises(AuditIntegrityError):
        filled.checkpointer.publish(session, 53, forged)
    with filled.sessions() as session:
        assert 53 not in _checkpoint_sizes(session)
    assert _memory(settings) == remembered
    assert filled.checkpointer.failure is not None  # it stays refused


def test_deleted_checkpoints_are_missing_anchors(settings: Settings, filled: FilledLog) -> None:
    with filled.sessions.begin() as session:
        drop_triggers(session)
        session.execute(text("DELETE FROM audit_checkpoints WHERE tree_size = 53"))
    code, out = warden_audit(settings, "verify")
    assert (
        code == ExitCode.VERIFICATION_FAILED
        and "tree size 53 is missing from the stored checkpoints" in out
    ), out

    with filled.sessions.begin() as session:
        session.execute(text("DELETE FROM audit_checkpoints"))
    memory_path(settings.resolved_signing_key_file).unlink()  # a verifier without the memory
    code, out = warden_audit(settings, "verify")
    assert "anchor: none (no signer state" in out
    assert code == ExitCode.VERIFICATION_FAILED and "no signed checkpoint" in out, out


def test_a_head_far_ahead_of_its_latest_checkpoint_fails(
    settings: Settings, filled: FilledLog
) -> None:
    fill(filled, 12, checkpoint_every=1000)  # 65 entries, the last 12 unsigned
    code, out = warden_audit(settings, "verify", "--max-checkpoint-lag", "10")
    assert code == ExitCode.VERIFICATION_FAILED and "12 entries behind the head" in out, out
    code, out = warden_audit(settings, "verify", "--max-checkpoint-age", "0")
    assert code == ExitCode.VERIFICATION_FAILED and "has waited" in out, out
    assert warden_audit(settings, "verify")[0] == 0


def test_exports_chain_and_verify_bundle_takes_a_trusted_checkpoint(
    settings: Settings, filled: FilledLog, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    code, out = warden_audit(settings, "export", "--from", "0", str(first))
    assert code == 0, out
    notes = sorted((first / "checkpoints").iterdir(), key=lambda p: int(p.stem))
    seen = notes[-1]  # what the auditor keeps from the first bundle
    fill(filled, 20, checkpoint_every=1000)

    second = tmp_path / "second"
    code, out = warden_audit(settings, "export", "--from", "60", str(second))
    assert code == 0, out
    assert (second / "checkpoints" / seen.name).read_bytes() == seen.read_bytes()
    code, out = warden_audit(settings, "verify-bundle", str(second), "--trusted", str(seen))
    assert code == 0 and f"anchor: trusted checkpoint {seen}" in out, out

    # A bundle that does not carry the trusted checkpoint proves nothing about it.
    third = tmp_path / "third"
    other = _keep(settings, filled, 40, tmp_path)
    code, out = warden_audit(
        settings, "export", "--from", "60", "--previous", str(other), str(third)
    )
    assert code == 0, out
    code, out = warden_audit(settings, "verify-bundle", str(third), "--trusted", str(seen))
    assert code == ExitCode.VERIFICATION_FAILED and "carries no consistency proof" in out, out
    newest = max((second / "checkpoints").iterdir(), key=lambda p: int(p.stem))
    code, out = warden_audit(settings, "verify-bundle", str(first), "--trusted", str(newest))
    assert code == ExitCode.VERIFICATION_FAILED and "rollback" in out, out


def test_a_server_on_a_rewritten_log_refuses_to_serve(
    settings: Settings, admin_token: str, tmp_path: Path
) -> None:
    server = LiveServer(settings, tmp_path / "server.log")
    server.start()
    try:
        with http_client(base_url=server.url, timeout=30) as http:
            for _ in range(5):
                assert http.get("/v1/models", headers=auth(admin_token)).status_code == 200
    finally:
        server.stop()  # signs the head at shutdown: the signer remembers it
    assert memory_path(settings.resolved_signing_key_file).exists()
    for log in empty_log(settings):
        rewrite_and_cover(log, 1)

    server = LiveServer(settings, tmp_path / "server2.log")
    server.start()
    try:
        with http_client(base_url=server.url, timeout=30) as http:
            ready = http.get("/readyz")
            assert ready.status_code == 503 and "integrity" in ready.text, ready.text
            refused = http.get("/v1/models", headers=auth(admin_token))
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
    finally:
        server.stop()
    assert "audit log integrity" in server.log_path.read_text()


def _report(settings: Settings) -> tuple[int, dict[str, Any]]:
    """``warden report`` over the last day; the exit code and the newest report's document."""
    from governance.cli.main import app as warden

    now = datetime.now(UTC)
    period = [(now - timedelta(days=1)).isoformat(), (now + timedelta(minutes=5)).isoformat()]
    before = set(settings.reports_dir.iterdir()) if settings.reports_dir.exists() else set()
    result = runner.invoke(
        warden, ["report", "--from", period[0], "--to", period[1]], env=settings_env(settings)
    )
    made = [p for p in set(settings.reports_dir.iterdir()) - before if p.is_dir()]
    if result.exit_code != 0:
        assert not made
        return result.exit_code, {"output": " ".join(result.output.split())}
    (folder,) = made
    return 0, json.loads((folder / "report.json").read_text())


def test_reports_sign_the_head_and_chain(settings: Settings, filled: FilledLog) -> None:
    fill(filled, 5, checkpoint_every=1000)  # 58 entries, the last 5 unsigned
    code, first = _report(settings)
    assert code == 0, first
    chain = first["meta"]["audit_log"]["chain"]
    assert chain["previous"] is None and chain["latest"]["tree_size"] == 58  # signed for it

    fill(filled, 7, checkpoint_every=1000)
    code, second = _report(settings)
    assert code == 0, second
    chain = second["meta"]["audit_log"]["chain"]
    older, newer = chain["previous"], chain["latest"]
    assert older["tree_size"] == 58 and newer["tree_size"] > 58
    assert merkle.verify_consistency(
        older["tree_size"],
        newer["tree_size"],
        [bytes.fromhex(node) for node in chain["consistency_proof"]],
        bytes.fromhex(older["root_hash"]),
        bytes.fromhex(newer["root_hash"]),
    )

    # The checkpoint the last report ended at, deleted: the signer, which remembers it,
    # stores it again before the next report, which chains from it as before.
    with filled.sessions.begin() as session:
        drop_triggers(session)
        session.execute(
            text("DELETE FROM audit_checkpoints WHERE tree_size = :s"), {"s": newer["tree_size"]}
        )
    code, third = _report(settings)
    assert code == 0, third
    assert third["meta"]["audit_log"]["chain"]["previous"]["note"] == newer["note"]


def test_a_signer_without_memory_starts_from_the_stored_checkpoints(
    settings: Settings, filled: FilledLog
) -> None:
    """After an upgrade (no memory file yet) the newest stored checkpoint it signed is where
    the memory starts: a tree that does not extend it is refused all the same."""
    path = memory_path(settings.resolved_signing_key_file)
    path.unlink()
    rewrite_and_cover(filled, 45, keep=50)  # the newest left, 50, covers the rewrite
    code, out = warden_audit(settings, "checkpoint")
    assert code == 1 and "does not extend the checkpoint signed at size 50" in out, out


def test_signers_sharing_one_key_file_keep_one_history(
    settings: Settings, filled: FilledLog
) -> None:
    """Four signers (as four server processes would) sign as the log grows, concurrently."""
    signers = [Checkpointer.from_settings(settings) for _ in range(4)]
    errors: list[BaseException] = []

    def sign(signer: Checkpointer, rounds: int) -> None:
        try:
            for _ in range(rounds):
                with filled.sessions.begin() as session:
                    audit_log.append(session, [sample_event(7)])
                with filled.sessions.begin() as session:
                    signer.checkpoint(session, force=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sign, args=(s, 5)) for s in signers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    code, out = warden_audit(settings, "verify")
    assert code == 0 and "OK: 73 entries" in out and "(tree size 73)" in out, out
    assert all(signer.failure is None for signer in signers)


def test_a_running_server_stops_serving_once_the_signer_refuses(
    settings: Settings, admin_token: str, tmp_path: Path
) -> None:
    """A rewrite under a running server: the next checkpoint due is refused, and from then on
    requests and /readyz answer 503 (the writer process and the server's timer both sign)."""
    server = LiveServer(settings, tmp_path / "server.log")
    server.start()
    try:
        with http_client(base_url=server.url, timeout=30) as http:
            for _ in range(3):
                assert http.get("/v1/models", headers=auth(admin_token)).status_code == 200
            path = memory_path(settings.resolved_signing_key_file)
            deadline = time.monotonic() + 30
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.2)  # signed within WARDEN_CHECKPOINT_EVERY_SECONDS (1 s here)
            assert path.exists()
            for log in empty_log(settings):
                rewrite_and_cover(log, 1)
            answers: list[int] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                answers.append(http.get("/v1/models", headers=auth(admin_token)).status_code)
                if answers[-1] == 503 and http.get("/readyz").status_code == 503:
                    break
                time.sleep(0.3)
            assert answers[-1] == 503, answers
            ready = http.get("/readyz")
            assert ready.status_code == 503 and "integrity" in ready.text, ready.text
            # Refused from then on, not once.
            assert http.get("/v1/models", headers=auth(admin_token)).status_code == 503
    finally:
        server.stop()
    assert "audit log integrity" in server.log_path.read_text()
