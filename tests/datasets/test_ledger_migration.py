"""Migration 0008: ledgers of datasets registered before it, and their later backfill.

Datasets registered under 0005 had a ledger per name. The migration groups them by content
hash (the same bytes were always the same rows); the next registration fingerprints their rows
from the files and places them like a new registration, so a re-encoded copy of an old dataset
joins its ledger. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from governance.audit.models import AuditEntry
from governance.config import Settings
from governance.datasets import load_dataset, parse_schema
from governance.datasets.models import Dataset
from governance.datasets.service import datasets
from governance.db import make_engine, make_sessionmaker
from governance.db.migrate import upgrade
from governance.kit.context import cli_context
from governance.privacy.service import training
from tests.conftest import BACKENDS, _pg_exec, _pg_url
from tests.privacy.conftest import write_synthetic
from tests.privacy.ledger_support import with_policies

CTX = cli_context("operator")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, so that the test chooses where the migrations stop."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"warden_m_{uuid.uuid4().hex[:12]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    yield _pg_url(name)
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dataset_row(name: str, schema_path: Path | None, content_hash: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": name,
        "content_hash": content_hash,
        "file_hashes": "{}",
        "schema": "{}",
        "base_dir": "/nowhere",
        "privacy_unit": "one row = one person",
        "source": "{}",
        "bundled": False,
        "train_rows": 1,
        "test_rows": 1,
        "registered_by": "operator",
        "registered_at": NOW,
        "updated_at": NOW,
    }
    if schema_path is not None:
        doc = yaml.safe_load(schema_path.read_text())
        loaded = load_dataset(parse_schema(doc, base_dir=schema_path.parent))
        row.update(
            content_hash=loaded.content_hash,
            file_hashes=json.dumps(loaded.file_hashes, sort_keys=True),
            schema=json.dumps(doc, sort_keys=True),
            base_dir=str(schema_path.parent),
            train_rows=len(loaded.train),
            test_rows=len(loaded.test),
        )
    return row


def _run_row(dataset_id: int, content_hash: str) -> dict[str, Any]:
    mech = {"noise_multiplier": 2.0, "sample_rate": 0.25, "steps": 8}
    return {
        "dataset_id": dataset_id,
        "dataset_hash": content_hash,
        "status": "completed",
        "private": True,
        "target_epsilon": 1.0,
        "delta": 1e-4,
        **{f"planned_{k}": v for k, v in mech.items()},
        **mech,
        "epsilon": 1.0,
        "model_kind": "logreg",
        "epochs": 2,
        "batch_size": 300,
        "seed": 0,
        "model_name": "m",
        "model_version": f"v{dataset_id}",
        "registered": False,
        "started_by": "operator",
        "started_at": NOW,
    }


def test_old_datasets_keep_their_runs_and_their_copies_join_them(
    empty_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "syn"
    folder.mkdir()
    schema = write_synthetic(folder)
    engine = make_engine(empty_url)
    try:
        upgrade(engine, "0005")
        meta = sa.MetaData()
        meta.reflect(engine, only=["datasets", "privacy_runs"])
        table, runs = meta.tables["datasets"], meta.tables["privacy_runs"]
        with engine.begin() as conn:
            old = _dataset_row("old", schema, "")
            ids = {}
            for row in (old, _dataset_row("old-twin", None, old["content_hash"])):
                ids[row["name"]] = conn.execute(
                    table.insert().values(**row).returning(table.c.id)
                ).scalar_one()
            ids["gone"] = conn.execute(
                table.insert().values(**_dataset_row("gone", None, "f" * 64)).returning(table.c.id)
            ).scalar_one()
            for name in ("old", "old-twin"):
                conn.execute(runs.insert().values(**_run_row(ids[name], old["content_hash"])))

        upgrade(engine, "heads")
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            rows = {d.name: d for d in session.scalars(sa.select(Dataset))}
            # The same bytes share one ledger; other bytes get their own.
            assert rows["old"].ledger_id == rows["old-twin"].ledger_id != rows["gone"].ledger_id
            assert all(d.row_fingerprint is None for d in rows.values())

        # A re-encoded copy of "old": gzipped, rows in reverse order.
        copy = tmp_path / "copy"
        copy.mkdir()
        header, *lines = (folder / "synthetic.csv").read_text().splitlines()
        text = "\n".join([header, *reversed(lines)]) + "\n"
        (copy / "rows.csv.gz").write_bytes(gzip.compress(text.encode()))
        doc = yaml.safe_load(schema.read_text())
        doc["split"]["file"]["path"] = "rows.csv.gz"
        (copy / "schema.yaml").write_text(yaml.safe_dump(doc))
        with sessions.begin() as session:
            row = datasets.register(session, CTX, name="copy", schema_path=copy / "schema.yaml")
            assert row.ledger_id == rows["old"].ledger_id
        cfg = with_policies(
            Settings(environment="test", data_dir=tmp_path / "data", database_url=empty_url),
            tmp_path,
        )
        with sessions() as session:
            fresh = {d.name: d for d in session.scalars(sa.select(Dataset))}
            assert fresh["old"].row_fingerprint == fresh["copy"].row_fingerprint
            assert fresh["gone"].row_fingerprint is None  # no files there to read
            summary = training.ledger(session, cfg, "copy")
            entry = session.scalars(
                sa.select(AuditEntry)
                .where(AuditEntry.event_type == "datasets.register")
                .order_by(AuditEntry.seq.desc())
            ).first()
            assert entry is not None
            event = json.loads(entry.canonical)
        assert summary.shared_with == ("old", "old-twin")
        assert len(summary.runs) == 2
        # No files to read for these two: "old-twin" stays in its ledger by its content hash.
        assert event["details"]["ledger"]["unverified_datasets"] == ["old-twin", "gone"]
    finally:
        engine.dispose()
