"""``policies/default_policy.yaml`` is configuration: a broken file stops the start, and no
request ever meets it (it answered 500, or a 422 blaming the caller, at the first policy route)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from governance.bootstrap import initialize
from governance.config import REPO_ROOT, Settings
from governance.errors import ConfigurationError
from governance.policy.errors import PolicyFileError
from governance.policy.service import default_policy
from governance.runtime import Runtime

SHIPPED = (REPO_ROOT / "policies" / "default_policy.yaml").read_text()


def _policies(tmp_path: Path, body: str | bytes | None) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", target)
    path = target / "default_policy.yaml"
    if body is None:
        path.unlink()
    elif isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body)
    return target


BROKEN = [
    (None, "cannot read"),
    (": : :\n", "is not valid YAML"),
    (b"roles: {admin: \xff}\n", "is not UTF-8 text"),
    ("- a list\n", "expected a mapping"),
    (
        SHIPPED.replace("    api:principals: [read, write]", "    api:principals: [read, fly]"),
        "fly",
    ),
]


@pytest.mark.parametrize(("body", "problem"), BROKEN)
def test_a_broken_file_is_a_policy_file_error(
    tmp_path: Path, body: str | bytes | None, problem: str
) -> None:
    with pytest.raises(PolicyFileError, match=problem) as caught:
        default_policy(_policies(tmp_path, body))
    assert isinstance(caught.value, ConfigurationError)


@pytest.mark.parametrize(("body", "problem"), BROKEN[::2])
def test_the_server_refuses_to_start_with_it(
    settings: Settings, admin_token: str, tmp_path: Path, body: str | bytes | None, problem: str
) -> None:
    runtime = Runtime(settings.model_copy(update={"policies_dir": _policies(tmp_path, body)}))
    try:
        with pytest.raises(ConfigurationError, match=f"{problem}.*refusing to start"):
            runtime.start()
    finally:
        runtime.engine.dispose()
        runtime.read_engine.dispose()


def test_the_shipped_file_is_read_once_per_process() -> None:
    policies = REPO_ROOT / "policies"
    assert default_policy(policies) is default_policy(policies)
    vocab, rules = default_policy(policies)
    assert "compliance_officer" in vocab.roles and "predict" in vocab.actions and rules


def test_init_writes_nothing_with_it(settings: Settings, tmp_path: Path) -> None:
    fresh = settings.model_copy(
        update={"policies_dir": _policies(tmp_path, ": : :\n"), "data_dir": tmp_path / "fresh"}
    )
    with pytest.raises(ConfigurationError, match="not valid YAML; refusing to initialize"):
        initialize(fresh)
    assert not fresh.data_dir.exists()
