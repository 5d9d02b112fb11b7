"""A client generated from the live server's OpenAPI document calls Warden as a service would.

``openapi-python-client`` writes the client into a temporary folder from ``/openapi.json``; the
test imports it and, with a client service's API key, reads the model's input schema, predicts
with the example it was given, and is refused what a client may not do. The generator lives in
a virtual environment of its own (``.venv/clientgen``, see the Makefile): it pins older httpx
and typer releases than Warden's.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from tests.conftest import auth
from tests.records.conftest import Setup, serve_toy
from tests.servers import SharedServer

_GENERATOR = Path(
    os.environ.get(
        "WARDEN_CLIENT_GENERATOR",
        Path(sys.prefix) / "clientgen" / "bin" / "openapi-python-client",
    )
)
# The zip of an audit export is bytes to the client; no formatter runs on the output.
_CONFIG = {
    "content_type_overrides": {"application/zip": "application/octet-stream"},
    "post_hooks": [],
}


@pytest.fixture(scope="module")
def served(shared_server: SharedServer) -> Setup:
    """``toy`` served once on the module's server, a client service allowed to predict."""
    return serve_toy(shared_server.http, shared_server.admin, shared_server.artifact)


# Generated packages by document: both backends' servers serve the same one.
_packages: dict[bytes, Any] = {}


@pytest.fixture(scope="module")
def generated(shared_server: SharedServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The package ``openapi-python-client`` generates from the server's document."""
    if not _GENERATOR.exists():
        pytest.fail(f"openapi-python-client is not installed at {_GENERATOR} (make install)")
    document = shared_server.http.get("/openapi.json").content
    if document in _packages:
        return _packages[document]
    folder = tmp_path_factory.mktemp("client")
    (folder / "openapi.json").write_bytes(document)
    (folder / "config.json").write_text(json.dumps(_CONFIG))
    done = subprocess.run(
        [
            str(_GENERATOR),
            "generate",
            "--path",
            str(folder / "openapi.json"),
            "--config",
            str(folder / "config.json"),
            "--meta",
            "none",
            "--output-path",
            str(folder / "warden_client"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=folder,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output, output  # nothing of the document was left out
    sys.path.insert(0, str(folder))
    try:
        for name in [m for m in sys.modules if m.split(".")[0] == "warden_client"]:
            del sys.modules[name]  # a copy from another document
        _packages[document] = importlib.import_module("warden_client")
    finally:
        sys.path.remove(str(folder))
    return _packages[document]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"warden_client.{name}")


def test_a_client_reads_the_schema_and_predicts_with_its_example(
    generated: Any, served: Setup, shared_server: SharedServer
) -> None:
    get_model_schema = _module("api.predict.get_model_schema")
    predict = _module("api.predict.predict")
    models = _module("models")
    with generated.AuthenticatedClient(base_url=shared_server.url, token=served.client) as client:
        schema = get_model_schema.sync_detailed("toy", client=client)
        assert schema.status_code == 200, schema.content
        described = schema.parsed
        assert isinstance(described, models.ModelSchema)
        assert described.model == "toy" and described.model_version == "1"
        assert described.labels == ["no", "yes"]
        example = described.example.to_dict()
        record_schema = described.record_schema.to_dict()
        jsonschema.Draft202012Validator(record_schema).validate(example["record"])

        answer = predict.sync_detailed(
            "toy", client=client, body=models.PredictRequest.from_dict(example)
        )
        assert answer.status_code == 200, answer.content
        result = answer.parsed
        assert isinstance(result, models.PredictResponse)
        assert result.model == "toy" and result.audit_seq > 0
        assert result.predictions[0].label in ("no", "yes")


def test_a_client_is_refused_what_it_may_not_do(
    generated: Any, served: Setup, shared_server: SharedServer
) -> None:
    list_audit_entries = _module("api.audit.list_audit_entries")
    get_model = _module("api.models.get_model")
    models = _module("models")
    with generated.AuthenticatedClient(base_url=shared_server.url, token=served.client) as client:
        for refused in (
            list_audit_entries.sync_detailed(client=client),
            get_model.sync_detailed("toy", client=client),  # the registry's view stays staff's
        ):
            assert refused.status_code == 403, refused.content
            assert isinstance(refused.parsed, models.Problem)
            assert refused.parsed.status == 403
    with generated.AuthenticatedClient(base_url=shared_server.url, token="wk_not-a-key") as bad:
        unknown = list_audit_entries.sync_detailed(client=bad)
        assert unknown.status_code == 401 and isinstance(unknown.parsed, models.Problem)


def test_the_schema_tells_a_client_only_how_to_call(
    served: Setup, shared_server: SharedServer
) -> None:
    http = shared_server.http
    body = http.get("/v1/models/toy/schema", headers=auth(served.client))
    assert body.status_code == 200, body.text
    # The manifest's training section, its data statistics and hashes stay with the staff.
    text = body.text
    for secret in ("training", "mean", "std", "sha256", "registered_by", "weights"):
        assert secret not in text, secret
    # The predict permission decides, before the model's existence is told.
    assert http.get("/v1/models/toy/schema", headers=auth(served.auditor)).status_code == 403
    absent = shared_server.unique("absent")
    unknown = http.get(f"/v1/models/{absent}/schema", headers=auth(served.client))
    assert unknown.status_code == 403, unknown.text
    # Once the client may predict with it, it learns the model is not serving.
    served.factory.policy_change([["g2", f"model:{absent}", "group:default-models"]])
    missing = http.get(f"/v1/models/{absent}/schema", headers=auth(served.client))
    assert missing.status_code == 404, missing.text
    assert missing.json()["type"].endswith("/model-not-serving")
