"""``/metrics`` and the JSON access log on a live ``warden serve``.

One server per backend for the module, logging JSON lines and keeping its metrics in
prometheus-client's multi-process files (``PROMETHEUS_MULTIPROC_DIR``), as a server with
several worker processes does. The scrape is parsed with ``prometheus_client.parser``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from governance.cli.server_process import ServerProcess
from governance.kit.http import client as http_client
from tests.conftest import (
    BACKENDS,
    LiveServer,
    WardenFactory,
    auth,
    fresh_database,
    make_settings,
    seed_admin,
    serve_toy,
)
from tests.factories import build_artifact, toy_record
from tests.privacy.conftest import write_synthetic
from tests.servers import SharedServer

PREDICT = "/v1/models/{name}/predict"


@dataclass
class Observed:
    server: LiveServer
    http: httpx.Client
    client: str  # may predict on the model
    stranger: str  # has no role
    monitor: str  # holds the monitoring role
    factory: WardenFactory
    model: str
    log: Path
    env: dict[str, str]  # the server's environment, for a second process beside it


@pytest.fixture(scope="module", params=BACKENDS)
def observed(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_template: str | None,
) -> Iterator[Observed]:
    folder = tmp_path_factory.mktemp("observed")
    multiproc = folder / "prometheus"
    multiproc.mkdir()
    with fresh_database(request.param, folder, sqlite_template, pg_template) as url:
        settings = make_settings(url, folder)
        admin = seed_admin(settings)
        # A small dataset for the privacy-budget gauges (registered by its test).
        (settings.data_dir / "datasets" / "syn").mkdir(parents=True)
        write_synthetic(settings.data_dir / "datasets" / "syn")
        server = LiveServer(settings, folder / "server.log")
        server.env.update(
            WARDEN_LOG_FORMAT="json",
            PROMETHEUS_MULTIPROC_DIR=str(multiproc),
            # A stopped audit writer is answered 503 this soon (the last test).
            WARDEN_AUDIT_WRITE_DEADLINE_MS="2000",
        )
        server.start()
        try:
            with http_client(base_url=server.url, timeout=30) as http:
                factory = WardenFactory(http, admin)
                model = SharedServer.unique("obs")

                def artifact(name: str, version: str = "1", **kw: Any) -> Path:
                    return build_artifact(folder / f"a-{name}-{version}", name=name, **kw)

                client, stranger = serve_toy(
                    factory, artifact, model=model, names=SharedServer.unique
                )
                monitor = factory.principal(
                    SharedServer.unique("prometheus"), "monitoring", kind="service"
                )
                yield Observed(
                    server,
                    http,
                    client,
                    stranger,
                    monitor,
                    factory,
                    model,
                    folder / "server.log",
                    dict(server.env),
                )
        finally:
            server.stop()


def scrape(o: Observed) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = o.http.get("/metrics", headers=auth(o.monitor))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def predict(o: Observed, token: str, i: int = 0, **extra: Any) -> httpx.Response:
    return o.http.post(
        PREDICT.format(name=o.model),
        json={"record": toy_record(i), **extra},
        headers=auth(token),
    )


def log_lines(o: Observed) -> list[dict[str, Any]]:
    lines = []
    for raw in o.log.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def access_line(o: Observed, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [
            line
            for line in log_lines(o)
            if line.get("logger") == "warden.access" and line.get("request_id") == request_id
        ]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id}:\n{o.server.log_tail()}")


def test_a_scrape_without_the_monitoring_role_is_refused(observed: Observed) -> None:
    assert observed.http.get("/metrics").status_code == 401
    r = observed.http.get("/metrics", headers=auth(observed.client))
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")


def test_request_counters_and_latencies_move_with_predictions(observed: Observed) -> None:
    o = observed
    before = scrape(o)
    for i in range(3):
        assert predict(o, o.client, i).status_code == 200
    assert predict(o, o.stranger).status_code == 403
    after = scrape(o)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"route": PREDICT, "method": "POST"}
    assert moved("warden_http_requests_total", status="200", decision="allow", **route) == 3
    assert moved("warden_http_requests_total", status="403", decision="deny", **route) == 1
    assert moved("warden_http_request_duration_seconds_count", **route) == 4
    assert moved("warden_http_request_duration_seconds_sum", **route) > 0
    # Each prediction was one forward pass of one row at least, and one durable audit write.
    assert moved("warden_inference_batch_rows_count", model=o.model) >= 1
    assert moved("warden_inference_batch_rows_sum", model=o.model) == 3
    assert moved("warden_audit_durable_write_seconds_count") >= 3
    assert moved("warden_audit_group_commit_items_sum") >= 3
    # The writer process answered every append: nothing waits.
    assert value(after, "warden_audit_appends_waiting") == 0
    # The policy in force, per process (pid-labelled; the journal writer enforces none: 0).
    versions = [v for (n, _), v in after.items() if n == "warden_policy_version"]
    assert versions and max(versions) >= 2  # the test's policy change made version 2 at least


def test_database_state_is_read_at_the_scrape(observed: Observed) -> None:
    o = observed
    r = predict(o, o.client, 0, subject_id=SharedServer.unique("subject"))
    assert r.status_code == 200
    # The newest checkpoint is signed within a second of the log growing (the test settings).
    key = ("warden_audit_checkpoint_age_seconds", ())
    deadline = time.monotonic() + 10
    samples = scrape(o)
    while key not in samples:
        assert time.monotonic() < deadline, "no checkpoint age after 10 s"
        time.sleep(0.2)
        samples = scrape(o)
    assert 0 <= samples[key] < 60
    assert value(samples, "warden_data_keys", state="active") >= 1
    # The model was promoted past the gate on an officer's override.
    gate = value(
        samples, "warden_fairness_gate_decisions_total", decision="allow", basis="override"
    )
    assert gate >= 1


def test_each_registered_dataset_has_its_privacy_budget(observed: Observed) -> None:
    o = observed
    engineer = o.factory.principal(SharedServer.unique("eng"), "ml_engineer")
    name = SharedServer.unique("syn")
    body = {"name": name, "schema_path": "syn/schema.yaml"}
    r = o.http.post("/v1/datasets", json=body, headers=auth(engineer))
    assert r.status_code == 201, r.text
    cap = r.json()["ledger"]["cap_epsilon"]
    samples = scrape(o)
    assert value(samples, "warden_privacy_budget_epsilon", dataset=name, state="spent") == 0
    assert value(samples, "warden_privacy_budget_epsilon", dataset=name, state="remaining") == cap


def test_no_label_carries_a_subject_id_or_a_raw_path(observed: Observed) -> None:
    o = observed
    subject = SharedServer.unique("private-subject")
    assert predict(o, o.client, 1, subject_id=subject).status_code == 200
    assert o.http.delete(f"/v1/subjects/{subject}", headers=auth(o.client)).status_code == 403
    text = o.http.get("/metrics", headers=auth(o.monitor)).text
    assert subject not in text
    assert o.client not in text
    assert "/v1/subjects/{subject_id}" in text


def test_the_access_log_is_json_with_request_principal_decision_and_latency(
    observed: Observed,
) -> None:
    o = observed
    subject = SharedServer.unique("logged-subject")
    allowed = predict(o, o.client, 2, subject_id=subject)
    assert allowed.status_code == 200
    line = access_line(o, allowed.headers["x-request-id"])
    assert line["route"] == PREDICT
    assert line["method"] == "POST"
    assert line["status"] == 200
    assert line["decision"] == "allow"
    assert line["principal"].startswith("app-")
    assert line["latency_ms"] > 0
    assert line["level"] == "info"

    denied = predict(o, o.stranger, 3)
    assert denied.status_code == 403
    line = access_line(o, denied.headers["x-request-id"])
    assert (line["status"], line["decision"]) == (403, "deny")
    assert line["principal"].startswith("nobody-")

    # Neither payloads nor subject ids nor keys are logged.
    log = o.log.read_text()
    assert subject not in log
    assert o.client not in log and o.stranger not in log
    assert json.dumps(toy_record(2)["age"]) not in {str(v) for v in line.values()}


def test_a_second_process_counts_into_the_same_metrics(observed: Observed, tmp_path: Path) -> None:
    # Two server processes on one database and one PROMETHEUS_MULTIPROC_DIR, as the workers of
    # one deployment: a scrape of either counts the requests both served.
    o = observed
    before = scrape(o)
    second = ServerProcess(o.env, tmp_path / "second.log")
    second.start()
    try:
        with http_client(base_url=second.url, timeout=30) as http:
            for i in range(2):
                r = http.post(
                    PREDICT.format(name=o.model),
                    json={"record": toy_record(i)},
                    headers=auth(o.client),
                )
                assert r.status_code == 200, r.text
    finally:
        second.stop()
    after = scrape(o)
    allowed = {"route": PREDICT, "status": "200", "decision": "allow"}
    assert (
        value(after, "warden_http_requests_total", **allowed)
        - value(before, "warden_http_requests_total", **allowed)
        == 2
    )


def test_a_503_is_logged_and_counted_as_an_error(observed: Observed) -> None:
    # Last in the module: it stops the audit writer, then waits for the server to recover.
    o = observed
    before = scrape(o)
    writer = o.server.writer_pid()
    os.kill(writer, signal.SIGSTOP)
    try:
        refused = predict(o, o.client, 4)
    finally:
        os.kill(writer, signal.SIGCONT)
    assert refused.status_code == 503, refused.text
    line = access_line(o, refused.headers["x-request-id"])
    assert (line["status"], line["decision"]) == (503, "error")
    assert line["route"] == PREDICT
    deadline = time.monotonic() + 15
    while predict(o, o.client, 5).status_code != 200:
        assert time.monotonic() < deadline, o.server.log_tail()
        time.sleep(0.2)
    after = scrape(o)
    errors = value(after, "warden_http_requests_total", route=PREDICT, decision="error")
    assert (
        errors - value(before, "warden_http_requests_total", route=PREDICT, decision="error") >= 1
    )
