"""Compliance reports end to end: seeded through the real API, checked against the database."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from governance.audit import log as audit_log
from governance.audit.models import AuditEntry
from governance.audit.signing import load_signing_key, public_vkey
from governance.config import Settings
from governance.db import make_engine, make_sessionmaker
from governance.db.base import utcnow
from governance.kit.events import Actor, AuditEvent
from governance.policy.models import PolicyVersion
from governance.reports.document import report_json_schema
from governance.reports.manifest import verify_report_dir
from governance.reports.usage import BURST_THRESHOLD, build_usage
from tests.conftest import REPO, auth, settings_env
from tests.factories import toy_record, upload_body
from tests.shared_app import SharedApp

SCHEMA_FILE = REPO / "docs" / "report.schema.json"


@dataclass
class Seeded:
    client: Any
    auditor: str
    app: str
    stranger: str
    created: dict[str, Any]
    folder: Path
    settings: Settings


def _period() -> dict[str, str]:
    now = utcnow()
    return {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }


@pytest.fixture(scope="module")
def seeded(shared_app: SharedApp) -> Seeded:
    """One report over served, allowed and denied calls; its tests only read it."""
    app_client, warden, admin_token = shared_app.client, shared_app.warden, shared_app.admin
    settings = shared_app.settings
    engineer = warden.principal("eng", "ml_engineer")
    r = app_client.post(
        "/v1/models", json=upload_body(shared_app.artifact("toy", "1")), headers=auth(engineer)
    )
    assert r.status_code == 201, r.text
    warden.override_gate("toy", "1")
    r = app_client.post("/v1/models/toy/versions/1/promote", headers=auth(admin_token))
    assert r.status_code == 200, r.text
    warden.policy_change(
        [["g2", "model:toy", "group:default-models"]], reason="toy may be called by clients"
    )
    app = warden.principal("app", "client", kind="service")
    stranger = warden.principal("nobody", kind="service")
    auditor = warden.principal("aud", "auditor")
    for i in range(3):
        r = app_client.post(
            "/v1/models/toy/predict", json={"record": toy_record(i)}, headers=auth(app)
        )
        assert r.status_code == 200, r.text
    for _ in range(2):
        r = app_client.post(
            "/v1/models/toy/predict", json={"record": toy_record()}, headers=auth(stranger)
        )
        assert r.status_code == 403
    r = app_client.post("/v1/reports", json=_period(), headers=auth(auditor))
    assert r.status_code == 201, r.text
    created = r.json()
    return Seeded(
        app_client, auditor, app, stranger, created, settings.reports_dir / created["id"], settings
    )


def _report(s: Seeded) -> dict[str, Any]:
    r = s.client.get(f"/v1/reports/{s.created['id']}/files/report.json", headers=auth(s.auditor))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_published_schema_is_current_and_report_validates(seeded: Seeded) -> None:
    published = json.loads(SCHEMA_FILE.read_text())
    assert published == json.loads(json.dumps(report_json_schema(), sort_keys=True))
    doc = _report(seeded)
    jsonschema.Draft202012Validator(published).validate(doc)
    assert seeded.created["log_verified"] is True
    assert sorted(seeded.created["files"]) == [
        "manifest.json",
        "report.html",
        "report.json",
        "report.pdf",
    ]


def test_numbers_equal_the_database(seeded: Seeded) -> None:
    doc = _report(seeded)
    settings = seeded.settings
    meta = doc["meta"]
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(AuditEntry.seq, AuditEntry.canonical).where(
                    AuditEntry.seq >= meta["audit_log"]["first_seq"],
                    AuditEntry.seq <= meta["audit_log"]["last_seq"],
                )
            ).all()
            versions = list(session.scalars(select(PolicyVersion).order_by(PolicyVersion.version)))
    finally:
        engine.dispose()
    entries = [json.loads(c) for _, c in rows]
    calls = [e for e in entries if e["event_type"] == "api.call"]
    usage = doc["usage"]
    assert usage["requests"] == len(calls)
    assert usage["allowed"] == sum(e["decision"] == "allow" for e in calls)
    assert usage["denied"] == sum(e["decision"] == "deny" for e in calls)
    by_principal = {r["key"]: r for r in usage["by_principal"]}
    assert by_principal["app"]["allowed"] == 3 and by_principal["app"]["denied"] == 0
    assert by_principal["nobody"]["denied"] == 2
    toy = {r["key"]: r for r in usage["by_model"]}["toy"]
    assert (toy["allowed"], toy["denied"]) == (3, 2)
    reasons = Counter(
        e["reason"] or "(no reason recorded)" for e in calls if e["decision"] == "deny"
    )
    assert {r["reason"]: r["count"] for r in usage["denials_by_reason"]} == dict(reasons)
    assert sum(b["allowed"] + b["denied"] + b["other"] for b in usage["timeline"]) == len(calls)
    by_type = Counter(e["event_type"] for e in entries)
    assert {r["event_type"]: r["count"] for r in doc["logging"]["entries_by_type"]} == by_type
    # The report was generated before its own export event was appended.
    assert "report.export" not in by_type

    access = doc["access_control"]
    assert access["policy"]["version"] == versions[-1].version
    assert access["policy"]["sha256"] == versions[-1].sha256
    assert [c["version"] for c in access["changes"]] == [v.version for v in versions]
    assert any("toy may be called" in c["reason"] for c in access["changes"])
    held = {(h["member"], h["role"]) for h in access["role_timeline"]}
    assert {("app", "client"), ("aud", "auditor"), ("eng", "ml_engineer")} <= held
    privileged = {p["name"] for p in access["privileged_principals"]}
    assert {"admin", "officer-fixture"} <= privileged and "app" not in privileged

    models = doc["models"]
    assert models["count"] == 1 and models["models"][0]["name"] == "toy"
    assert models["models"][0]["stage"] == "serving"
    assert len(doc["fairness"]["overrides"]) == 1
    assert doc["fairness"]["overrides"][0]["approved_by"] == "officer-fixture"
    assert doc["privacy"]["models"][0]["model"] == "toy"
    assert doc["data_protection"]["records_stored"] == 3
    assert doc["data_protection"]["data_keys"]["total"] >= 1
    status = {c["section"]: c["status"] for c in doc["controls"]}
    assert status["usage"] == "effective" and status["logging"] == "effective"
    # toy serves by override of the fairness gate: an exception, never "evidenced".
    assert status["fairness"] == "exception"


def test_export_is_audited_and_auditor_downloads(seeded: Seeded) -> None:
    s = seeded
    settings = s.settings
    r = s.client.get("/v1/reports", headers=auth(s.auditor))
    assert r.status_code == 200 and r.json()[0]["id"] == s.created["id"]
    for name, kind in (("report.html", "text/html"), ("report.pdf", "application/pdf")):
        r = s.client.get(f"/v1/reports/{s.created['id']}/files/{name}", headers=auth(s.auditor))
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
    assert (
        s.client.get(
            f"/v1/reports/{s.created['id']}/files/../x", headers=auth(s.auditor)
        ).status_code
        == 404
    )
    assert s.client.get("/v1/reports/rpt-nope", headers=auth(s.auditor)).status_code == 404
    # A client may neither generate nor read reports.
    assert s.client.post("/v1/reports", json=_period(), headers=auth(s.app)).status_code == 403
    assert s.client.get("/v1/reports", headers=auth(s.app)).status_code == 403
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            entry = session.scalar(
                select(AuditEntry).where(AuditEntry.seq == s.created["audit_seq"])
            )
            assert entry is not None and entry.event_type == "report.export"
            details = json.loads(entry.canonical)["details"]
    finally:
        engine.dispose()
    assert details["manifest_sha256"] == s.created["manifest_sha256"]
    assert json.loads(entry.canonical)["actor"]["name"] == "aud"


def test_html_is_self_contained_and_pdf_renders(seeded: Seeded, tmp_path: Path) -> None:
    html = (seeded.folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    subprocess.run(
        ["pdftoppm", "-r", "30", "-png", str(seeded.folder / "report.pdf"), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 2 and all(p.stat().st_size > 1000 for p in pages)


def _verify_cli(folder: Path, settings: Settings) -> Any:
    from governance.cli.main import app

    return CliRunner().invoke(app, ["report", "verify", str(folder)], env=settings_env(settings))


def test_tampering_with_any_file_fails_verify(seeded: Seeded, tmp_path: Path) -> None:
    settings = seeded.settings
    ok = _verify_cli(seeded.folder, settings)
    assert ok.exit_code == 0, ok.output
    for target in ("report.json", "report.html", "report.pdf", "manifest.json", "extra", "missing"):
        copy = tmp_path / target / seeded.folder.name
        shutil.copytree(seeded.folder, copy)
        if target == "extra":
            (copy / "notes.txt").write_text("added later")
        elif target == "missing":
            (copy / "report.pdf").unlink()
        elif target == "manifest.json":
            doc = json.loads((copy / target).read_text())
            doc["files"][0]["sha256"] = "0" * 64
            (copy / target).write_text(json.dumps(doc))
        else:
            data = bytearray((copy / target).read_bytes())
            data[len(data) // 2] ^= 0x01
            (copy / target).write_bytes(bytes(data))
        result = _verify_cli(copy, settings)
        assert result.exit_code == 4, (target, result.output)  # verification failed


def test_verify_needs_the_logs_key(seeded: Seeded, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = public_vkey("warden.local/audit", Ed25519PrivateKey.generate())
    with pytest.raises(Exception, match="signature"):
        verify_report_dir(seeded.folder, other)


def test_cli_generates_with_from_and_to(settings: Settings, admin_token: str) -> None:
    from governance.cli.main import app

    period = _period()
    result = CliRunner().invoke(
        app,
        ["report", "--from", period["from"], "--to", period["to"], "--framework", "soc2"],
        env=settings_env(settings),
    )
    assert result.exit_code == 0, result.output
    folders = [p for p in settings.reports_dir.iterdir() if p.is_dir()]
    assert len(folders) == 1
    doc = json.loads((folders[0] / "report.json").read_text())
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(doc)
    # Nothing served yet: the sections say so with empty lists and zero counts.
    assert doc["usage"]["requests"] == 0 and doc["models"]["count"] == 0
    assert doc["fairness"]["audits"] == [] and doc["privacy"]["models"] == []
    status = {c["section"]: c["status"] for c in doc["controls"]}
    assert status["usage"] == "not_applicable" and status["systems"] == "not_applicable"
    assert [f["id"] for f in doc["frameworks"]] == ["soc2"]
    assert doc["meta"]["audit_log"]["checkpoint_covers_period"] is True
    key = load_signing_key(settings.resolved_signing_key_file)
    verify_report_dir(folders[0], public_vkey(settings.log_origin, key))
    bad = CliRunner().invoke(app, ["report", "--from", "yesterday"], env=settings_env(settings))
    assert bad.exit_code == 1


def test_denial_bursts_and_model_filter(settings: Settings, admin_token: str) -> None:
    engine = make_engine(settings.resolved_database_url)
    try:
        sessions = make_sessionmaker(engine)
        start = utcnow() - timedelta(seconds=1)

        def call(actor: str, decision: str, model: str) -> AuditEvent:
            return AuditEvent(
                event_type="api.call",
                action="POST /v1/models/{name}/predict",
                actor=Actor(principal_id=None, name=actor),
                decision=decision,
                reason="no matching allow rule" if decision == "deny" else "",
                resource={"object": f"model:{model}", "action": "predict"},
                outcome=403,
            )

        with sessions.begin() as session:
            audit_log.append(
                session,
                [call("probe", "deny", "a")] * BURST_THRESHOLD
                + [call("calm", "deny", "b")] * 2
                + [call("calm", "allow", "b")],
            )
        with sessions() as session:
            end = utcnow() + timedelta(seconds=1)
            first, last = 0, audit_log.tree_size(session) - 1
            usage = build_usage(session, first_seq=first, last_seq=last, start=start, end=end)
            only_b = build_usage(
                session, first_seq=first, last_seq=last, start=start, end=end, model="b"
            )
    finally:
        engine.dispose()
    assert [(b.actor, b.denials) for b in usage.denial_bursts] == [("probe", BURST_THRESHOLD)]
    assert usage.denied == BURST_THRESHOLD + 2 and usage.allowed == 1
    assert (only_b.requests, only_b.denied, only_b.denial_bursts) == (3, 2, [])
    assert [r.key for r in only_b.by_model] == ["b"]
