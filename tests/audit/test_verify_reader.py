"""verify_log reads rows two ways: straight from the SQLite driver cursor, or through
SQLAlchemy Core with a server-side cursor (every other database). Both must reach the same
verdict on an honest log and name the same first bad position on every rewrite, whatever the
read batch size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from governance.audit import verify
from governance.audit.errors import AuditVerificationError
from governance.audit.verify import LogReport, verify_log
from tests.audit.conftest import FilledLog, empty_log, fill_53
from tests.audit.test_verify_log import CASES, drop_triggers
from tests.conftest import BACKENDS, fresh_database, make_settings


@pytest.fixture(scope="module", params=BACKENDS)
def filled(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_template: str | None,
) -> Iterator[FilledLog]:
    """One filled log per backend for the module: its tests read it, and each rewrite is
    rolled back, with the triggers it dropped, before its session closes."""
    folder = tmp_path_factory.mktemp("verify-reader")
    with fresh_database(request.param, folder, sqlite_template, pg_template) as url:
        for log in empty_log(make_settings(url, folder)):
            yield fill_53(log)


@pytest.fixture(params=["driver", "core"])
def reader_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "core":
        monkeypatch.setattr(verify, "_driver_rows", lambda _dialect: False)
    return str(request.param)


def _report(log: FilledLog, chunk: int) -> LogReport:
    with log.sessions() as session:
        return verify_log(session, log.vkey, chunk=chunk)


@pytest.mark.parametrize("chunk", [1, 7, 16, 64, 4096])
def test_honest_log_verifies_on_both_paths(filled: FilledLog, reader_path: str, chunk: int) -> None:
    report = _report(filled, chunk)
    assert (report.tree_size, report.entries_checked) == (filled.size, filled.size)
    assert report.latest_checkpoint == filled.size
    assert report.checkpoints_checked == len(filled.checkpoint_sizes)


def test_both_paths_agree_on_the_root(filled: FilledLog, monkeypatch: pytest.MonkeyPatch) -> None:
    driver = _report(filled, 16)
    monkeypatch.setattr(verify, "_driver_rows", lambda _dialect: False)
    core = _report(filled, 16)
    assert driver.root == core.root
    assert (driver.tree_size, driver.checkpoints_checked) == (
        core.tree_size,
        core.checkpoints_checked,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_rewrites_are_caught_on_both_paths(filled: FilledLog, reader_path: str, case: str) -> None:
    rewrite, bad_seq, bad_checkpoint = CASES[case]
    with filled.sessions() as session:
        drop_triggers(session)
        rewrite(session)
        with pytest.raises(AuditVerificationError) as caught:
            verify_log(session, filled.vkey, chunk=7)
        session.rollback()
    error = caught.value
    assert (error.first_bad_seq, error.checkpoint_size) == (bad_seq, bad_checkpoint), error.message


def test_time_column_of_a_later_entry_in_the_same_batch_is_checked(
    filled: FilledLog, reader_path: str
) -> None:
    """Entries of one batch share their stored time, and the verifier converts each distinct
    stored value once: a change to one entry in the middle of such a run must still count."""
    with filled.sessions() as session:
        drop_triggers(session)
        times = [
            row[0]
            for row in session.execute(
                text("SELECT time FROM audit_entries WHERE seq IN (10, 11, 12) ORDER BY seq")
            )
        ]
        assert times[0] == times[1] == times[2]
        session.execute(
            text("UPDATE audit_entries SET time = :t WHERE seq = 11"),
            {"t": "2001-01-01 00:00:00.000000"},
        )
        with pytest.raises(AuditVerificationError) as caught:
            verify_log(session, filled.vkey, chunk=16)
        session.rollback()
    assert caught.value.first_bad_seq == 11


def test_padded_entry_is_caught_at_its_seq(filled: FilledLog, reader_path: str) -> None:
    """Whitespace around an entry parses as JSON but is not the hashed entry."""
    with filled.sessions() as session:
        drop_triggers(session)
        session.execute(text("UPDATE audit_entries SET canonical = canonical || ' ' WHERE seq = 9"))
        with pytest.raises(AuditVerificationError) as caught:
            verify_log(session, filled.vkey, chunk=16)
        session.rollback()
    assert caught.value.first_bad_seq == 9
