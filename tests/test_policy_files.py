"""The policy files are configuration: a broken one stops ``warden init`` and the start.

``default_policy.yaml`` used to fail the first policy route (a 500, or a 422 blaming the
caller); ``retention.yaml`` the first purge or report (a 500). A retention file broken while
serving is tested in tests/records/test_retention.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.bootstrap import initialize
from governance.config import REPO_ROOT, Settings
from governance.errors import ConfigurationError
from governance.policy.errors import PolicyFileError
from governance.policy.service import default_policy
from governance.runtime import Runtime
from tests.factories import policies_copy

SHIPPED = (REPO_ROOT / "policies" / "default_policy.yaml").read_text()


def _policies(tmp_path: Path, body: str | bytes | None) -> Path:
    return policies_copy(tmp_path, default_policy_yaml=body)


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


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        *(({"default_policy_yaml": body}, problem) for body, problem in BROKEN[::2]),
        ({"retention_yaml": "format: warden.retention/1\nrecords: []\n"}, "must be a mapping"),
    ],
)
def test_the_server_refuses_to_start_with_a_broken_file(
    settings: Settings,
    admin_token: str,
    tmp_path: Path,
    files: dict[str, str | bytes | None],
    problem: str,
) -> None:
    policies = policies_copy(tmp_path, **files)
    runtime = Runtime(settings.model_copy(update={"policies_dir": policies}))
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
