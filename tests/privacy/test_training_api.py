"""Training and ledger over HTTP: permissions, a real run, an over-budget 409 problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from governance.config import Settings
from tests.conftest import auth
from tests.privacy.conftest import write_synthetic
from tests.privacy.ledger_support import with_policies


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    cfg = with_policies(settings, tmp_path)
    folder = cfg.data_dir / "datasets" / "syn"
    folder.mkdir(parents=True)
    write_synthetic(folder)
    return cfg


RUN: dict[str, Any] = {
    "dataset": "synthetic",
    "model": "logreg",
    "epsilon": 1.0,
    "epochs": 2,
    "batch_size": 100,  # q = 1/9: a cheap noise search, as in ledger_support.FAST
    "lr": 0.05,
}


def test_engineer_registers_trains_and_reads_the_ledger(app_client: Any, warden: Any) -> None:
    engineer = warden.principal("eng", "ml_engineer")
    client = warden.principal("cli-app", "client")
    auditor = warden.principal("aud", "auditor")

    body = {"name": "synthetic", "schema_path": "syn/schema.yaml"}
    assert app_client.post("/v1/datasets", json=body, headers=auth(client)).status_code == 403
    r = app_client.post("/v1/datasets", json=body, headers=auth(engineer))
    assert r.status_code == 201, r.text
    assert r.json()["train_rows"] == 900
    outside = {"name": "other", "schema_path": "../../../etc/schema.yaml"}
    r = app_client.post("/v1/datasets", json=outside, headers=auth(engineer))
    assert r.status_code == 403 and r.json()["type"].endswith("dataset-path-refused")

    assert app_client.post("/v1/training/runs", json=RUN, headers=auth(client)).status_code == 403
    r = app_client.post("/v1/training/runs", json=RUN, headers=auth(engineer))
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["status"] == "completed" and run["registered"] is True
    assert 0 < run["epsilon"] <= 1.0
    assert run["charged"] == run["planned"]

    model = app_client.get(
        f"/v1/models/{run['model_name']}",
        params={"version": run["model_version"]},
        headers=auth(engineer),
    ).json()
    assert model["trained_by"] == "eng"
    assert model["manifest"]["training"]["private"] is True

    r = app_client.post("/v1/training/runs", json={**RUN, "seed": 3}, headers=auth(engineer))
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"].endswith("privacy-budget-exceeded")
    assert problem["cap_epsilon"] == 1.2 and problem["epsilon_after_run"] > 1.2

    assert app_client.get("/v1/privacy/ledger/synthetic", headers=auth(client)).status_code == 403
    r = app_client.get("/v1/privacy/ledger/synthetic", headers=auth(auditor))
    assert r.status_code == 200, r.text
    ledger = r.json()
    assert len(ledger["entries"]) == 1
    assert ledger["epsilon_recomposed"] == pytest.approx(ledger["entries"][0]["epsilon"])
    assert ledger["epsilon_naive"] == pytest.approx(ledger["epsilon_recomposed"])
    assert ledger["cap"] == {"epsilon": 1.2, "delta": 1e-4, "allow_non_private": False}

    runs = app_client.get("/v1/training/runs", headers=auth(engineer)).json()
    assert [x["id"] for x in runs] == [run["id"]]
    assert app_client.get("/v1/training/runs/999", headers=auth(engineer)).status_code == 404
    assert app_client.get("/v1/training/runs", headers=auth(client)).status_code == 403


def test_dataset_paths_no_file_can_have_are_refused_with_a_4xx(
    app_client: Any, warden: Any
) -> None:
    engineer = warden.principal("eng", "ml_engineer")
    for path, status in (
        ("syn/sche\x00ma.yaml", 422),  # a NUL byte: refused before any route
        ("syn/\x1b[31m.yaml", 422),  # other control characters: refused by the schema
        ("syn/\ud800.yaml", 422),  # a lone surrogate: valid JSON, but names no file
    ):
        for field in ("schema_path", "data_path"):
            body = {"name": "synthetic", "schema_path": "syn/schema.yaml", field: path}
            raw = json.dumps(body).encode()  # ASCII, with the surrogate as an escape
            headers = {**auth(engineer), "content-type": "application/json"}
            r = app_client.post("/v1/datasets", content=raw, headers=headers)
            assert r.status_code == status, (path, field, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
    names = [d["name"] for d in app_client.get("/v1/datasets", headers=auth(engineer)).json()]
    assert "synthetic" not in names


def test_a_clipping_bound_that_is_not_a_finite_sane_number_is_refused(
    app_client: Any, warden: Any
) -> None:
    engineer = warden.principal("eng", "ml_engineer")
    body = {"name": "synthetic", "schema_path": "syn/schema.yaml"}
    assert app_client.post("/v1/datasets", json=body, headers=auth(engineer)).status_code == 201
    # Python's JSON reader takes Infinity and NaN; noise scaled by either ruins the model.
    for bound in ("Infinity", "NaN", "1e308", "0"):
        raw = json.dumps(RUN)[:-1] + f', "max_grad_norm": {bound}}}'
        headers = {**auth(engineer), "content-type": "application/json"}
        r = app_client.post("/v1/training/runs", content=raw, headers=headers)
        assert r.status_code == 422, (bound, r.text)
        assert "max_grad_norm" in r.text
    runs = app_client.get("/v1/training/runs", headers=auth(engineer)).json()
    assert runs == []


def test_non_private_refused_where_the_policy_forbids(app_client: Any, warden: Any) -> None:
    engineer = warden.principal("eng", "ml_engineer")
    body = {"name": "synthetic", "schema_path": "syn/schema.yaml"}
    assert app_client.post("/v1/datasets", json=body, headers=auth(engineer)).status_code == 201
    r = app_client.post("/v1/training/runs", json={**RUN, "private": False}, headers=auth(engineer))
    assert r.status_code == 403 and r.json()["type"].endswith("non-private-refused")
    ledger = app_client.get("/v1/privacy/ledger/synthetic", headers=auth(engineer)).json()
    assert ledger["entries"] == [] and ledger["epsilon_recomposed"] == 0.0
    assert app_client.get("/v1/privacy/ledger/nope", headers=auth(engineer)).status_code == 404
    # The bundled dataset has a ledger before its first use.
    adult = app_client.get("/v1/privacy/ledger/adult", headers=auth(engineer)).json()
    assert adult["entries"] == [] and adult["cap"]["epsilon"] == 1.2
