"""A wrong, unsafe or unreadable key file stops the service at start, never at request time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from governance.config import Settings
from governance.errors import ConfigurationError
from governance.runtime import Runtime
from governance.vault.providers import LocalKeyFileProvider
from tests.records.conftest import Setup


def _start(cfg: Settings) -> None:
    runtime = Runtime(cfg)
    runtime.engine.dispose()


def test_wrong_key_file_is_refused_at_start(
    served: Setup, settings: Settings, tmp_path: Path
) -> None:
    assert served.predict(subject_id="someone").status_code == 200
    other = tmp_path / "other-keys.json"
    LocalKeyFileProvider.create(other)
    with pytest.raises(ConfigurationError, match="do not open this database's data keys"):
        _start(settings.model_copy(update={"key_file": other}))
    _start(settings)  # the right file still starts


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda p: os.chmod(p, 0o644), "0644"),
        (lambda p: p.write_text("{not json"), "invalid"),
        (lambda p: p.unlink(), "cannot read key file"),
        (lambda p: (p.unlink(), p.mkdir()), "not a regular file"),
    ],
    ids=["group-readable", "garbage", "missing", "a-folder"],
)
def test_unsafe_or_unreadable_key_file_is_refused(
    settings: Settings, tmp_path: Path, mangle: Any, message: str
) -> None:
    path = tmp_path / "keys.json"
    LocalKeyFileProvider.create(path)
    mangle(path)
    with pytest.raises(ConfigurationError, match=message) as info:
        _start(settings.model_copy(update={"key_file": path}))
    assert "{not json" not in str(info.value)
