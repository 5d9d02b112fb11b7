"""One privacy ledger per set of rows, whatever the names: copies, subsets, supersets, merges.

Through the real dataset and training services, on both databases.
"""

from __future__ import annotations

import gzip
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from governance.audit.models import AuditEntry
from governance.config import Settings
from governance.datasets.models import Dataset, Ledger, LedgerRowset
from governance.datasets.service import datasets
from governance.db import make_engine, make_sessionmaker
from governance.kit.context import cli_context
from governance.privacy.ledger import BudgetExceeded, NonPrivateRefused
from governance.privacy.models import TrainingRun
from governance.privacy.service import TrainingRequest, training
from tests.privacy.conftest import write_synthetic
from tests.privacy.ledger_support import FAST, with_policies

CTX = cli_context("engineer")


def write_copy(
    source: Path, folder: Path, *, keep: slice = slice(None), extra: list[str] | None = None
) -> Path:
    """The rows of ``source`` (or some), shuffled, columns reversed, gzipped, new schema name."""
    folder.mkdir(parents=True, exist_ok=True)
    header, *lines = (source / "synthetic.csv").read_text().splitlines()
    chosen = lines[keep] + (extra or [])
    random.Random(3).shuffle(chosen)
    cols = header.split(",")
    order = list(reversed(range(len(cols))))
    out = [",".join(cols[i] for i in order)]
    for line in chosen:
        cells = line.split(",")
        # 1.5000 as 1.5: another text for the same number
        out.append(",".join(str(float(cells[i])) if i < 2 else cells[i] for i in order))
    (folder / "copy.csv.gz").write_bytes(gzip.compress(("\r\n".join(out) + "\r\n").encode()))
    doc = yaml.safe_load((source / "schema.yaml").read_text())
    doc["split"]["file"]["path"] = "copy.csv.gz"
    doc["split"]["seed"] = 11
    (folder / "schema.yaml").write_text(yaml.safe_dump(doc))
    return folder / "schema.yaml"


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> Any:
    cfg = with_policies(settings, tmp_path)
    engine = make_engine(cfg.resolved_database_url)
    sessions = make_sessionmaker(engine)
    folder = tmp_path / "syn"
    folder.mkdir()
    schema = write_synthetic(folder)
    with sessions.begin() as session:
        datasets.register(session, CTX, name="synthetic", schema_path=schema)
    yield cfg, sessions, folder
    engine.dispose()


def _register(sessions: sessionmaker[Session], name: str, schema: Path, **kw: Any) -> Dataset:
    with sessions.begin() as session:
        row = datasets.register(session, CTX, name=name, schema_path=schema, **kw)
        session.expunge(row)
        return row


def _last_registration(sessions: sessionmaker[Session]) -> dict[str, Any]:
    with sessions() as session:
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.event_type == "datasets.register")
            .order_by(AuditEntry.seq.desc())
        ).first()
        assert entry is not None
        return json.loads(entry.canonical)


def _req(dataset: str, **kw: Any) -> TrainingRequest:
    return TrainingRequest(**{"dataset": dataset, "epsilon": 1.0, **FAST, **kw})


def _runs(sessions: sessionmaker[Session]) -> list[tuple[int, str]]:
    with sessions() as session:
        return [(r.id, r.status) for r in session.scalars(select(TrainingRun))]


def test_a_re_encoded_copy_joins_the_spent_ledger_and_cannot_pass_its_cap(
    env: Any, tmp_path: Path
) -> None:
    cfg, sessions, folder = env
    first = training.run(sessions, CTX, settings=cfg, request=_req("synthetic"))
    with sessions() as session:
        spent = training.ledger(session, cfg, "synthetic").epsilon_recomposed
    assert 0 < spent <= 1.0

    copy = _register(sessions, "copy", write_copy(folder, tmp_path / "copy"))
    original = _register(sessions, "synthetic", folder / "schema.yaml", replace=True)
    assert copy.ledger_id == original.ledger_id
    assert copy.content_hash != original.content_hash  # other bytes, same rows
    assert copy.row_fingerprint == original.row_fingerprint
    event = _last_registration(sessions)  # the replace of "synthetic" is the last one
    assert event["details"]["ledger"]["shared_with"] == ["copy"]

    with sessions() as session:
        summary = training.ledger(session, cfg, "copy")
        shown = training.dataset_ledger(session, cfg, datasets.get(session, "copy"))
    assert summary.epsilon_recomposed == pytest.approx(spent)
    assert summary.shared_with == ("synthetic",)
    assert [r.id for r in summary.runs] == [first.id]
    assert summary.run_datasets == {first.id: "synthetic"}
    assert shown.shared_with == ["synthetic"] and shown.epsilon_spent == pytest.approx(spent)

    before = _runs(sessions)
    with pytest.raises(BudgetExceeded) as refused:
        training.run(sessions, CTX, settings=cfg, request=_req("copy", seed=5))
    assert refused.value.status_code == 409
    assert refused.value.extra["ledger_shared_with"] == ["synthetic"]
    assert "shared with 'synthetic'" in refused.value.message
    assert _runs(sessions) == before


