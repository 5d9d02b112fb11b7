"""A mitigation on private rows is a charged DP release; its version states the composed ε."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from governance.config import Settings
from governance.db import make_engine, make_sessionmaker
from governance.privacy.accounting import Mechanism, compose_epsilon
from governance.reports.sections import build_models
from tests.conftest import WardenFactory, auth

pytestmark = pytest.mark.slow


def _artifact(settings: Settings, version: str) -> Path:
    for manifest in settings.resolved_models_dir.rglob("manifest.json"):
        if json.loads(manifest.read_text())["version"] == version:
            return manifest.parent
    raise AssertionError(f"no artifact of version {version}")


def _mechanism(doc: dict[str, Any]) -> Mechanism:
    return Mechanism(doc["noise_multiplier"], doc["sample_rate"], doc["steps"])


def test_mitigation_is_charged_composed_and_capped(
    warden: WardenFactory, settings: Settings
) -> None:
    http = warden.client
    engineer = warden.principal("eng", "ml_engineer")
    r = http.post(
        "/v1/training/runs",
        json={
            "dataset": "adult",
            "model": "mlp",
            "hidden": [32],
            "epsilon": 1.0,
            "epochs": 3,
            "name": "adult-mlp",
            "version": "1",
        },
        headers=auth(engineer),
    )
    assert r.status_code == 201, r.text
    trained = r.json()

    r = http.post(
        "/v1/fairness/mitigations",
        json={"model": "adult-mlp", "version": "1", "sensitive": "sex", "epsilon": 0.5},
        headers=auth(engineer),
    )
    assert r.status_code == 201, r.text
    out = r.json()

    # The ledger holds the release as a run of its own, spent by the mitigated artifact.
    runs = http.get("/v1/training/runs", params={"dataset": "adult"}, headers=auth(engineer))
    assert runs.status_code == 200, runs.text
    (charge,) = [run for run in runs.json() if run["model_kind"] == "mitigation"]
    assert charge["id"] == out["ledger_run"] and charge["status"] == "completed"
    assert charge["charged"]["sample_rate"] == 1.0 and charge["charged"]["steps"] == 1
    assert charge["artifact_sha256"] == out["artifact_sha256"]
    assert 0.45 < charge["epsilon"] <= 0.5

    # The claim composes training and release at the training run's δ: more than either
    # alone, less than their sum.
    delta = trained["delta"]
    composed = compose_epsilon(
        [_mechanism(trained["charged"]), _mechanism(charge["charged"])], delta
    )
    claim = out["privacy_claim"]
    assert claim["private"] is True and claim["delta"] == delta
    assert claim["epsilon"] == pytest.approx(composed)
    assert trained["epsilon"] < claim["epsilon"] < trained["epsilon"] + charge["epsilon"]
    assert [a["kind"] for a in claim["accesses"]] == ["training", "mitigation"]

    folder = _artifact(settings, "1-mitigated")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["training"]["epsilon"] == pytest.approx(composed)
    assert manifest["training"]["privacy_claim"] == claim
    fit = manifest["training"]["mitigation"]["fit_data"]
    assert fit["dataset"] == "adult" and fit["covered_by_ledger"] is True
    assert fit["release"]["mechanism"] == "gaussian"
    card = json.loads((folder / "model_card.json").read_text())
    assert card["model_details"]["version"] == "1-mitigated"
    statement = card["model_details"]["differential_privacy"]
    assert statement.startswith(f"({composed:.4g}, {delta:.3g})-differential privacy, composed")
    assert claim["accountant"] in ("prv", "pld")
    assert f"with the {claim['accountant'].upper()} accountant" in statement
    # The registry and the report recompute the claim from the ledger: the same claim.
    detail = http.get(
        "/v1/models/adult-mlp", params={"version": "1-mitigated"}, headers=auth(engineer)
    )
    assert detail.status_code == 200, detail.text
    registry = detail.json()["dp_claim"]
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            _, privacy = build_models(session, model="adult-mlp")
    finally:
        engine.dispose()
    (report,) = [p for p in privacy if p.version == "1-mitigated"]
    assert registry["status"] == report.dp_claim == "ledger"
    assert registry["epsilon"] == report.epsilon == claim["epsilon"]
    assert registry["delta"] == report.delta == claim["delta"]
    assert registry["accountant"] == report.accountant == claim["accountant"]
    assert registry["statement"] == report.dp_claim_statement == statement
    assert registry["runs"] == claim["runs"] == [trained["id"], charge["id"]]
    base_eps = f"({trained['epsilon']:.4g},"
    assert base_eps not in json.dumps(card["ethical_considerations"])
    assert card["mitigation"]["fit_data"]["release"]["ledger_run"] == charge["id"]

    # Over the cap: refused as training is, and the ledger is unchanged.
    before = http.get("/v1/privacy/ledger/adult", headers=auth(engineer)).json()
    r = http.post(
        "/v1/fairness/mitigations",
        json={
            "model": "adult-mlp",
            "version": "1",
            "sensitive": "sex",
            "epsilon": 5.0,
            "new_version": "1-again",
        },
        headers=auth(engineer),
    )
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("privacy-budget-exceeded")
    after = http.get("/v1/privacy/ledger/adult", headers=auth(engineer)).json()
    assert after == before
    again = http.get("/v1/models/adult-mlp/versions/1-again", headers=auth(engineer))
    assert again.status_code == 404
