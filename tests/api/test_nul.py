"""The NUL character (U+0000) is refused wherever a request carries it: path, query, body.

Also here: a body the server reads in several messages (written in pieces, or chunked with no
content-length) is judged whole, for NUL and for size, on FastAPI's generic routes, where any
other exception from reading the body became a 400.

No field takes it, and PostgreSQL cannot store it in text: it used to reach the driver there
(schemathesis found ``POST /v1/keys`` and ``GET /v1/records`` answering 500) and be stored on
SQLite. The refusal is a 422 problem+json, audited like any other refused call.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from governance.kit.middleware import holds_nul_escape
from tests.conftest import auth
from tests.servers import SharedServer

PROBLEM = "application/problem+json"


@given(st.text(), st.booleans())
def test_a_json_text_holds_the_escape_exactly_when_its_value_holds_nul(
    text: str, ascii_only: bool
) -> None:
    for value in (text, {"k": text}, [text, "\\u0000"]):
        encoded = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        assert holds_nul_escape(encoded) == ("\x00" in text)


def test_escaped_backslashes_before_the_escape_are_counted() -> None:
    assert holds_nul_escape(b'"\\u0000"')  # NUL
    assert not holds_nul_escape(b'"\\\\u0000"')  # a backslash, then the text u0000
    assert holds_nul_escape(b'"\\\\\\u0000"')  # a backslash, then NUL
    assert not holds_nul_escape(b'"u0000 \\\\"')


def _raw_post(url: str, path: str, token: str, parts: list[bytes]) -> tuple[int, bytes]:
    """POST a body written in separate pieces, so the server reads it in several messages."""
    host, port = url.removeprefix("http://").split(":")
    body_len = sum(len(p) for p in parts)
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/json\r\ncontent-length: {body_len}\r\n"
        "connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        for part in parts:
            sock.sendall(part)
            time.sleep(0.05)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_nul_anywhere_in_a_request_gets_422_and_nothing_is_written(
    common_server: SharedServer,
) -> None:
    live_server, http = common_server.server, common_server.http
    # The server is shared: its audit log is read from this test's start (a second early).
    started = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    ops = common_server.unique("ops")
    admin = common_server.warden.principal(ops, "admin", "auditor")
    h = auth(admin)
    refused = [
        http.post("/v1/keys", json={"principal": f"{ops}\x00"}, headers=h),
        http.post("/v1/principals", json={"name": "a\x00b", "kind": "user"}, headers=h),
        http.get("/v1/records", params={"model": "m\x00"}, headers=h),
        http.get("/v1/principals/x%00y", headers=h),
        http.post(
            "/v1/policy/changes",
            json={"add": [["g", "bo\x00b", "role:auditor"]], "remove": [], "reason": "r"},
            headers=h,
        ),
        http.post("/v1/models", json={"manifest": {}, "files": {"w\x00": ""}}, headers=h),
    ]
    for r in refused:
        assert r.status_code == 422, (r.request.url, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
        assert "NUL" in r.json()["detail"]
    # A body that arrives in pieces is judged whole: the escape straddles two of them.
    body = json.dumps({"name": "split\x00name", "kind": "user"}).encode()
    cut = body.index(b"\\u00") + 3
    status, answer = _raw_post(live_server.url, "/v1/principals", admin, [body[:cut], body[cut:]])
    assert status == 422, answer
    # Text that only looks like the escape is stored as sent.
    r = http.post("/v1/principals", json={"name": "lit\\u0000", "kind": "user"}, headers=h)
    assert r.status_code in (201, 422), r.text  # 422 only if the name rule refuses "\\"
    names = [p["name"] for p in http.get("/v1/principals", headers=h).json()]
    assert not any("\x00" in n for n in names), names
    # Each refusal is in the audit log.
    entries = http.get(
        "/v1/audit/entries", params={"limit": 1000, "since": started}, headers=h
    ).json()["entries"]
    nul_refusals = [e for e in entries if e["outcome"] == 422 and "NUL" in e["document"]["reason"]]
    assert len(nul_refusals) >= len(refused) + 1
    assert "unhandled" not in live_server.log_path.read_text()


def test_a_chunked_body_over_the_limit_gets_413(common_server: SharedServer) -> None:
    live_server, http = common_server.server, common_server.http
    limit = live_server.settings.max_body_bytes
    big = common_server.unique("big")
    filler = json.dumps({"name": big, "kind": "user", "pad": "x" * limit}).encode()

    def pieces() -> Iterator[bytes]:  # no length known: sent with chunked transfer encoding
        for i in range(0, len(filler), 65536):
            yield filler[i : i + 65536]

    admin = common_server.warden.principal(common_server.unique("ops"), "admin", "auditor")
    # A generic FastAPI route (tests/predict covers the lean predict route).
    r = http.post(
        "/v1/principals",
        content=pieces(),
        headers={**auth(admin), "content-type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    names = [p["name"] for p in http.get("/v1/principals", headers=auth(admin)).json()]
    assert big not in names
    assert "unhandled" not in live_server.log_path.read_text()
