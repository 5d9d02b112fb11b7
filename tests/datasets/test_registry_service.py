"""The dataset registry: register, refuse conflicts and paths, auto-register Adult, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from governance.audit.models import AuditEntry
from governance.cli.main import app
from governance.config import Settings
from governance.datasets.errors import DatasetChanged, DatasetError
from governance.datasets.service import (
    DatasetExists,
    DatasetNotRegistered,
    DatasetPathRefused,
    datasets,
)
from governance.db import make_engine, make_sessionmaker
from governance.kit.context import cli_context
from tests.conftest import settings_env
from tests.privacy.conftest import write_synthetic

CTX = cli_context("engineer")


@pytest.fixture
def sessions(db_sessions: Any) -> Any:
    """The dataset service never commits: its tests run in a rolled-back transaction."""
    return db_sessions


@pytest.fixture
def committed(settings: Settings) -> Any:
    """Sessions that commit, for a test whose CLI opens its own engine on the same database."""
    engine = make_engine(settings.resolved_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_register_with_a_separate_data_file_and_load_checks_hashes(
    sessions: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    schema = write_synthetic(src)
    data_dir = tmp_path / "elsewhere"
    data_dir.mkdir()
    data = data_dir / "rows-2024.csv"
    data.write_bytes((src / "synthetic.csv").read_bytes())
    with sessions.begin() as session:
        row = datasets.register(session, CTX, name="people", schema_path=schema, data_path=data)
        assert (row.train_rows, row.test_rows) == (900, 300)
        assert json.loads(row.file_hashes) == {"rows-2024.csv": row.content_hash}
    with sessions() as session:
        row = datasets.get(session, "people")
        loaded = datasets.load(row)
        assert loaded.schema.name == "people" and loaded.content_hash == row.content_hash
        event = session.scalar(
            select(AuditEntry).where(AuditEntry.event_type == "datasets.register")
        )
        assert event is not None and "x1" not in event.canonical  # no data in the log
    data.write_text(data.read_text() + "1.0,1.0,red,a,pos\n")
    with pytest.raises(DatasetChanged):
        datasets.load(row)


def test_conflicts_paths_and_replace(sessions: Any, tmp_path: Path) -> None:
    schema = write_synthetic(tmp_path)
    with sessions.begin() as session:
        first = datasets.register(session, CTX, name="synthetic", schema_path=schema)
        old_hash = first.content_hash
    with sessions.begin() as session, pytest.raises(DatasetExists):
        datasets.register(session, CTX, name="synthetic", schema_path=schema)
    with sessions.begin() as session, pytest.raises(DatasetPathRefused):
        datasets.register(
            session, CTX, name="x", schema_path=schema, allowed_root=tmp_path / "datasets"
        )
    write_synthetic(tmp_path, seed=1)
    with sessions.begin() as session:
        again = datasets.register(session, CTX, name="synthetic", schema_path=schema, replace=True)
        assert again.id == first.id and again.content_hash != old_hash
    doc = yaml.safe_load(schema.read_text())
    doc["features"][0]["type"] = "colour"
    schema.write_text(yaml.safe_dump(doc))
    with sessions.begin() as session, pytest.raises(DatasetError) as bad:
        datasets.register(session, CTX, name="broken", schema_path=schema)
    assert bad.value.status_code == 422
    with sessions() as session, pytest.raises(DatasetNotRegistered):
        datasets.get(session, "broken")


def test_adult_registers_itself_on_first_use_and_via_the_cli(
    settings: Settings, committed: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with committed.begin() as session:
        adult = datasets.resolve(session, CTX, "adult")
        assert adult.bundled and adult.train_rows == 30162 and adult.test_rows == 15060
        assert datasets.resolve(session, CTX, "adult").id == adult.id
    for key, value in settings_env(settings).items():
        if key.startswith("WARDEN_"):
            monkeypatch.setenv(key, value)
    runner = CliRunner()
    schema = write_synthetic(tmp_path)
    r = runner.invoke(app, ["datasets", "register", "mine", "--schema", str(schema)])
    assert r.exit_code == 0, r.output
    assert "900 train / 300 test" in r.output
    listed = runner.invoke(app, ["datasets", "list"]).output
    assert "adult" in listed and "mine" in listed
    shown = json.loads(runner.invoke(app, ["datasets", "show", "mine", "--json"]).output)
    assert shown["schema_doc"]["name"] == "mine" and shown["privacy_unit"]
    # By default a table a person reads: one field a line, no JSON.
    table = runner.invoke(app, ["datasets", "show", "mine"])
    assert table.exit_code == 0 and not table.output.lstrip().startswith("{"), table.output
    lines = table.output.splitlines()
    assert any("field" in line and "value" in line for line in lines), table.output
    assert any("content hash" in line and shown["content_hash"] in line for line in lines)
    assert any("train rows" in line and "900" in line for line in lines)
    ledger = f"privacy ledger │ {shown['ledger']['id']}: ε spent 0 of"
    assert any(ledger in " ".join(line.split()) for line in lines), table.output
    registered = shown["registered_at"][:19].replace("T", " ")
    assert any("registered at" in line and registered in line for line in lines), table.output
    r = runner.invoke(app, ["datasets", "register", "mine", "--schema", str(schema)])
    assert r.exit_code == 1 and "is registered" in " ".join(r.output.split())
