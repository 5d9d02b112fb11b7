"""Public bounds are a contract: out-of-bounds values are refused or clipped, at registration
and at predict time, and every problem is reported at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from governance.audit.models import AuditEntry
from governance.cli.main import app
from governance.config import Settings
from governance.datasets.declaration import load_schema
from governance.datasets.encoding import manifest_sections
from governance.datasets.errors import DatasetError
from governance.datasets.service import datasets
from governance.db import make_engine, make_sessionmaker
from governance.kit.context import cli_context
from inference.architectures import build_model
from inference.artifact import save_artifact
from inference.errors import ManifestError
from inference.manifest import parse_manifest
from tests.conftest import WardenFactory, auth, settings_env
from tests.factories import TOY_FEATURES, toy_manifest, toy_record, upload_body
from tests.privacy.conftest import write_synthetic
from tests.servers import SharedServer

CTX = cli_context("engineer")
PROBLEM = "application/problem+json"


@pytest.fixture
def sessions(settings: Settings) -> Any:
    engine = make_engine(settings.resolved_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _with_bad_rows(folder: Path, *, clip_x2: bool = False) -> Path:
    """The synthetic dataset with 2 x1 values above 10, 3 x2 values below -5, 1 unknown colour."""
    schema = write_synthetic(folder)
    data = folder / "synthetic.csv"
    lines = data.read_text().splitlines()
    bad = ["11.5,0.0,red,a,pos", "12.0,1.0,blue,b,neg"]
    bad += ["5.0,-6.0,red,a,pos", "5.0,-9.5,green,b,neg", "5.0,-5.01,red,a,pos"]
    bad += ["5.0,0.0,purple,a,pos"]
    data.write_text("\n".join([*lines, *bad]) + "\n")
    if clip_x2:
        doc = yaml.safe_load(schema.read_text())
        doc["features"][1]["out_of_bounds"] = "clip"
        schema.write_text(yaml.safe_dump(doc))
    return schema


def test_out_of_bounds_values_are_refused_with_a_count_per_column_and_every_problem(
    sessions: Any, tmp_path: Path
) -> None:
    schema = _with_bad_rows(tmp_path)
    with sessions.begin() as session, pytest.raises(DatasetError) as refused:
        datasets.register(session, CTX, name="bad", schema_path=schema)
    assert refused.value.status_code == 422
    assert refused.value.problems == [
        "synthetic.csv: x1: 2 values are outside the public bounds [0, 10] (out_of_bounds: refuse)",
        "synthetic.csv: x2: 3 values are outside the public bounds [-5, 5] (out_of_bounds: refuse)",
        "synthetic.csv: colour: 1 values are not in the public category list",
    ]
    with sessions() as session:
        assert not datasets.list(session)


def test_a_column_declared_clip_is_clipped_and_the_count_recorded(
    sessions: Any, tmp_path: Path
) -> None:
    schema = _with_bad_rows(tmp_path, clip_x2=True)
    lines = (tmp_path / "synthetic.csv").read_text().splitlines()
    (tmp_path / "synthetic.csv").write_text(
        "\n".join(line for line in lines if "purple" not in line and not line.startswith("1"))
        + "\n"
    )
    with sessions.begin() as session:
        row = datasets.register(session, CTX, name="clipped", schema_path=schema)
        assert json.loads(row.values_clipped or "") == {"data": {"x2": 3}}
    with sessions() as session:
        row = datasets.get(session, "clipped")
        loaded = datasets.load(row)
        for split in (loaded.train, loaded.test):
            assert split.features["x2"].between(-5, 5).all()
        event = session.scalar(
            select(AuditEntry).where(AuditEntry.event_type == "datasets.register")
        )
        assert event is not None
        assert json.loads(event.canonical)["details"]["values_clipped"] == {"data": {"x2": 3}}
    # Models trained on it carry the bounds and the rule into their manifest.
    numeric = manifest_sections(loaded.schema)["input_schema"]["features"][:2]
    assert numeric == [
        {"name": "x1", "type": "numeric", "lo": 0.0, "hi": 10.0, "out_of_bounds": "refuse"},
        {"name": "x2", "type": "numeric", "lo": -5.0, "hi": 5.0, "out_of_bounds": "clip"},
    ]


def test_the_schema_rejects_a_bad_out_of_bounds_rule(tmp_path: Path) -> None:
    schema = write_synthetic(tmp_path)
    doc = yaml.safe_load(schema.read_text())
    doc["out_of_bounds"] = "ignore"
    doc["features"][0]["out_of_bounds"] = "wrap"
    schema.write_text(yaml.safe_dump(doc))
    with pytest.raises(DatasetError) as refused:
        load_schema(schema)
    assert refused.value.problems == [
        "schema.out_of_bounds: must be refuse or clip",
        "features[0] (x1).out_of_bounds: must be refuse or clip",
    ]


def test_the_cli_prints_every_problem_and_help_points_to_the_docs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in settings_env(settings).items():
        if key.startswith("WARDEN_"):
            monkeypatch.setenv(key, value)
    runner = CliRunner()
    helped = runner.invoke(app, ["datasets", "register", "--help"])
    assert helped.exit_code == 0 and "docs/datasets.md" in helped.output
    schema = _with_bad_rows(tmp_path)
    r = runner.invoke(app, ["datasets", "register", "bad", "--schema", str(schema)])
    assert r.exit_code == 1
    lines = r.output.splitlines()
    assert "the data does not match its schema (3 problems)" in lines[0]
    assert [line for line in lines if line.startswith("  - ")] == [
        "  - synthetic.csv: x1: 2 values are outside the public bounds [0, 10] "
        "(out_of_bounds: refuse)",
        "  - synthetic.csv: x2: 3 values are outside the public bounds [-5, 5] "
        "(out_of_bounds: refuse)",
        "  - synthetic.csv: colour: 1 values are not in the public category list",
    ]


def test_the_api_answers_every_problem_in_one_problem_document(
    warden: WardenFactory, settings: Settings
) -> None:
    folder = settings.data_dir / "datasets" / "bad"
    folder.mkdir(parents=True)
    _with_bad_rows(folder)
    engineer = warden.principal("eng", "ml_engineer")
    r = warden.client.post(
        "/v1/datasets",
        json={"name": "bad", "schema_path": "bad/schema.yaml"},
        headers=auth(engineer),
    )
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    problems = r.json()["problems"]
    assert len(problems) == 3 and "x1: 2 values are outside" in problems[0]


def _bounded_artifact(out: Path) -> Path:
    """The toy model with public bounds: age refuses values outside them, hours clips."""
    doc = toy_manifest("bounded", "1")
    features: list[dict[str, Any]] = [dict(f) for f in TOY_FEATURES]
    features[0].update(lo=17, hi=90, out_of_bounds="refuse")
    features[1].update(lo=1, hi=99, out_of_bounds="clip")
    doc["input_schema"] = {"features": features}
    torch.manual_seed(0)
    stub = parse_manifest({**doc, "weights": {"file": "w", "sha256": "0" * 64}})
    save_artifact(out, build_model(stub.architecture), doc)
    return out


def test_predict_refuses_a_value_outside_the_bounds_unless_the_schema_says_clip(
    common_server: SharedServer, tmp_path: Path
) -> None:
    http, factory, unique = common_server.http, common_server.warden, common_server.unique
    engineer = factory.principal(unique("eng"), "ml_engineer")
    body = upload_body(_bounded_artifact(tmp_path / "bounded"))
    assert http.post("/v1/models", json=body, headers=auth(engineer)).status_code == 201
    factory.override_gate("bounded", "1")
    promoted = http.post("/v1/models/bounded/versions/1/promote", headers=auth(factory.admin))
    assert promoted.status_code == 200, promoted.text
    factory.policy_change([["g2", "model:bounded", "group:default-models"]])
    client = factory.principal(unique("app"), "client", kind="service")

    def predict(**changes: Any) -> httpx.Response:
        record = {**toy_record(), **changes}
        return http.post(
            "/v1/models/bounded/predict", json={"record": record}, headers=auth(client)
        )

    assert predict(age=40).status_code == 200
    for age in (16.9, 1e7):
        r = predict(age=age)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        assert r.json()["field"] == "age" and "outside the model's bounds" in r.json()["detail"]
    # hours says clip: 1e7 is served as 99.
    clipped, at_bound = predict(hours=1e7), predict(hours=99)
    assert clipped.status_code == 200, clipped.text
    assert clipped.json()["predictions"] == at_bound.json()["predictions"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lo": 17}, "bounds need both lo and hi"),
        ({"lo": 90, "hi": 17}, "bounds need both lo and hi"),
        ({"lo": 17, "hi": 90, "out_of_bounds": "wrap"}, "out_of_bounds: refuse or clip"),
        ({"lo": "17", "hi": 90}, "expected a finite number"),
    ],
)
def test_a_manifest_with_malformed_bounds_does_not_load(
    change: dict[str, Any], message: str
) -> None:
    doc = toy_manifest("bounded", "1")
    features: list[dict[str, Any]] = [dict(f) for f in TOY_FEATURES]
    features[0].update(change)
    doc["input_schema"] = {"features": features}
    with pytest.raises(ManifestError, match=message):
        parse_manifest({**doc, "weights": {"file": "w", "sha256": "0" * 64}})
