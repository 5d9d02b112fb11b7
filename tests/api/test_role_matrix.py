"""Every default role against every route, on a real server: the intended access, written out.

The table below is the specification, kept apart from ``policies/default_policy.yaml`` on
purpose: a route that declares the wrong permission, or a grant that drifts, shows up as a
difference between the two. Columns: admin, compliance officer, auditor, ML engineer, client.
Y = the role gets past authorization (any answer but 401/403), N = 403.
"""

from __future__ import annotations

import pytest

from governance.api.app import EXEMPT_PATHS, create_app
from governance.config import Settings
from governance.kit.routes import api_routes
from tests.conftest import auth
from tests.servers import SharedServer

ROLES = ("admin", "compliance_officer", "auditor", "ml_engineer", "client")

MATRIX = """
GET    /metrics                                       N N N N N
GET    /v1/audit/checkpoints                          N Y Y N N
GET    /v1/audit/checkpoints/latest                   N Y Y N N
GET    /v1/audit/consistency                          N Y Y N N
GET    /v1/audit/entries                              N Y Y N N
GET    /v1/audit/entries/{seq}                        N Y Y N N
POST   /v1/audit/export                               N N Y N N
GET    /v1/audit/public-key                           N Y Y N N
POST   /v1/audit/verify                               N N Y N N
GET    /v1/datasets                                   N N N Y N
POST   /v1/datasets                                   N N N Y N
GET    /v1/datasets/{name}                            N N N Y N
GET    /v1/erasures                                   Y N Y N N
GET    /v1/fairness/audits                            N Y Y Y N
POST   /v1/fairness/audits                            N N N Y N
GET    /v1/fairness/audits/{audit_id}                 N Y Y Y N
GET    /v1/fairness/gate/{name}/{version}             N Y Y Y N
POST   /v1/fairness/mitigations                       N N N Y N
POST   /v1/fairness/monitor                           N N N Y N
GET    /v1/fairness/overrides                         N Y Y Y N
POST   /v1/fairness/overrides                         N Y N N N
GET    /v1/fairness/thresholds                        N Y Y Y N
PUT    /v1/fairness/thresholds                        N Y N N N
GET    /v1/fairness/thresholds/versions               N Y Y Y N
POST   /v1/feedback                                   N N N N Y
GET    /v1/keys                                       Y N N N N
POST   /v1/keys                                       Y N N N N
POST   /v1/keys/{key_id}/revoke                       Y N N N N
GET    /v1/models                                     Y Y Y Y Y
POST   /v1/models                                     Y N N Y N
POST   /v1/models/import                              Y N N Y N
GET    /v1/models/{name}                              Y Y Y Y N
POST   /v1/models/{name}/predict                      N N N N Y
GET    /v1/models/{name}/schema                       N N N N Y
POST   /v1/models/{name}/versions/{version}/promote   Y N N N N
GET    /v1/policy                                     Y Y Y N N
POST   /v1/policy/changes                             N Y N N N
GET    /v1/policy/diff                                Y Y Y N N
POST   /v1/policy/impact                              N Y N N N
GET    /v1/policy/proposals                           Y Y Y N N
POST   /v1/policy/proposals                           N Y N N N
GET    /v1/policy/proposals/{proposal_id}             Y Y Y N N
POST   /v1/policy/proposals/{proposal_id}/approve     N Y N N N
POST   /v1/policy/proposals/{proposal_id}/reject      N Y N N N
POST   /v1/policy/proposals/{proposal_id}/withdraw    N Y N N N
GET    /v1/policy/role-timeline                       Y Y Y N N
POST   /v1/policy/rollback                            N Y N N N
GET    /v1/policy/tests                               Y Y Y N N
POST   /v1/policy/tests                               N Y N N N
POST   /v1/policy/tests/run                           Y Y Y N N
DELETE /v1/policy/tests/{case_id}                     N Y N N N
GET    /v1/policy/versions                            Y Y Y N N
GET    /v1/policy/versions/{version}                  Y Y Y N N
GET    /v1/principals                                 Y N N N N
POST   /v1/principals                                 Y N N N N
POST   /v1/principals/{name}/disable                  Y N N N N
POST   /v1/principals/{name}/enrolment                Y N N N N
PUT    /v1/principals/{name}/sso                      Y N N N N
GET    /v1/privacy/ledger/{dataset}                   N Y Y Y N
GET    /v1/records                                    Y N Y N N
POST   /v1/records/purge                              Y N N N N
GET    /v1/records/{record_id}                        Y N Y N N
POST   /v1/records/{record_id}/decrypt                N N Y N N
GET    /v1/reports                                    N Y Y N N
POST   /v1/reports                                    N Y Y N N
GET    /v1/reports/{report_id}                        N Y Y N N
GET    /v1/reports/{report_id}/files/{name}           N Y Y N N
POST   /v1/roles/grant                                Y N N N N
POST   /v1/roles/revoke                               Y N N N N
DELETE /v1/subjects/{subject_id}                      Y Y N N N
GET    /v1/training/runs                              N N N Y N
POST   /v1/training/runs                              N N N Y N
GET    /v1/training/runs/{run_id}                     N N N Y N
POST   /v1/vault/deks/rotate                          Y N N N N
GET    /v1/vault/kek                                  Y N Y N N
POST   /v1/vault/kek/rotate                           Y N N N N
GET    /v1/vault/keys                                 Y N Y N N
GET    /v1/vault/rotations                            Y N Y N N
"""

