"""Issue 25, item 14: answers that carry a key or a decrypted record are never stored by a cache,
no answer is sniffed into HTML or script, and no page loads or runs what it was not built with.

Each test is what a browser or a shared cache sees of a real ``warden serve`` answer.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from governance.kit.security_headers import STRICT_CSP, inline_script_hashes
from tests.conftest import auth
from tests.records.conftest import Setup, serve_toy
from tests.servers import SharedServer


@pytest.fixture(scope="module")
def served(shared_server: SharedServer) -> Setup:
    """``toy`` served once on the module's server (serve_toy's names are fixed)."""
    return serve_toy(shared_server.http, shared_server.admin, shared_server.artifact)


def _never_stored(r: httpx.Response) -> None:
    assert r.headers.get("x-content-type-options") == "nosniff", r.headers
    assert r.headers.get("cache-control") == "no-store", r.headers
    assert r.headers.get("content-security-policy") == STRICT_CSP, r.headers


def test_keys_codes_predictions_and_decrypted_records_are_never_stored(
    served: Setup, shared_server: SharedServer
) -> None:
    http, admin = shared_server.http, auth(shared_server.admin)
    svc, carol = shared_server.unique("svc"), shared_server.unique("carol")
    r = http.post("/v1/principals", json={"name": svc, "kind": "service"}, headers=admin)
    assert r.status_code == 201, r.text
    issued = http.post("/v1/keys", json={"principal": svc}, headers=admin)
    assert issued.status_code == 201 and issued.json()["token"], issued.text
    _never_stored(issued)
    # A person's key comes by enrolment: the code, then the key it is redeemed for.
    r = http.post("/v1/principals", json={"name": carol}, headers=admin)
    assert r.status_code == 201, r.text
    code = http.post(f"/v1/principals/{carol}/enrolment", json={}, headers=admin)
    assert code.status_code == 201 and code.json()["code"], code.text
    _never_stored(code)
    redeemed = http.post("/v1/enrol", json={"code": code.json()["code"]})
    assert redeemed.status_code == 201 and redeemed.json()["token"], redeemed.text
    _never_stored(redeemed)

    predicted = served.predict(subject_id="subject-1")  # the direct entry, past the stack
    assert predicted.status_code == 200, predicted.text
    _never_stored(predicted)
    opened = served.decrypt(predicted.json()["record_id"])
    assert opened.status_code == 200 and "request" in opened.json(), opened.text
    _never_stored(opened)
    refused = served.predict(record={"age": "old"})  # a 422 of the direct entry
    assert refused.status_code == 422, refused.text
    _never_stored(refused)


def test_error_answers_are_not_sniffed(shared_server: SharedServer) -> None:
    live_server, http, admin_token = shared_server.server, shared_server.http, shared_server.admin
    answers = {
        404: http.get("/v1/nothing-here", headers=auth(admin_token)),
        405: http.delete("/v1/principals", headers=auth(admin_token)),
        401: http.get("/v1/principals"),
        422: http.post("/v1/principals", json={"name": 5}, headers=auth(admin_token)),
        # The middleware's own problem documents: a body over the limit, a NUL in the query.
        413: http.post("/v1/principals", content=b"x" * 1_048_577, headers=auth(admin_token)),
    }
    nul = http.get("/v1/principals?name=%00", headers=auth(admin_token))
    for status, r in [*answers.items(), (422, nul)]:
        assert r.status_code == status, (status, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        _never_stored(r)
    outside = http.get("/nothing-here")  # a 404 outside /v1: nosniff and the strict policy
    assert outside.status_code == 404
    assert outside.headers["x-content-type-options"] == "nosniff"
    assert outside.headers["content-security-policy"] == STRICT_CSP

    # Not HTTP at all: answered by the server's protocol, before the app, as problem+json.
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().lower().split("\r\n")
    assert lines[0].startswith("http/1.1 400"), answer
    assert "x-content-type-options: nosniff" in lines
    assert "content-type: application/problem+json" in lines
    assert b'"status": 400' in body


def test_public_answers_and_the_documentation_pages(shared_server: SharedServer) -> None:
    http = shared_server.http
    for path in ("/healthz", "/readyz", "/openapi.json"):
        r = http.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"] == STRICT_CSP
        assert "cache-control" not in r.headers  # nothing secret: a probe or the public schema

    # The documentation pages run only their own scripts, all served by Warden itself.
    docs = http.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    policy = docs.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    scripts = directives["script-src"].split()
    # The page's one inline script runs by its hash (the policy was computed from the page
    # served); nothing else inline, nothing from another host.
    hashes = inline_script_hashes(docs.text)
    assert hashes and set(scripts) == {"'self'", *hashes}
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "https:" not in policy and "https://" not in docs.text

    redoc = http.get("/redoc")
    assert redoc.status_code == 200 and redoc.headers["content-type"].startswith("text/html")
    policy = redoc.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"  # its bundle, nothing inline
    assert directives["default-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert not inline_script_hashes(redoc.text)
    assert "https:" not in policy and "https://" not in redoc.text
    for r in (docs, redoc):
        assert r.headers["x-content-type-options"] == "nosniff"

    # What the pages load, from the package: scripts and styles with their own media types
    # (nosniff refuses a script served as anything else), and nothing but those files.
    for asset, media in (
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("redoc.standalone.js", "text/javascript"),
        ("favicon.png", "image/png"),
    ):
        r = http.get(f"/docs/assets/{asset}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media), asset
        assert f"/docs/assets/{asset}" in docs.text + redoc.text, asset
        assert r.headers["x-content-type-options"] == "nosniff"
    for other in ("../app.py", "core.py", "%2e%2e%2fcore.py"):
        assert http.get(f"/docs/assets/{other}").status_code == 404, other
