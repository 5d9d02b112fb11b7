"""The predict path end to end, with every kind of bad input."""

from __future__ import annotations

import json
import socket
import time

import httpx

from governance.predict.schemas import PredictResponse
from tests.conftest import auth
from tests.factories import toy_record
from tests.predict.conftest import Served

PROBLEM = "application/problem+json"


def _post(
    s: Served, body: object, token: str | None = None, model: str = "toy", **kw: object
) -> httpx.Response:
    headers = auth(token or s.client)
    if isinstance(body, bytes | str):
        headers["content-type"] = "application/json"
        return s.http.post(f"/v1/models/{model}/predict", content=body, headers=headers)
    return s.http.post(f"/v1/models/{model}/predict", json=body, headers=headers)


def test_single_and_batch(served: Served) -> None:
    r = _post(served, {"record": toy_record(1)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "toy" and body["model_version"] == "1"
    assert body["predictions"][0]["label"] in ("no", "yes")
    assert abs(sum(body["predictions"][0]["probabilities"].values()) - 1) < 1e-5
    assert isinstance(body["audit_seq"], int) and body["request_id"]
    assert r.headers["x-request-id"] == body["request_id"]
    # Assembled without validation on the hot path: it must still be what the schema says.
    assert PredictResponse.model_validate_json(r.content).model_dump() == body
    assert r.headers["content-type"] == "application/json"

    r = _post(served, {"records": [toy_record(i) for i in range(5)], "subject_id": "subj-9"})
    assert r.status_code == 200, r.text
    assert len(PredictResponse.model_validate_json(r.content).predictions) == 5
    assert isinstance(r.json()["record_id"], str)


def test_denied_and_unknown(served: Served) -> None:
    r = _post(served, {"record": toy_record()}, token=served.stranger)
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    # A caller who may not use a model cannot learn whether it exists.
    assert (
        _post(served, {"record": toy_record()}, token=served.stranger, model="ghost").status_code
        == 403
    )
    served.factory.policy_change([["g2", "model:ghost", "group:default-models"]])
    r = _post(served, {"record": toy_record()}, model="ghost")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def test_bad_input(served: Served) -> None:
    cases = {
        "malformed json": (b'{"record": {', 422),
        "not an object": (b"[1, 2]", 422),
        "both record and records": ({"record": toy_record(), "records": [toy_record()]}, 422),
        "empty batch": ({"records": []}, 422),
        "unknown top-level field": ({"record": toy_record(), "extra": 1}, 422),
    }
    for name, (body, status) in cases.items():
        r = _post(served, body)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert r.headers["content-type"] == PROBLEM, name

    def bad_field(record: dict, field: str, index: int = 0) -> None:  # type: ignore[type-arg]
        rows = [toy_record(), toy_record()]
        rows[index] = record
        r = _post(served, {"records": rows})
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["record"] == index and problem["field"] == field, problem

    bad_field({**toy_record(), "age": "forty"}, "age", 1)
    bad_field({**toy_record(), "age": True}, "age")
    bad_field({**toy_record(), "sex": "Other"}, "sex")
    bad_field({**toy_record(), "job": 3}, "job", 1)
    missing = toy_record()
    del missing["hours"]
    bad_field(missing, "hours")
    bad_field({**toy_record(), "ssn": "x"}, "ssn")


def test_limits(served: Served) -> None:
    r = _post(served, {"records": [toy_record(i) for i in range(1025)]})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    huge = b'{"record": {"age": 1, "pad": "' + b"x" * 1_100_000 + b'"}}'
    r = _post(served, huge)
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    # The service is still healthy and answers correctly after the refusals.
    assert _post(served, {"record": toy_record()}).status_code == 200


def test_body_framing(served: Served) -> None:
    """What FastAPI's generic handler refused, the lean route refuses the same way."""
    url = "/v1/models/toy/predict"
    good = b'{"record": {"age": 30, "hours": 40, "sex": "Male", "job": "a"}}'
    cases = {
        "no body": (b"", "application/json"),
        "text/plain": (good, "text/plain"),
        "no content type": (good, None),
        "form": (b"record=1", "application/x-www-form-urlencoded"),
        "json with a bad byte": (b'{"record": \xff}', "application/json"),
        "subject id not a string": (b'{"record": {}, "subject_id": 5}', "application/json"),
        "records not a list": (b'{"records": {"age": 1}}', "application/json"),
    }
    for name, (body, content_type) in cases.items():
        headers = auth(served.client)
        if content_type is not None:
            headers["content-type"] = content_type
        r = served.http.post(url, content=body, headers=headers)
        assert r.status_code == 422, (name, r.status_code, r.text)
        problem = r.json()
        assert r.headers["content-type"] == PROBLEM and problem["status"] == 422, name
        assert problem["errors"][0]["location"][0] == "body", (name, problem)
    # A JSON media type with parameters or a +json suffix is JSON.
    for content_type in ("application/json; charset=utf-8", "application/vnd.warden+json"):
        headers = {**auth(served.client), "content-type": content_type}
        r = served.http.post(url, content=good, headers=headers)
        assert r.status_code == 200, (content_type, r.text)


def test_chunked_bodies_are_judged_whole(served: Served) -> None:
    """With no content-length the body is read in pieces: over the limit is still a 413, and a
    NUL escape is still refused; nothing is predicted or stored for either."""
    url = "/v1/models/toy/predict"
    good = {"record": {"age": 30, "hours": 40, "sex": "Male", "job": "a"}}
    big = json.dumps({**good, "pad": "x" * served.shared.settings.max_body_bytes}).encode()
    nul = json.dumps({**good, "subject_id": "s\x00"}).encode()
    headers = {**auth(served.client), "content-type": "application/json"}
    for body, status in ((big, 413), (nul, 422)):
        pieces = (body[i : i + 4096] for i in range(0, len(body), 4096))
        r = served.http.post(url, content=pieces, headers=headers)
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == PROBLEM
    r = served.http.post(url, json=good, headers=auth(served.client))
    assert r.status_code == 200 and r.json()["audit_seq"] >= 1


def test_guard_runs_before_the_body_is_read(served: Served) -> None:
    """A caller without a key or the right learns nothing about how their body was judged."""
    r = served.http.post("/v1/models/toy/predict", content=b'{"record": {')
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
    r = _post(served, b'{"record": {', token=served.stranger)
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM


def test_wrong_method(served: Served) -> None:
    """Only POST predicts: any other method gets a 405 problem with the Allow header."""
    for method in ("GET", "PUT", "DELETE"):
        r = served.http.request(method, "/v1/models/toy/predict", headers=auth(served.client))
        assert r.status_code == 405, (method, r.text)
        assert r.headers["allow"] == "POST"
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["status"] == 405 and r.headers["x-request-id"]
    assert _post(served, {"record": toy_record(2)}).status_code == 200


def test_a_client_gone_mid_body_is_audited_not_logged_as_a_bug(served: Served) -> None:
    """The body never completes: the call gets FastAPI's 400 for an unreadable body (in the
    audit log, since nobody is left to receive it), not a 500 and a traceback."""
    url = httpx.URL(served.url)
    # A client of its own: the server is shared, its audited call is told apart by the actor.
    name = served.shared.unique("app")
    client = served.factory.principal(name, "client", kind="service")
    request = (
        "POST /v1/models/toy/predict HTTP/1.1\r\nHost: warden\r\n"
        f"Authorization: Bearer {client}\r\nContent-Type: application/json\r\n"
        'Content-Length: 500\r\n\r\n{"record": '
    )
    with socket.create_connection((url.host, url.port)) as raw:
        raw.sendall(request.encode())
        time.sleep(0.3)  # the guard has run and the server waits for the rest
    auditor = served.factory.principal(served.shared.unique("aud"), "auditor")
    deadline = time.monotonic() + 10
    while True:
        r = served.http.get(
            "/v1/audit/entries", params={"limit": 1000, "actor": name}, headers=auth(auditor)
        )
        gone = [
            e["document"]
            for e in r.json()["entries"]
            if e["document"]["action"] == "POST /v1/models/{name}/predict"
            and e["document"]["outcome"] == 400
            and e["document"]["actor"]["name"] == name
        ]
        if gone or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(gone) == 1, gone
    assert gone[0]["actor"]["name"] == name and gone[0]["decision"] == "allow"
    log = served.shared.server.log_path.read_text()
    assert "unhandled" not in log and "Traceback" not in log
