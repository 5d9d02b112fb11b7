"""A canary payload and a canary subject id appear nowhere in clear after a run.

Not in the database (the SQLite files byte for byte, and a dump of every table on either
database), not in a real server's log output, not in the log records of the in-process app.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, select

from governance.config import Settings
from governance.db import make_engine
from governance.kit.http import client as http_client
from tests.conftest import ArtifactBuilder, LiveServer, auth
from tests.records.conftest import Setup, serve_toy

CANARY_SUBJECT = "canary-subject-7f3a9c21"
# The toy model accepts only its schema's fields, so the payload canary is a distinctive number.
CANARY_AGE = 31.4159265358979
CANARIES = (CANARY_SUBJECT.encode(), repr(CANARY_AGE).encode())


def _canary_record() -> dict[str, Any]:
    return {"age": CANARY_AGE, "hours": 40, "sex": "Female", "job": "b"}


def _exercise(s: Setup) -> None:
    """Everything that touches a subject's data: store, list, read in clear, rotate, erase."""
    for _ in range(3):
        r = s.predict(subject_id=CANARY_SUBJECT, record=_canary_record())
        assert r.status_code == 200, r.text
    record_id = r.json()["record_id"]
    assert s.predict(record=_canary_record()).status_code == 200  # the caller's own key
    opened = s.decrypt(record_id, purpose="canary check: read back")
    assert opened.status_code == 200 and opened.json()["request"]["records"][0]["age"] == CANARY_AGE
    assert s.http.get("/v1/records", headers=auth(s.auditor)).status_code == 200
    reason = {"reason": "canary run"}
    assert (
        s.http.post("/v1/vault/kek/rotate", json=reason, headers=auth(s.admin)).status_code == 200
    )
    assert (
        s.http.post(
            "/v1/vault/deks/rotate",
            json={**reason, "subject_id": CANARY_SUBJECT},
            headers=auth(s.admin),
        ).status_code
        == 200
    )
    # A request that fails validation must not echo the payload into a log either.
    bad = s.predict(subject_id=CANARY_SUBJECT, record={**_canary_record(), "sex": "x"})
    assert bad.status_code == 422
    erased = s.http.delete(f"/v1/subjects/{CANARY_SUBJECT}", headers=auth(s.admin))
    assert erased.status_code == 200 and erased.json()["records_affected"] == 3
    assert s.decrypt(record_id).status_code == 410


def _dump(url: str) -> bytes:
    """Every value of every table, as bytes (works on SQLite and PostgreSQL alike)."""
    engine = make_engine(url)
    out: list[bytes] = []
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(select(table)):
                    for value in row:
                        if isinstance(value, bytes | bytearray | memoryview):
                            out.append(bytes(value))
                        else:
                            out.append(str(value).encode())
    finally:
        engine.dispose()
    return b"\n".join(out)


def _assert_clean(data: bytes, where: str) -> None:
    for canary in CANARIES:
        assert canary not in data, f"{canary!r} found in clear in {where}"


# A fresh server: it is stopped before its log and database are searched.
def test_canaries_stay_out_of_a_live_servers_database_and_logs(
    live_server: LiveServer, admin_token: str, make_artifact: ArtifactBuilder, settings: Settings
) -> None:
    with http_client(base_url=live_server.url, timeout=30) as http:
        _exercise(serve_toy(http, admin_token, make_artifact))
    live_server.stop()
    _assert_clean(live_server.log_path.read_bytes(), "the server's output")
    _assert_clean(_dump(settings.resolved_database_url), "a dump of the database")
    if settings.is_sqlite:
        path = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):
            _assert_clean(file.read_bytes(), str(file))


def test_canaries_stay_out_of_in_process_log_records(
    served: Setup, settings: Settings, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    _exercise(served)
    # The test's own HTTP client logs the URLs it calls; only the service's records count.
    text = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith(("httpx", "httpcore"))
    )
    _assert_clean(text.encode(), "the service's log records")
    _assert_clean(_dump(settings.resolved_database_url), "a dump of the database")
