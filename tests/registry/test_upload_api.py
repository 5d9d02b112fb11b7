"""POST /v1/models against a real server: file names that are not plain names are refused."""

from __future__ import annotations

import base64

import httpx

from tests.conftest import ArtifactBuilder, LiveServer, WardenFactory, auth
from tests.factories import upload_body

NOT_PLAIN = [
    "",  # the artifact folder itself
    ".",
    "..",
    ".hidden",
    "a/b",
    "a\\b",
    "bell\x07",  # (NUL is refused before any route: tests/api/test_nul.py)
    "x" * 300,  # longer than a filesystem allows
    "new\nline",
    "manifest.json",
]


def test_a_file_name_that_is_not_a_plain_name_gets_422_and_registers_nothing(
    live_server: LiveServer, admin_token: str, make_artifact: ArtifactBuilder
) -> None:
    content = base64.b64encode(b"x").decode()
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        engineer = WardenFactory(http, admin_token).principal("eng", "ml_engineer")
        good = upload_body(make_artifact("toy", "1"))
        for name in NOT_PLAIN:
            files = {**good["files"], name: content}  # type: ignore[dict-item]
            r = http.post("/v1/models", json={**good, "files": files}, headers=auth(engineer))
            assert r.status_code == 422, (name, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "plain file name" in r.json()["detail"], (name, r.text)
        assert http.get("/v1/models", headers=auth(engineer)).json() == []
        # The same artifact with its own plain names still registers.
        assert http.post("/v1/models", json=good, headers=auth(engineer)).status_code == 201
    assert "unhandled" not in live_server.log_path.read_text()
