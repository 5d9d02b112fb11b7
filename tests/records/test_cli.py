"""``warden records ...`` and ``warden vault ...`` against a real database and key file."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from governance.cli.main import app
from governance.config import Settings
from governance.kit.context import local_operator
from tests.records.conftest import Setup


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WARDEN_DATABASE_URL", settings.resolved_database_url)


def _run(*args: str, stdin: str | None = None) -> Any:
    result = CliRunner().invoke(app, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result


def test_operator_erases_rotates_purges_and_lists(served: Setup, cli_env: None) -> None:
    record_id = served.predict(subject_id="cli-subject").json()["record_id"]
    served.predict(subject_id="other")

    out = _run("vault", "rotate-kek", "--reason", "yearly rotation").output
    assert "kek-1 -> kek-2: rewrapped 2 data keys" in out
    assert "kek-2: 2 live data keys" in _run("vault", "kek").output
    # The old KEK can go once nothing uses it; the server reloads the file when it needs to.
    assert "retired kek-1" in _run("vault", "retire-kek", "kek-1").output
    assert served.decrypt(record_id).status_code == 200

    assert (
        "rotated 1 data keys"
        in _run(
            "vault", "rotate-deks", "--reason", "suspected leak", "--subject-id", "other"
        ).output
    )
    assert "dek" in _run("vault", "rotations").output
    assert "decrypt_only" in _run("vault", "keys").output

    # The subject id comes on standard input, out of the process list and shell history.
    receipt = json.loads(_run("records", "erase", "-", stdin="cli-subject\n").output)
    assert receipt["records_affected"] == 1 and receipt["erased_by"] == local_operator()
    assert receipt["key_bytes"]["status"] in ("done", "pending", "residual")
    assert receipt["exposure_ends_by"] is not None and receipt["residual_exposure"]
    assert served.decrypt(record_id).status_code == 410
    assert receipt["receipt_id"] in _run("records", "erasures").output
    assert "destroyed" in _run("records", "list").output

    assert "total would delete 0" in _run("records", "purge", "--dry-run").output
    assert "kept at least 183 days" in _run("records", "purge").output


def test_retiring_a_kek_still_in_use_is_refused(served: Setup, cli_env: None) -> None:
    served.predict(subject_id="x")
    result = CliRunner().invoke(app, ["vault", "retire-kek", "kek-1"])
    assert result.exit_code == 1 and "still wrapped by kek-1" in result.output


def test_rotate_due_rotates_and_retires_only_a_kek_past_its_period(
    served: Setup, cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_id = served.predict(subject_id="cron").json()["record_id"]
    assert "is not due" in _run("vault", "rotate-due").output
    # A period of a second: the KEK made when the test began is past it, or soon will be.
    monkeypatch.setenv("WARDEN_KEK_ROTATION_DAYS", str(1 / 86_400))
    deadline = time.monotonic() + 10
    while "is not due" in (out := _run("vault", "rotate-due").output):
        assert time.monotonic() < deadline, out
        time.sleep(0.05)
    assert "kek-1 -> kek-2: rewrapped 1 data keys; available now kek-2" in out
    assert served.decrypt(record_id).status_code == 200
