"""Traces of a live server, captured with the OpenTelemetry SDK's in-memory exporter.

The server is uvicorn in a thread of the test process (the exporter's spans are read here),
serving the real app over a real socket. A prediction's request span has the child spans of
the predict path, named attributes, and nothing of the payload or the subject.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from governance.api.app import create_app
from governance.cli.server_process import free_port
from governance.config import Settings
from governance.kit import tracing
from governance.kit.http import client as http_client
from tests.conftest import WardenFactory, auth, serve_toy
from tests.factories import build_artifact, toy_record


@dataclass
class Traced:
    http: httpx.Client
    exporter: InMemorySpanExporter
    admin: str


PREDICT_CHILDREN = {
    "warden.authorize",
    "warden.infer",
    "warden.seal",
    "warden.seal.record",
    "warden.audit.write",
}


@pytest.fixture
def traced(settings: Settings, admin_token: str) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    app = create_app(settings)
    runtime = app.state.runtime
    provider = tracing.install(app, (runtime.engine, runtime.read_engine), exporter=exporter)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        with http_client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield Traced(http, exporter, admin_token)
    finally:
        server.should_exit = True
        thread.join(30)
        provider.shutdown()
        tracing.uninstall()


def test_a_prediction_has_the_child_spans_of_the_predict_path(
    traced: Traced, tmp_path: Path
) -> None:
    http, exporter = traced.http, traced.exporter
    factory = WardenFactory(http, traced.admin)

    def artifact(name: str, version: str = "1", **kw: Any) -> Path:
        return build_artifact(tmp_path / f"a-{name}", name=name, version=version, **kw)

    client, stranger = serve_toy(factory, artifact, model="traced")
    exporter.clear()
    subject = "subject-never-in-a-span-7f3a"
    # A value no port, id or timestamp in a span would hold by chance.
    record = {**toy_record(1), "hours": 37.8125}
    r = http.post(
        "/v1/models/traced/predict",
        json={"record": record, "subject_id": subject},
        headers=auth(client),
    )
    assert r.status_code == 200, r.text
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.parent is None and s.kind.name == "SERVER"]
    assert len(roots) == 1, [s.name for s in spans]
    root = roots[0]
    assert root.name == "POST /v1/models/{name}/predict"
    children = {
        s.name: s
        for s in spans
        if s.parent is not None and s.parent.span_id == root.context.span_id
    }
    assert set(children) >= PREDICT_CHILDREN, sorted(children)
    assert root.attributes["warden.decision"] == "allow"
    assert root.attributes["warden.model"] == "traced"
    assert root.attributes["warden.policy_version"] >= 2
    assert children["warden.authorize"].attributes["warden.object"] == "model:traced"
    assert children["warden.infer"].attributes["warden.model_version"] == "1"
    # The database statements are spans too, below the request.
    assert any(s.attributes.get("db.system") for s in spans)
    # Nothing of the payload, the subject or the key in any span.
    everything = " ".join(f"{s.name} {dict(s.attributes)}" for s in spans)
    assert subject not in everything
    assert client not in everything
    assert "37.8125" not in everything

    exporter.clear()
    r = http.post("/v1/models/traced/predict", json={"record": record}, headers=auth(stranger))
    assert r.status_code == 403
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.parent is None and s.kind.name == "SERVER")
    assert root.attributes["warden.decision"] == "deny"
    authorize = next(s for s in spans if s.name == "warden.authorize")
    assert authorize.attributes["warden.decision"] == "deny"
    assert not any(s.name == "warden.infer" for s in spans)


def test_a_raw_path_with_a_subject_id_is_written_as_its_template(traced: Traced) -> None:
    http, exporter = traced.http, traced.exporter
    r = http.delete("/v1/subjects/alice-private-id?x=alice-private-id")
    assert r.status_code == 401
    everything = " ".join(f"{s.name} {dict(s.attributes)}" for s in exporter.get_finished_spans())
    assert "alice-private-id" not in everything
    assert "/v1/subjects/{subject_id}" in everything
