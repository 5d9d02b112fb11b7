# TEMPORARY (deleted after this run): serves the toy model through a gate override.
from collections.abc import Iterator
import httpx, pytest
from tests.conftest import LiveServer, WardenFactory, auth
from tests.predict.conftest import Served, upload_body
from tests.audit.test_crash import serving, test_kill_9_loses_no_acknowledged_request, test_two_servers_share_one_gap_free_chain  # noqa

@pytest.fixture
def served(live_server: LiveServer, admin_token: str, make_artifact) -> Iterator[Served]:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        factory = WardenFactory(http, admin_token)
        engineer = factory.principal("eng", "ml_engineer")
        r = http.post("/v1/models", json=upload_body(make_artifact("toy", "1")), headers=auth(engineer))
        assert r.status_code == 201, r.text
        officer = factory.principal("off2", "compliance_officer")
        r = http.post("/v1/fairness/overrides", json={"model": "toy", "version": "1", "justification": "x" * 50}, headers=auth(officer))
        assert r.status_code == 201, r.text
        r = http.post("/v1/models/toy/versions/1/promote", headers=auth(admin_token))
        assert r.status_code == 200, r.text
        factory.policy_change([["g2", "model:toy", "group:default-models"]])
        client = factory.principal("app", "client", kind="service")
        yield Served(live_server.url, client, "", admin_token, factory, http)