# What any principal may do to its own account, whatever its roles (AuthorizeOwn): each only
# answers 401 without a credential.
OWN_ACCOUNT = {
    ("PUT", "/v1/me/password"),
    ("GET", "/v1/sessions"),
    ("DELETE", "/v1/sessions/{session_id}"),
}

PARAMS = {
    "name": "demo",
    "version": "1",
    "key_id": "00000000",
    "seq": "0",
    "audit_id": "1",
    "proposal_id": "1",
    "case_id": "1",
    "record_id": "rec_" + "0" * 32,
    "report_id": "r-1",
    "subject_id": "nobody",
    "run_id": "1",
    "dataset": "adult",
}
# Routes with side effects that an allowed call with an empty body could still trigger are
# sent a body that the route refuses after authorization (a 4xx other than 401/403).
SAFE_BODY: dict[str, object] = {"__invalid__": True}


def _spec() -> dict[tuple[str, str], dict[str, bool]]:
    spec = {}
    for line in MATRIX.strip().splitlines():
        method, path, *marks = line.split()
        spec[(method, path)] = {r: m == "Y" for r, m in zip(ROLES, marks, strict=True)}
    return spec


def test_matrix_covers_every_route(settings: Settings) -> None:
    app = create_app(settings)
    routes = {
        (m, p)
        for p, r in api_routes(app)
        # Console pages open with a person's session, never a key: tests/console checks them,
        # and that each uses a permission of the API route behind it.
        if p not in EXEMPT_PATHS and not p.startswith("/console/")
        for m in getattr(r, "methods", ())
    }
    assert routes == set(_spec()) | OWN_ACCOUNT


def test_every_role_against_every_route(common_server: SharedServer) -> None:
    if not common_server.settings.resolved_database_url.startswith("sqlite"):
        pytest.skip("authorization does not depend on the database backend")
    http, unique = common_server.http, common_server.unique
    factory = common_server.warden
    tokens = {
        role: factory.principal(unique(f"user-{role.replace('_', '-')}"), role) for role in ROLES
    }
    factory.policy_change([["g2", "model:demo", "group:default-models"]])
    nobody = factory.principal(unique("user-without-roles"))
    wrong = []
    for (method, path), expected in _spec().items():
        url = path.format(**PARAMS)
        for role, allowed in expected.items():
            kw = {"json": SAFE_BODY} if method in ("POST", "PUT") else {}
            r = http.request(method, url, headers=auth(tokens[role]), **kw)
            assert r.status_code < 500, (method, path, role, r.status_code, r.text[:300])
            got = r.status_code not in (401, 403)
            if got != allowed:
                wrong.append(f"{method} {path} as {role}: {r.status_code}")
        kw = {"json": SAFE_BODY} if method in ("POST", "PUT") else {}
        # Every route refuses a caller with no role (403) and one with no key (401).
        r = http.request(method, url, headers=auth(nobody), **kw)
        if r.status_code != 403:
            wrong.append(f"{method} {path} without a role: {r.status_code}")
        r = http.request(method, url, **kw)
        if r.status_code != 401:
            wrong.append(f"{method} {path} without a key: {r.status_code}")
    for method, path in OWN_ACCOUNT:
        url = path.format(session_id="1")
        kw = {"json": SAFE_BODY} if method in ("POST", "PUT") else {}
        r = http.request(method, url, headers=auth(nobody), **kw)
        if r.status_code in (401, 403) or r.status_code >= 500:
            wrong.append(f"{method} {path} on one's own account: {r.status_code}")
        r = http.request(method, url, **kw)
        if r.status_code != 401:
            wrong.append(f"{method} {path} without a key: {r.status_code}")
    assert not wrong, "\n".join(wrong)
