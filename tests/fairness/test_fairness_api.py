"""The fairness API end to end: permissions, the gate on promotion, overrides, feedback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.models import AuditEntry
from governance.datasets.tabular import load_adult
from governance.fairness.metrics import audit_predictions
from governance.fairness.models import Outcome
from governance.registry.models import ModelVersion
from tests.conftest import WardenFactory, auth

JUSTIFICATION = "Pilot approved by the ethics board for a limited rollout, ticket ETH-42."


@pytest.fixture
def people(warden: WardenFactory) -> dict[str, str]:
    return {
        "eve": warden.principal("eve-engineer", "ml_engineer"),
        "olivia": warden.principal("olivia-officer", "compliance_officer"),
        "tom": warden.principal("tom-trainer", "compliance_officer"),
        "app": warden.principal("app", "client", kind="service"),
        "other-app": warden.principal("other-app", "client", kind="service"),
        "admin": warden.admin,
    }


def _count(sessions: sessionmaker[Session], event_type: str) -> int:
    with sessions() as session:
        return int(
            session.scalar(  # type: ignore[arg-type]
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.event_type == event_type)
            )
        )


def test_thresholds_api_is_for_compliance_officers(
    app_client: Any, people: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    r = app_client.get("/v1/fairness/thresholds", headers=auth(people["eve"]))
    assert r.status_code == 200, r.text
    doc = r.json()["document"]
    assert doc["defaults"]["demographic_parity_ratio"] == {"min": 0.8}
    doc["models"]["adult-lr"] = {"equalized_odds_difference": {"max": 0.2}}
    body = {"document": doc, "reason": "pilot model gets a wider error band", "base_version": 1}
    r = app_client.put("/v1/fairness/thresholds", json=body, headers=auth(people["eve"]))
    assert r.status_code == 403
    r = app_client.put("/v1/fairness/thresholds", json=body, headers=auth(people["olivia"]))
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["author"] == "olivia-officer"
    r = app_client.put("/v1/fairness/thresholds", json=body, headers=auth(people["olivia"]))
    assert r.status_code == 409  # base_version 1 is stale now
    assert r.headers["content-type"].startswith("application/problem+json")
    bad = {"document": {"defaults": {}}, "reason": "this would gate nothing"}
    r = app_client.put("/v1/fairness/thresholds", json=bad, headers=auth(people["olivia"]))
    assert r.status_code == 422
    r = app_client.get("/v1/fairness/thresholds/versions", headers=auth(people["eve"]))
    assert [v["version"] for v in r.json()] == [2, 1]
    assert _count(sessions, "fairness.thresholds") == 2


def test_gate_override_and_feedback_end_to_end(
    app_client: Any,
    warden: WardenFactory,
    people: dict[str, str],
    biased_model: ModelVersion,
    sessions: sessionmaker[Session],
) -> None:
    # Audits: engineers may run them, clients may not.
    audit = {"model": "adult-lr", "sensitive": ["sex", "race"], "bootstrap": 20}
    r = app_client.post("/v1/fairness/audits", json=audit, headers=auth(people["app"]))
    assert r.status_code == 403
    r = app_client.post("/v1/fairness/audits", json=audit, headers=auth(people["eve"]))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["passed"] is False
    assert created["artifact_sha256"] == biased_model.artifact_sha256
    sex = next(a for a in created["result"]["audits"] if a["name"] == "sex")
    assert sex["disparities"]["demographic_parity_ratio"]["ci"]["low"] is not None
    r = app_client.get(f"/v1/fairness/audits/{created['id']}", headers=auth(people["olivia"]))
    assert r.status_code == 200 and r.json()["result"] == created["result"]

    # The gate refuses promotion with a problem naming the failing measures.
    promote = "/v1/models/adult-lr/versions/1/promote"
    r = app_client.post(promote, headers=auth(people["admin"]))
    assert r.status_code == 409, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["type"].endswith("/fairness-gate")
    assert any(f["measure"] == "demographic_parity_ratio" for f in problem["failures"])
    assert problem["outcome"] == "fail"
    assert _count(sessions, "fairness.gate") == 1  # the denial outlived the rollback
    r = app_client.get("/v1/fairness/gate/adult-lr/1", headers=auth(people["olivia"]))
    assert r.json()["passed"] is False and r.json()["outcome"] == "fail"

    # Overrides: only compliance officers, never the trainer (nor the registrant).
    body = {"model": "adult-lr", "version": "1", "justification": JUSTIFICATION}
    for who, status in (("eve", 403), ("admin", 403), ("app", 403), ("tom", 403)):
        r = app_client.post("/v1/fairness/overrides", json=body, headers=auth(people[who]))
        assert r.status_code == status, (who, r.text)
    assert r.json()["type"].endswith("/fairness-separation-of-duties")  # tom trained it
    short = {**body, "justification": "because"}
    r = app_client.post("/v1/fairness/overrides", json=short, headers=auth(people["olivia"]))
    assert r.status_code == 422
    r = app_client.post("/v1/fairness/overrides", json=body, headers=auth(people["olivia"]))
    assert r.status_code == 201, r.text
    assert r.json()["audit_id"] == created["id"]
    r = app_client.get("/v1/fairness/gate/adult-lr/1", headers=auth(people["olivia"]))
    assert r.json()["passed"] is True and r.json()["basis"] == "override"
    r = app_client.post(promote, headers=auth(people["admin"]))
    assert r.status_code == 200, r.text
    assert _count(sessions, "fairness.override") == 1

    # Serve it, then report outcomes.
    warden.policy_change([["g2", "model:adult-lr", "group:default-models"]], reason="pilot")
    test = load_adult().test
    rows = test.features.iloc[:40].to_dict(orient="records")
    r = app_client.post(
        "/v1/models/adult-lr/predict", json={"records": rows}, headers=auth(people["app"])
    )
    assert r.status_code == 200, r.text
    request_id = r.json()["request_id"]
    served = [p["label"] for p in r.json()["predictions"]]
    truth = [">50K" if y else "<=50K" for y in test.labels[:40]]

    def feedback(token: str, **fields: Any) -> Any:
        body = {"request_id": request_id, "label": truth[0], "row": 0, **fields}
        return app_client.post("/v1/feedback", json=body, headers=auth(token))

    assert feedback(people["other-app"]).status_code == 404  # not its prediction
    assert feedback(people["eve"]).status_code == 403  # no feedback right
    assert feedback(people["app"], label="maybe").status_code == 422
    assert feedback(people["app"], row=40).status_code == 422
    assert feedback(people["app"], sensitive={"sex": "Female"}).status_code == 422  # derivable
    for i in range(40):
        r = feedback(people["app"], row=i, label=truth[i])
        assert r.status_code == 201, r.text
    assert r.json()["attributes"] == ["age_group", "race", "sex"]
    assert feedback(people["app"]).status_code == 409
    assert _count(sessions, "fairness.feedback") == 40
    with sessions() as session:
        stored = session.scalars(select(Outcome).order_by(Outcome.id)).all()
        # Nothing joins an outcome back to the request: no ids, time cut to the minute.
        assert all(o.predicted_at.second == 0 and o.predicted_at.microsecond == 0 for o in stored)
        assert request_id not in {o.ref for o in stored}
        assert [o.y_pred for o in stored] == [int(s == ">50K") for s in served]

    # Monitoring over live traffic reproduces the audit of the same decisions.
    now = datetime.now(UTC)
    window = {
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=5)).isoformat(),
    }
    r = app_client.post(
        "/v1/fairness/monitor",
        json={"model": "adult-lr", "sensitive": ["sex", "race"], **window},
        headers=auth(people["eve"]),
    )
    assert r.status_code == 201, r.text
    live = r.json()
    assert live["kind"] == "live" and live["n_rows"] == 40 and live["engine"] == "fastpath"
    expected = audit_predictions(
        y_true=np.asarray(test.labels[:40]),
        y_pred=np.asarray([int(s == ">50K") for s in served]),
        sensitive=pd.DataFrame(
            test.sensitive.iloc[:40][["sex", "race"]].to_numpy(), columns=["sex", "race"]
        ),
        bootstrap=0,
        use_fast_path=True,
    )
    assert live["result"] == json.loads(json.dumps(expected.to_dict()))
    r = app_client.post(
        "/v1/fairness/monitor",
        json={
            "model": "adult-lr",
            "since": window["until"],
            "until": (now + timedelta(hours=2)).isoformat(),
        },
        headers=auth(people["eve"]),
    )
    assert r.status_code == 422  # no outcomes in that window
