"""Unsafe configurations are refused at start with a clear message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from governance.config import Settings, shipped_dir
from governance.errors import ConfigurationError
from governance.runtime import Runtime


def test_key_file_readable_by_others_is_refused(settings: Settings) -> None:
    os.chmod(settings.resolved_key_file, 0o644)
    with pytest.raises(ConfigurationError, match=r"chmod 600|0o644|mode"):
        Runtime(settings)


def test_missing_key_file_is_refused(settings: Settings) -> None:
    settings.resolved_key_file.unlink()
    with pytest.raises(ConfigurationError):
        Runtime(settings)


def test_garbage_key_file_is_refused(settings: Settings) -> None:
    settings.resolved_key_file.write_text("not json")
    os.chmod(settings.resolved_key_file, 0o600)
    with pytest.raises(ConfigurationError):
        Runtime(settings)


def test_signing_key_with_loose_mode_is_refused(settings: Settings, admin_token: str) -> None:
    os.chmod(settings.resolved_signing_key_file, 0o640)
    runtime = Runtime(settings)
    with pytest.raises(ConfigurationError, match="signing key"):
        runtime.start()
    runtime.engine.dispose()


def test_unmigrated_database_is_refused(tmp_path: Path, settings: Settings) -> None:
    cfg = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'empty.db'}"})
    runtime = Runtime(cfg)
    with pytest.raises(ConfigurationError, match="warden init"):
        runtime.start()
    runtime.engine.dispose()


def test_default_database_is_sqlite_under_var() -> None:
    cfg = Settings(_env_file=None)  # type: ignore[call-arg]
    assert cfg.resolved_database_url == "sqlite:///var/warden.db"


def test_invalid_settings_never_echo_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from governance.config import load_settings

    monkeypatch.setenv("WARDEN_DATABASE_URL", "mysql://user:hunter2-secret@db/warden")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert "WARDEN_DATABASE_URL" in refused.value.message
    assert "hunter2" not in refused.value.message
    assert "hunter2" not in repr(refused.value)


def test_key_file_and_signing_key_must_differ(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="different files"):
        Settings(key_file=tmp_path / "k", signing_key_file=tmp_path / "k")


@pytest.mark.parametrize(("setting", "expected"), [("auto", "loop"), ("thread", "thread")])
def test_batch_execution_reaches_the_model_host(
    settings: Settings, admin_token: str, setting: str, expected: str
) -> None:
    # "auto" on the CPU runs forward passes on the event loop; "thread" keeps a worker thread.
    runtime = Runtime(settings.model_copy(update={"batch_execution": setting}))
    assert runtime.host.execution == expected
    runtime.engine.dispose()


def test_unknown_batch_execution_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="batch_execution"):
        Settings(batch_execution="gpu")  # type: ignore[arg-type]


def test_policies_are_the_shipped_ones_unless_warden_policies_dir_names_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WARDEN_POLICIES_DIR", raising=False)
    assert Settings().policies_dir == shipped_dir("policies")
    assert (shipped_dir("policies") / "model.conf").is_file()
    assert (shipped_dir("migrations") / "env.py").is_file()
    monkeypatch.setenv("WARDEN_POLICIES_DIR", str(tmp_path))
    assert Settings().policies_dir == tmp_path
