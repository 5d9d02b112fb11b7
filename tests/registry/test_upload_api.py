"""POST /v1/models against a real server: file names that are not plain names are refused."""

from __future__ import annotations

import base64

from tests.conftest import auth
from tests.factories import upload_body
from tests.servers import SharedServer

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
    common_server: SharedServer,
) -> None:
    content = base64.b64encode(b"x").decode()
    live_server, http = common_server.server, common_server.http
    engineer = common_server.warden.principal(common_server.unique("eng"), "ml_engineer")
    good = upload_body(common_server.artifact(common_server.unique("toy"), "1"))
    before = http.get("/v1/models", headers=auth(engineer)).json()
    for name in NOT_PLAIN:
        files = {**good["files"], name: content}  # type: ignore[dict-item]
        r = http.post("/v1/models", json={**good, "files": files}, headers=auth(engineer))
        assert r.status_code == 422, (name, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "plain file name" in r.json()["detail"], (name, r.text)
    assert http.get("/v1/models", headers=auth(engineer)).json() == before
    # The same artifact with its own plain names still registers.
    assert http.post("/v1/models", json=good, headers=auth(engineer)).status_code == 201
    assert "unhandled" not in live_server.log_path.read_text()