def test_the_registration_audit_entry_names_the_shared_ledger(env: Any, tmp_path: Path) -> None:
    _, sessions, folder = env
    copy = _register(sessions, "copy", write_copy(folder, tmp_path / "copy"))
    event = _last_registration(sessions)
    assert event["resource"] == {"dataset": "copy"}
    ledger = event["details"]["ledger"]
    assert ledger["id"] == copy.ledger_id
    assert ledger["opened"] is False
    assert ledger["shared_with"] == ["synthetic"]
    assert ledger["matched"] == ["synthetic"]
    assert event["details"]["row_fingerprint"] == copy.row_fingerprint


def test_a_copy_cannot_bring_a_looser_cap(env: Any, tmp_path: Path) -> None:
    # "open" has ε 5 and allows non-private training in privacy.yaml; "synthetic" has ε 1.2.
    cfg, sessions, folder = env
    schema = write_copy(folder, tmp_path / "open")
    doc = yaml.safe_load(schema.read_text())
    doc["privacy"]["allow_non_private"] = True
    schema.write_text(yaml.safe_dump(doc))
    _register(sessions, "open", schema)
    with sessions() as session:
        summary = training.ledger(session, cfg, "open")
    assert (summary.cap.epsilon, summary.cap.allow_non_private) == (1.2, False)
    with pytest.raises(NonPrivateRefused, match="shared with 'synthetic'"):
        training.run(sessions, CTX, settings=cfg, request=_req("open", epsilon=None))
    assert _runs(sessions) == []


def test_subsets_and_supersets_share_unrelated_rows_do_not(env: Any, tmp_path: Path) -> None:
    _, sessions, folder = env
    base = _register(sessions, "synthetic", folder / "schema.yaml", replace=True)
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    other = _register(sessions, "other", write_synthetic(other_folder, seed=9))
    other_lines = (other_folder / "synthetic.csv").read_text().splitlines()[1:300]
    subset = _register(sessions, "subset", write_copy(folder, tmp_path / "sub", keep=slice(400)))
    superset = _register(
        sessions, "superset", write_copy(folder, tmp_path / "sup", extra=other_lines[:100])
    )
    assert other.ledger_id != base.ledger_id
    assert subset.ledger_id == base.ledger_id
    assert superset.ledger_id == base.ledger_id
    assert subset.row_fingerprint != base.row_fingerprint


def test_the_union_of_two_spent_datasets_merges_their_ledgers(env: Any, tmp_path: Path) -> None:
    cfg, sessions, folder = env
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    other = _register(sessions, "other", write_synthetic(other_folder, seed=9))
    a = training.run(sessions, CTX, settings=cfg, request=_req("synthetic", epsilon=0.5))
    b = training.run(sessions, CTX, settings=cfg, request=_req("other", epsilon=0.5))

    others = (other_folder / "synthetic.csv").read_text().splitlines()[1:]
    union = _register(sessions, "union", write_copy(folder, tmp_path / "union", extra=others))
    event = _last_registration(sessions)
    assert event["details"]["ledger"]["merged_ledgers"] == [other.ledger_id]
    with sessions() as session:
        summary = training.ledger(session, cfg, "other")
        merged = session.get(Ledger, other.ledger_id)
        assert merged is not None and merged.merged_into == union.ledger_id
    assert summary.ledger_id == union.ledger_id
    assert summary.shared_with == ("synthetic", "union")
    assert sorted(r.id for r in summary.runs) == [a.id, b.id]


def test_re_registering_cannot_reset_the_budget(env: Any, tmp_path: Path) -> None:
    # Spend on a copy, replace the copy's data with other rows, register the rows afresh.
    cfg, sessions, folder = env
    copy = _register(sessions, "copy", write_copy(folder, tmp_path / "copy"))
    training.run(sessions, CTX, settings=cfg, request=_req("copy"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    replaced = _register(sessions, "copy", write_synthetic(elsewhere, seed=4), replace=True)
    assert replaced.ledger_id == copy.ledger_id  # a replaced dataset keeps its ledger
    again = _register(sessions, "again", write_copy(folder, tmp_path / "again"))
    assert again.ledger_id == copy.ledger_id
    with sessions() as session:
        assert training.ledger(session, cfg, "again").epsilon_recomposed > 0


def test_two_copies_registered_at_once_open_one_ledger(env: Any, tmp_path: Path) -> None:
    _, sessions, _ = env
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    write_synthetic(fresh, seed=5)
    schemas = {n: write_copy(fresh, tmp_path / n) for n in ("left", "right")}
    barrier = threading.Barrier(2)
    placed: dict[str, int] = {}
    failed: list[BaseException] = []

    def register(name: str) -> None:
        barrier.wait()
        try:
            placed[name] = _register(sessions, name, schemas[name]).ledger_id
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            failed.append(exc)

    threads = [threading.Thread(target=register, args=(n,)) for n in schemas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failed == []
    assert placed["left"] == placed["right"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerRowset)) == 2
