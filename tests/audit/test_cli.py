"""``warden audit``: verify, export → verify-bundle round trip, checkpoint, public-key."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from governance.audit.bundle import verify_bundle
from governance.audit.cli import app
from governance.config import Settings
from tests.audit.conftest import FilledLog, fill
from tests.audit.test_verify_log import drop_triggers
from tests.conftest import REPO, settings_env

runner = CliRunner()


def warden_audit(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=settings_env(settings))
    return result.exit_code, result.output


def test_public_key_and_checkpoint(settings: Settings, audit_db: FilledLog) -> None:
    code, out = warden_audit(settings, "public-key")
    assert code == 0 and out.strip() == audit_db.vkey
    code, out = warden_audit(settings, "public-key", "--json")
    assert code == 0 and json.loads(out) == {"origin": settings.log_origin, "vkey": audit_db.vkey}
    assert warden_audit(settings, "checkpoint") == (0, "the log is empty: nothing to sign\n")
    code, out = warden_audit(settings, "checkpoint", "--json")
    assert code == 0 and json.loads(out) == {
        "signed": False,
        "tree_size": 0,
        "root": None,
        "cosigned_by": None,
    }
    fill(audit_db, 5, checkpoint_every=1000)
    code, out = warden_audit(settings, "checkpoint")
    assert code == 0 and "tree size 5" in out
    fill(audit_db, 2, checkpoint_every=1000)
    code, out = warden_audit(settings, "checkpoint", "--json")
    signed = json.loads(out)
    assert code == 0 and signed["signed"] is True and signed["tree_size"] == 7, out
    assert len(bytes.fromhex(signed["root"])) == 32 and signed["cosigned_by"] is None


def test_export_round_trip(settings: Settings, filled: FilledLog, tmp_path: Path) -> None:
    fill(filled, 4, checkpoint_every=1000)  # 57 entries, the last 4 not yet signed
    code, out = warden_audit(settings, "verify")
    assert code == 0 and "OK: 57 entries" in out, out

    out_dir = tmp_path / "bundle"
    code, out = warden_audit(settings, "export", "--from", "10", "--to", "56", str(out_dir))
    assert code == 0, out
    report = verify_bundle(out_dir, trusted_vkey=filled.vkey)
    assert (report.from_seq, report.to_seq, report.tree_size) == (10, 56, 57)
    code, out = warden_audit(settings, "verify-bundle", str(out_dir), "--vkey", filled.vkey)
    assert code == 0 and "entries 10..56" in out, out

    # The export itself is audited; the log still verifies afterwards.
    with filled.sessions() as session:
        last = session.execute(text("SELECT canonical FROM audit_entries WHERE seq = 57")).scalar()
    assert json.loads(last)["event_type"] == "audit.export"
    code, out = warden_audit(settings, "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True and json.loads(out)["entries"] == 58, out

    # By time: everything up to an hour from now is every entry (the export entry included).
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    code, out = warden_audit(
        settings, "export", "--from", "2000-01-01T00:00:00", "--to", later, str(tmp_path / "t")
    )
    assert code == 0 and "exported entries 0..57" in out, out
    assert verify_bundle(tmp_path / "t").to_seq == 57
    code, out = warden_audit(settings, "export", "--from", "3", "--json", str(tmp_path / "j"))
    assert code == 0, out
    assert json.loads(out) == {
        "from_seq": 3,
        "to_seq": 58,
        "bundle": str(tmp_path / "j"),
        "checkpoint": 59,
        "cosigned_by": None,
    }
    assert verify_bundle(tmp_path / "j").tree_size == 59

    # A tampered bundle fails with the first bad seq and exit 4 (verification failed).
    lines = (out_dir / "entries.jsonl").read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"user", b"usex", 1)
    (out_dir / "entries.jsonl").write_bytes(b"\n".join(lines))
    code, out = warden_audit(settings, "verify-bundle", str(out_dir))
    assert code == 4 and "first bad seq 15" in out, out

    code, out = warden_audit(settings, "export", "--from", "yesterday", str(tmp_path / "x"))
    assert code == 1 and "ISO 8601" in out


def test_verify_names_the_first_bad_seq(settings: Settings, filled: FilledLog) -> None:
    with filled.sessions() as session:
        drop_triggers(session)
        session.execute(text("DELETE FROM audit_entries WHERE seq = 33"))
        session.commit()
    code, out = warden_audit(settings, "verify")
    assert code == 4 and "first bad seq 33" in out, out


def test_console_script_mounts_audit(settings: Settings, filled: FilledLog) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "governance.cli.main", "audit", "verify"],
        cwd=REPO,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "OK: 53 entries, 7 checkpoints" in result.stdout
