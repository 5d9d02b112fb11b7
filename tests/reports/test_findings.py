"""What the report concludes: control status by rule, findings, anchoring, AI systems and
frameworks. One report per module and backend, from a deployment seeded through the API."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import select

from governance.audit import merkle
from governance.audit.models import AuditEntry
from governance.audit.repository import snapshot_session
from governance.audit.signing import load_signing_key
from governance.db import make_engine, make_sessionmaker
from governance.db.base import utcnow
from governance.reports.builder import build_report
from governance.reports.controls import judge
from governance.reports.document import Report
from governance.reports.systems import bounds_of, card_view
from tests.conftest import REPO, auth
from tests.factories import policies_copy, toy_record, upload_body
from tests.shared_app import SharedApp

INTENDED_USE = "Score loan applications of the toy population for a human underwriter."
CARD = {
    "format": "warden-model-card/1",
    "model_details": {"name": "toy", "version": "1"},
    "intended_use": {"primary_use": INTENDED_USE, "out_of_scope": ["Automated refusals."]},
    "training_data": {"dataset": "toy", "description": "synthetic rows", "content_hash": "ab"},
    "quantitative_analyses": {"overall": {"accuracy": 0.81}},
    "caveats_and_recommendations": ["Random weights: not for real decisions."],
}
ORGANISATION = """
controller: Example Bank plc, 1 Main St, dpo@example.test
dpo: dpo@example.test
purposes: [credit scoring]
data_categories: [age, working hours, sex, job]
subject_categories: [loan applicants]
recipients: [underwriters]
retention: records 30 days, audit log 7 years
security_measures: [AES-256-GCM envelope encryption, RBAC, signed audit log]
documents: {dpia: "DPIA-2026-03 v2, filed with the DPO"}
"""


@dataclass
class Generated:
    doc: dict[str, Any]
    shared: SharedApp
    auditor: str


def _with_card(artifact: Path) -> Path:
    data = json.dumps(CARD, sort_keys=True).encode()
    (artifact / "model_card.json").write_bytes(data)
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["files"] = {"model_card.json": hashlib.sha256(data).hexdigest()}
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    return artifact


def _period() -> dict[str, str]:
    now = utcnow()
    return {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }


@pytest.fixture(scope="module")
def generated(shared_app: SharedApp) -> Generated:
    client, warden, admin = shared_app.client, shared_app.warden, shared_app.admin
    engineer = warden.principal("eng-f", "ml_engineer")
    body = upload_body(_with_card(shared_app.artifact("toy", "1")))
    r = client.post("/v1/models", json=body, headers=auth(engineer))
    assert r.status_code == 201, r.text
    warden.override_gate("toy", "1")
    r = client.post("/v1/models/toy/versions/1/promote", headers=auth(admin))
    assert r.status_code == 200, r.text
    warden.policy_change([["g2", "model:toy", "group:default-models"]], reason="toy for apps")
    app = warden.principal("app-f", "client", kind="service")
    auditor = warden.principal("aud-f", "auditor")
    for i in range(2):
        r = client.post("/v1/models/toy/predict", json={"record": toy_record(i)}, headers=auth(app))
        assert r.status_code == 200, r.text
    r = client.post(
        "/v1/reports",
        json={**_period(), "frameworks": ["gdpr", "eu-ai-act"]},
        headers=auth(auditor),
    )
    assert r.status_code == 201, r.text
    r = client.get(f"/v1/reports/{r.json()['id']}/files/report.json", headers=auth(auditor))
    assert r.status_code == 200
    return Generated(r.json(), shared_app, auditor)


def _entry(shared: SharedApp, seq: int) -> dict[str, Any]:
    engine = make_engine(shared.settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            canonical = session.scalar(select(AuditEntry.canonical).where(AuditEntry.seq == seq))
    finally:
        engine.dispose()
    assert canonical is not None
    return dict(json.loads(canonical))


def test_served_by_override_is_an_exception_with_a_finding(generated: Generated) -> None:
    doc = generated.doc
    controls = {c["id"]: c for c in doc["controls"]}
    assert controls["C4"]["status"] == "exception"
    assert {c["status"] for c in doc["controls"]} <= {
        "effective",
        "exception",
        "gap",
        "not_applicable",
    }
    (finding,) = [f for f in doc["summary"]["findings"] if f["control"] == "C4"]
    assert finding["id"] in controls["C4"]["findings"]
    assert finding["severity"] == "high" and "override" in finding["title"]
    assert finding["evidence"]["section"] == "system-toy-1"
    seqs = finding["evidence"]["audit_seqs"]
    assert seqs and _entry(generated.shared, seqs[0])["event_type"] == "fairness.override"
    assert finding["to_close"]
    # The shipped organisation file is empty: a gap that names what to supply.
    assert controls["C8"]["status"] == "gap"
    assert controls["C1"]["status"] == "effective"


def test_the_anchor_covers_the_period_and_proves_its_last_entry(generated: Generated) -> None:
    log = generated.doc["meta"]["audit_log"]
    checkpoint = log["checkpoint"]
    assert log["checkpoint_covers_period"] is True
    assert checkpoint["tree_size"] > log["last_seq"]
    proof = log["inclusion_proof"]
    assert proof["seq"] == log["last_seq"] and proof["tree_size"] == checkpoint["tree_size"]
    engine = make_engine(generated.shared.settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            stored = session.scalar(
                select(AuditEntry.canonical).where(AuditEntry.seq == log["last_seq"])
            )
    finally:
        engine.dispose()
    assert stored is not None
    leaf = merkle.leaf_hash(stored.encode("utf-8"))
    assert leaf.hex() == proof["leaf_hash"]
    assert merkle.verify_inclusion(
        leaf,
        proof["seq"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(checkpoint["root_hash"]),
    )
    assert log["chain"]["latest"]["tree_size"] == checkpoint["tree_size"]
    summary = generated.doc["summary"]
    assert summary["verified"] is True and "covers" in summary["verification"]


def test_each_ai_system_has_its_card_gate_and_serving_history(generated: Generated) -> None:
    doc = generated.doc
    (system,) = doc["systems"]
    assert (system["name"], system["version"], system["stage"]) == ("toy", "1", "serving")
    assert system["purpose"] == INTENDED_USE
    card = system["model_card"]
    assert card["out_of_scope_uses"] == ["Automated refusals."]
    assert card["metrics"] == {"accuracy": 0.81} and card["caveats"]
    assert "synthetic rows" in card["data_provenance"]
    assert INTENDED_USE in doc["system"]["purpose"]
    assert [o["approved_by"] for o in system["overrides"]] == ["officer-fixture"]
    assert [g["reason"] for g in system["gate"]] == ["override"]
    assert [e["event"] for e in system["serving_history"]] == ["model.promote"]
    names = [b["feature"] for b in system["data_governance"]["input_schema"]]
    assert names == ["age", "hours", "sex", "job"]
    assert system["predictions_in_period"] == 2


def test_usage_separates_predictions_from_administration(generated: Generated) -> None:
    usage = generated.doc["usage"]
    assert usage["predictions"]["allowed"] == 2
    assert usage["administrative"]["requests"] > 0
    assert (
        usage["requests"] == usage["predictions"]["requests"] + usage["administrative"]["requests"]
    )
    keys = generated.doc["data_protection"]["data_keys"]
    assert keys["active"] + keys["decrypt_only"] + keys["destroyed"] == keys["total"]
    assert "rotation" in keys["explanation"]


def test_frameworks_narrow_and_gaps_say_what_to_supply(generated: Generated) -> None:
    frameworks = generated.doc["frameworks"]
    assert [f["id"] for f in frameworks] == ["gdpr", "eu-ai-act"]
    gdpr = {i["ref"]: i for i in frameworks[0]["items"]}
    assert gdpr["Art. 30"]["status"] == "gap" and "controller" in gdpr["Art. 30"]["statement"]
    assert gdpr["Art. 35"]["status"] == "gap" and "DPIA" in gdpr["Art. 35"]["statement"]
    eu = {i["ref"]: i for i in frameworks[1]["items"]}
    assert eu["Art. 12"]["status"] == "effective"
    assert eu["Art. 10"]["status"] == "exception"  # takes C4's exception
    assert {i["ref"] for i in frameworks[1]["items"]} >= {f"Annex IV §{n}" for n in range(1, 10)}
    shared = generated.shared
    r = shared.client.post(
        "/v1/reports", json={**_period(), "frameworks": ["nope"]}, headers=auth(generated.auditor)
    )
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem")


def test_report_validates_against_the_published_schema(generated: Generated) -> None:
    schema = json.loads((REPO / "docs" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(generated.doc)


def test_the_organisation_file_fills_gdpr_art_30(generated: Generated, tmp_path: Path) -> None:
    settings = generated.shared.settings.model_copy(
        update={"policies_dir": policies_copy(tmp_path, organisation_yaml=ORGANISATION)}
    )
    now = utcnow()
    with snapshot_session(settings.resolved_database_url) as session:
        report: Report = build_report(
            session,
            settings,
            signing_key=load_signing_key(settings.resolved_signing_key_file),
            start=now - timedelta(hours=1),
            end=now + timedelta(hours=1),
            verify=False,
            frameworks=["gdpr", "china-pipl"],
        )
    assert report.organisation.missing == []
    controls = {c.id: c.status for c in report.controls}
    assert controls["C8"] == "effective"
    # Verification skipped: the report says so, and never claims it verified.
    assert controls["C1"] == "exception" and report.summary.verified is False
    gdpr = {i.ref: i for i in report.frameworks[0].items}
    art30 = gdpr["Art. 30"]
    assert art30.status == "effective"
    assert art30.organisation["controller"].startswith("Example Bank plc")
    assert art30.organisation["purposes"] == "credit scoring"
    assert (
        gdpr["Art. 35"].status == "effective"
        and "DPIA-2026-03" in gdpr["Art. 35"].organisation["documents.dpia"]
    )
    pipl = {i.ref: i for i in report.frameworks[1].items}
    assert pipl["GenAI Measures Art. 17"].status == "not_applicable"


def test_a_range_no_checkpoint_covers_is_an_exception_never_verified(
    generated: Generated,
) -> None:
    report = Report.model_validate(generated.doc)
    report.meta.audit_log.checkpoint_covers_period = False
    controls, findings = judge(report, [])
    c1 = next(c for c in controls if c.id == "C1")
    assert c1.status == "exception" and c1.rule.startswith("C1.2")
    (finding,) = [f for f in findings if f.control == "C1"]
    assert finding.severity == "high" and finding.id in c1.findings
    assert finding.evidence.section == "sec-audit_log"


def test_the_range_ends_at_the_anchor_signed_for_the_report(generated: Generated) -> None:
    settings = generated.shared.settings
    now = utcnow()
    # The fixture's report ended at its anchor; the log grew since (its export, later calls).
    first = generated.doc["meta"]["audit_log"]["checkpoint"]["tree_size"]
    with snapshot_session(settings.resolved_database_url) as session:
        report = build_report(
            session,
            settings,
            signing_key=load_signing_key(settings.resolved_signing_key_file),
            start=now - timedelta(hours=1),
            end=now + timedelta(hours=1),
            verify=False,
            anchor_size=first,
            frameworks=["soc2"],
        )
    log = report.meta.audit_log
    assert log.checkpoint is not None and log.checkpoint.tree_size == first
    assert log.last_seq == first - 1 and log.checkpoint_covers_period
    assert log.entries_after_anchor > 0
    assert log.inclusion_proof is not None and log.inclusion_proof.seq == first - 1


def test_an_imported_models_declared_card_is_read_too() -> None:
    view = card_view(
        {
            "intended_use": "Rank support tickets for a human agent.",
            "provenance": {
                "trained_by": "vendor",
                "training_data": "tickets 2024, vendor-held",
                "code_version": "git 1a2b",
                "out_of_scope_uses": "Decisions about employees.",
            },
        }
    )
    assert view is not None and view.intended_use == "Rank support tickets for a human agent."
    assert view.out_of_scope_uses == ["Decisions about employees."]
    assert view.data_provenance is not None and "tickets 2024" in view.data_provenance
    assert card_view(None) is None


def test_schema_bounds_say_what_happens_outside_them() -> None:
    age = {"name": "age", "type": "numeric", "lo": 17, "hi": 90, "out_of_bounds": "clip"}
    assert bounds_of(age) == "[17, 90]; values outside are clipped"
    assert bounds_of({"name": "h", "type": "numeric"}) == "any finite number"
