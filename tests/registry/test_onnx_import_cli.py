"""``warden models import``: the same checks and registration as the API, from files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from governance.cli.main import app
from governance.config import Settings
from governance.registry.importing import WORK_FOLDER
from tests.onnx_graphs import linear_graph, linear_schema

SCHEMA = linear_schema()


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("WARDEN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WARDEN_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("WARDEN_MODELS_DIR", str(settings.resolved_models_dir))
    return settings


def _import(tmp_path: Path, name: str, graph: bytes, filename: str = "model.onnx") -> Result:
    (tmp_path / filename).write_bytes(graph)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(SCHEMA))
    return CliRunner().invoke(
        app,
        [
            "models",
            "import",
            name,
            "--version",
            "1",
            "--onnx",
            str(tmp_path / filename),
            "--schema",
            str(tmp_path / "schema.yaml"),
        ],
    )


def test_import_registers_and_refusals_leave_nothing(cli_env: Settings, tmp_path: Path) -> None:
    result = _import(tmp_path, "scorer", linear_graph(3))
    assert result.exit_code == 0, result.output
    assert "imported scorer 1" in result.output
    listed = CliRunner().invoke(app, ["models", "list"])
    assert "scorer" in listed.output and "registered" in listed.output

    models = cli_env.resolved_models_dir
    for name, graph, filename, says in (
        ("pickled", pickle.dumps({"coef": [1.0]}), "model.pkl", "convert it to ONNX"),
        ("fixed", linear_graph(3, batch=8), "model.onnx", "fixed batch dimension"),
        ("custom", linear_graph(3, domain="com.example"), "model.onnx", "custom operator"),
    ):
        result = _import(tmp_path, name, graph, filename)
        assert result.exit_code != 0
        assert says in result.output
        assert not (models / name).exists()
    assert not any((models / WORK_FOLDER).iterdir())
