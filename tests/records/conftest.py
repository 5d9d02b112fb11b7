"""A served toy model in the in-process app, with callers for every role records touch."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from governance.config import Settings
from governance.runtime import Runtime
from tests.conftest import ArtifactBuilder, WardenFactory, auth
from tests.factories import toy_record, upload_body


@dataclass
class Setup:
    """Callers of a served ``toy`` model: a client, an auditor, an admin."""

    http: Any
    factory: WardenFactory
    client: str
    auditor: str
    admin: str

    def predict(
        self,
        *,
        subject_id: str | None = None,
        i: int = 0,
        token: str | None = None,
        record: dict[str, Any] | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"record": record or toy_record(i)}
        if subject_id is not None:
            body["subject_id"] = subject_id
        return self.http.post(
            "/v1/models/toy/predict", json=body, headers=auth(token or self.client)
        )

    def decrypt(
        self, record_id: str, *, token: str | None = None, purpose: str = "dispute review #42"
    ) -> httpx.Response:
        return self.http.post(
            f"/v1/records/{record_id}/decrypt",
            json={"purpose": purpose},
            headers=auth(token or self.auditor),
        )


def serve_toy(http: Any, admin_token: str, make_artifact: ArtifactBuilder) -> Setup:
    factory = WardenFactory(http, admin_token)
    engineer = factory.principal("eng", "ml_engineer")
    r = http.post("/v1/models", json=upload_body(make_artifact("toy", "1")), headers=auth(engineer))
    assert r.status_code == 201, r.text
    factory.override_gate("toy", "1")
    r = http.post("/v1/models/toy/versions/1/promote", headers=auth(admin_token))
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 15
    while "toy" not in http.get("/readyz").json().get("models", []):
        assert time.monotonic() < deadline, "the toy model did not start serving"
        time.sleep(0.05)
    factory.policy_change([["g2", "model:toy", "group:default-models"]], reason="toy for clients")
    client = factory.principal("app", "client", kind="service")
    auditor = factory.principal("aud", "auditor")
    return Setup(http, factory, client, auditor, admin_token)


@pytest.fixture
def served(
    app_client: Any, admin_token: str, make_artifact: ArtifactBuilder, settings: Settings
) -> Setup:
    return serve_toy(app_client, admin_token, make_artifact)


@pytest.fixture
def runtime_of(app_client: Any) -> Runtime:
    runtime: Runtime = app_client.app.state.runtime
    return runtime
