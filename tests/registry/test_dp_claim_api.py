"""GET /v1/models/{name} against a real server: the DP claim is the ledger's, not the upload's."""

from __future__ import annotations

import json

from inference.artifact import MANIFEST_FILE
from tests.conftest import auth
from tests.factories import upload_body
from tests.servers import SharedServer


def test_an_uploaded_dp_claim_is_shown_as_no_guarantee(common_server: SharedServer) -> None:
    live_server, http = common_server.server, common_server.http
    claimed = common_server.unique("claimed")
    artifact = common_server.artifact(claimed, "1")
    manifest = json.loads((artifact / MANIFEST_FILE).read_text())
    # The uploader's word: DP at ε = 0.5 with a known seed. No ledger run made this artifact.
    manifest["training"] = {"private": True, "epsilon": 0.5, "delta": 1e-5, "accountant": "prv"}
    (artifact / MANIFEST_FILE).write_text(json.dumps(manifest))
    engineer = common_server.warden.principal(common_server.unique("eng"), "ml_engineer")
    created = http.post("/v1/models", json=upload_body(artifact), headers=auth(engineer))
    assert created.status_code == 201, created.text
    r = http.get(f"/v1/models/{claimed}", headers=auth(engineer))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["manifest"]["training"]["epsilon"] == 0.5  # served as registered...
    claim = body["dp_claim"]  # ...but the claim is the ledger's
    assert claim["status"] == "none"
    assert claim["statement"].startswith("no DP guarantee")
    assert claim["epsilon"] is None and claim["delta"] is None and claim["runs"] == []
    assert claim["manifest_claims_dp"] is True
    assert "unhandled" not in live_server.log_path.read_text()
