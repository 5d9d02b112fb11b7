"""A mitigated version's DP claim: the card, the registry and the report say the same thing.

Fitted on public rows, a mitigation is a zero-charge run in the base's ledger and keeps the
base's guarantee; fitted on a "public" copy of private rows, it is charged like any private fit;
over the cap it is refused and audited; a mistaken request costs nothing; a failure after its
reservation leaves it reserved.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from governance.audit.models import AuditEntry
from governance.config import Settings
from governance.db import make_engine, make_sessionmaker
from governance.privacy.accounting import Mechanism, tightest_epsilon
from governance.reports.sections import build_models
from inference.artifact import sha256_file
from tests.conftest import WardenFactory, auth
from tests.privacy.conftest import write_synthetic

pytestmark = pytest.mark.slow

MODEL = "syn-lr"


def _dataset(settings: Settings, folder: str, *, seed: int, public: bool) -> str:
    """Synthetic rows whose sensitive attributes are the categorical input ``colour`` and
    ``group``, which is no input of the model."""
    root = settings.data_dir / "datasets" / folder
    root.mkdir(parents=True)
    schema = write_synthetic(root, rows=900, seed=seed)
    doc = yaml.safe_load(schema.read_text())
    doc["sensitive"] = [
        {"name": "colour", "column": "colour"},
        {"name": "group", "column": "group"},
    ]
    doc["privacy"] = {"allow_non_private": False, "delta": 1e-5, "public": public}
    schema.write_text(yaml.safe_dump(doc))
    return f"{folder}/schema.yaml"


def _register(http: Any, token: str, name: str, schema_path: str) -> dict[str, Any]:
    r = http.post(
        "/v1/datasets", json={"name": name, "schema_path": schema_path}, headers=auth(token)
    )
    assert r.status_code == 201, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _mitigate(http: Any, token: str, **body: Any) -> Any:
    return http.post(
        "/v1/fairness/mitigations",
        json={"model": MODEL, "version": "1", "sensitive": "colour", **body},
        headers=auth(token),
    )


def _card(settings: Settings, sha: str) -> dict[str, Any]:
    for manifest in settings.resolved_models_dir.rglob("manifest.json"):
        if sha256_file(manifest) == sha:
            return dict(json.loads((manifest.parent / "model_card.json").read_text()))
    raise AssertionError(f"no artifact {sha}")


def _three_claims(
    http: Any, token: str, settings: Settings, version: str, sha: str
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """The claim as the card, the registry and the report state it."""
    card = _card(settings, sha)
    r = http.get(f"/v1/models/{MODEL}", params={"version": version}, headers=auth(token))
    assert r.status_code == 200, r.text
    registry = r.json()["dp_claim"]
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            _, privacy = build_models(session, model=MODEL)
    finally:
        engine.dispose()
    (report,) = [p for p in privacy if p.version == version]
    return card, registry, report


def _ledger_runs(http: Any, token: str, dataset: str) -> list[dict[str, Any]]:
    r = http.get("/v1/training/runs", params={"dataset": dataset}, headers=auth(token))
    assert r.status_code == 200, r.text
    runs: list[dict[str, Any]] = r.json()
    return runs


def test_card_registry_and_report_agree_on_public_and_charged_mitigations(
    warden: WardenFactory, settings: Settings
) -> None:
    http = warden.client
    eng = warden.principal("eng", "ml_engineer")
    private = _register(http, eng, "syn", _dataset(settings, "priv", seed=0, public=False))
    public = _register(http, eng, "syn-public", _dataset(settings, "pub", seed=1, public=True))
    # The private rows again, declared public: the same fingerprint, so the same ledger.
    copy_schema = _dataset(settings, "copy", seed=0, public=True)
    copy = _register(http, eng, "syn-copy", copy_schema)
    assert copy["ledger"]["id"] == private["ledger"]["id"]
    assert public["ledger"]["id"] != private["ledger"]["id"]

    r = http.post(
        "/v1/training/runs",
        json={
            "dataset": "syn",
            "model": "logreg",
            "epsilon": 1.0,
            "epochs": 2,
            "batch_size": 300,
            "name": MODEL,
            "version": "1",
        },
        headers=auth(eng),
    )
    assert r.status_code == 201, r.text
    trained = r.json()
    spent = http.get("/v1/privacy/ledger/syn", headers=auth(eng)).json()

    # Public rows: nothing charged, a zero-charge run in the base's ledger names them.
    r = _mitigate(http, eng, dataset="syn-public", new_version="1-public")
    assert r.status_code == 201, r.text
    out = r.json()
    unchanged = http.get("/v1/privacy/ledger/syn", headers=auth(eng)).json()
    assert unchanged["epsilon_recomposed"] == spent["epsilon_recomposed"]
    assert unchanged["remaining"] == spent["remaining"]
    assert len(unchanged["entries"]) == len(spent["entries"]) + 1
    assert _ledger_runs(http, eng, "syn-public") == []
    (zero,) = [run for run in _ledger_runs(http, eng, "syn") if run["model_kind"] == "mitigation"]
    assert zero["status"] == "completed" and zero["charged"] is None
    assert zero["fit_dataset"] == "syn-public" and zero["epsilon"] == 0.0
    assert zero["artifact_sha256"] == out["artifact_sha256"] and zero["id"] == out["ledger_run"]

    card, registry, report = _three_claims(http, eng, settings, "1-public", out["artifact_sha256"])
    claim = card["privacy_claim"]
    # The base's guarantee, unchanged, and proved by the ledger: training + zero-charge fit.
    assert claim["epsilon"] == trained["epsilon"]
    assert registry["status"] == report.dp_claim == claim["status"] == "ledger"
    assert registry["epsilon"] == report.epsilon == claim["epsilon"]
    assert registry["delta"] == report.delta == claim["delta"] == trained["delta"]
    assert registry["accountant"] == report.accountant == claim["accountant"]
    assert registry["runs"] == claim["runs"] == [trained["id"], zero["id"]]
    assert registry["statement"] == report.dp_claim_statement == claim["statement"]
    assert card["model_details"]["differential_privacy"] == claim["statement"]
    assert "public 'syn-public', no charge" in claim["statement"]
    assert card["mitigation"]["fit_data"]["dataset"] == "syn-public"
    assert card["mitigation"]["fit_data"]["covered_by_ledger"] is False
    assert any("declares its rows public" in c for c in card["caveats_and_recommendations"])

    # Private rows declared public: still charged, to the shared ledger, and composed.
    r = _mitigate(http, eng, dataset="syn-copy", new_version="1-copy", epsilon=0.3)
    assert r.status_code == 201, r.text
    out = r.json()
    (charge,) = [run for run in _ledger_runs(http, eng, "syn-copy") if run["charged"]]
    assert charge["model_kind"] == "mitigation" and charge["fit_dataset"] is None
    assert charge["id"] == out["ledger_run"] and charge["status"] == "completed"
    after = http.get("/v1/privacy/ledger/syn", headers=auth(eng)).json()
    assert after["epsilon_recomposed"] > spent["epsilon_recomposed"]
    card, registry, report = _three_claims(http, eng, settings, "1-copy", out["artifact_sha256"])
    claim = card["privacy_claim"]
    mechanisms = [Mechanism(**trained["charged"]), Mechanism(**charge["charged"])]
    expected = tightest_epsilon(mechanisms, trained["delta"])
    assert claim["epsilon"] == expected.epsilon and claim["accountant"] == expected.accountant
    assert registry["epsilon"] == report.epsilon == claim["epsilon"] > trained["epsilon"]
    assert registry["accountant"] == report.accountant == claim["accountant"]
    assert registry["statement"] == report.dp_claim_statement == claim["statement"]
    assert registry["runs"] == claim["runs"] == [trained["id"], charge["id"]]

    # Over the cap (3.0 by default): refused with 409, the ledger unchanged, the refusal audited.
    before = http.get("/v1/privacy/ledger/syn", headers=auth(eng)).json()
    r = _mitigate(http, eng, dataset="syn", new_version="1-over", epsilon=50.0)
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("privacy-budget-exceeded")
    assert http.get("/v1/privacy/ledger/syn", headers=auth(eng)).json() == before
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            refusals = session.scalars(
                select(AuditEntry).where(
                    AuditEntry.event_type == "privacy.run", AuditEntry.action == "refuse"
                )
            ).all()
    finally:
        engine.dispose()
    (refusal,) = refusals
    assert refusal.decision == "deny"
    entry = json.loads(refusal.canonical)
    details = entry["details"]
    assert details["kind"] == "mitigation" and details["model"] == MODEL
    assert details["target_epsilon"] == 50.0 and details["mechanism"]["steps"] == 1
    assert details["cap_epsilon"] == before["cap"]["epsilon"]

    # Mistaken requests are refused before the reservation: 422, and the ledger unchanged.
    for version, sensitive, says in (
        ("1-public", "colour", "already has post-processing"),
        ("1", "group", "not a categorical input of the model"),
    ):
        r = http.post(
            "/v1/fairness/mitigations",
            json={
                "model": MODEL,
                "version": version,
                "dataset": "syn",
                "sensitive": sensitive,
                "new_version": "1-mistaken",
                "epsilon": 0.2,
            },
            headers=auth(eng),
        )
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert says in r.json()["detail"]
        assert http.get("/v1/privacy/ledger/syn", headers=auth(eng)).json() == before
        assert all(run["status"] != "reserved" for run in _ledger_runs(http, eng, "syn"))

    # A failure after the reservation commits (the private rows changed on disk since their
    # registration, found when compute loads them) leaves the release reserved and charged:
    # fail closed, and visible in the ledger.
    rows = settings.data_dir / "datasets" / "priv" / "synthetic.csv"
    rows.write_text(rows.read_text() + "9.0000,4.0000,red,a,pos\n")
    r = _mitigate(http, eng, dataset="syn", new_version="1-changed", epsilon=0.2)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("dataset-changed")
    ledger = http.get("/v1/privacy/ledger/syn", headers=auth(eng)).json()
    reserved = [e for e in ledger["entries"] if e["status"] == "reserved"]
    assert len(reserved) == 1 and reserved[0]["charged"]["steps"] == 1
    assert ledger["epsilon_recomposed"] > before["epsilon_recomposed"]
